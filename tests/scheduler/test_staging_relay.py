"""The scheduler's side of staging against a real storage-stager: grants survive a scheduler
restart, logs are kept per job incarnation, release tasks are told once, and stored logs that
are missing say why. (Found in review; each test failed before its fix.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.common.errors import ShoalError
from services.job_scheduler.engine import Engine
from shoal.agent.v1 import agent_pb2
from shoal.v1 import job_pb2, pool_pb2, storage_pb2, task_pb2
from tests.scheduler.harness import (
    ACCOUNT,
    TIMING,
    Apps,
    Clock,
    GatedStore,
    Node,
    known_pools,
    make_job,
    settle,
    specs,
)
from tests.scheduler.staging_world import World, grants, upload_log


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    world = await World().start(tmp_path)
    yield world
    await world.stop()


async def test_uploads_after_a_scheduler_restart(tmp_path: Path) -> None:
    w = await World().start(tmp_path)
    try:
        await w.storage.CreateContainer(storage_pb2.CreateContainerRequest(container_id="out"), metadata=w.md)
        files = agent_pb2.TaskFiles(output_files=[task_pb2.OutputFile(
            file_pattern="r.txt", container="out",
            upload_condition=task_pb2.OutputFile.TASK_COMPLETION)])
        await make_job(w.app, "j")
        await w.app.create_tasks(ACCOUNT, "j", [specs(1)[0]._replace(files=files.SerializeToString())])
        node = Node(w.app, "a", 1)
        await node.connect()
        await settle(w.app)
        (a,) = node.assignments()
        await node.start(a.attempt_id)
        # The scheduler restarts (an upgrade); the task keeps running on the node.
        await w.app.stop()
        await w.store.close()
        w.store = await GatedStore.open(tmp_path / "sched.db")
        w.app = Engine(w.store, TIMING, known_pools, w.clock, w.staging)
        await w.app.load()
        node = Node(w.app, "a", 1, running={a.attempt_id})
        await node.connect()
        node.drain()
        await w.app.on_agent_message(node.session, node.stream_id, agent_pb2.AgentMessage(
            staging_requests=[agent_pb2.StagingRequest(
                attempt_id=a.attempt_id, kind=agent_pb2.UPLOADS,
                uploads=[agent_pb2.UploadWanted(container="", key="stdout.txt"),
                         agent_pb2.UploadWanted(container="out", key="r.txt")])]))
        (g,) = await grants(node)
        assert not g.HasField("failure"), f"{g.failure.code}: {g.failure.message}"
    finally:
        await w.stop()


async def test_downloads_after_a_scheduler_restart(tmp_path: Path) -> None:
    w = await World().start(tmp_path)
    try:
        await w.storage.CreateContainer(storage_pb2.CreateContainerRequest(container_id="inputs"), metadata=w.md)
        files = agent_pb2.TaskFiles(resource_files=[task_pb2.ResourceFile(
            container="inputs", object_key="missing.dat", file_path="input.dat")])
        await make_job(w.app, "j")
        await w.app.create_tasks(ACCOUNT, "j", [specs(1)[0]._replace(files=files.SerializeToString())])
        node = Node(w.app, "a", 1)
        await node.connect()
        await settle(w.app)
        (a,) = node.assignments()
        await w.app.stop()
        await w.store.close()
        w.store = await GatedStore.open(tmp_path / "sched.db")
        w.app = Engine(w.store, TIMING, known_pools, w.clock, w.staging)
        await w.app.load()
        node = Node(w.app, "a", 1, running={a.attempt_id})
        await node.connect()
        node.drain()
        await w.app.on_agent_message(node.session, node.stream_id, agent_pb2.AgentMessage(
            staging_requests=[agent_pb2.StagingRequest(attempt_id=a.attempt_id, kind=agent_pb2.DOWNLOADS)]))
        (g,) = await grants(node)
        # The object does not exist: the grant must fail (as it does without the restart).
        assert g.HasField("failure"), f"granted {len(g.downloads)} downloads: the task would run without its input"
    finally:
        await w.stop()


async def jobs_ended(node: Node, n: int, within: float = 5.0) -> list[agent_pb2.JobEnded]:
    """Wait for `n` JobEnded messages (they are sent off the caller's path)."""
    got: list[agent_pb2.JobEnded] = []
    deadline = asyncio.get_running_loop().time() + within
    while len(got) < n:
        got += [e for m in node.drain() for e in m.jobs_ended]
        assert asyncio.get_running_loop().time() < deadline, f"{len(got)} of {n} JobEnded"
        await asyncio.sleep(0.01)
    return got


async def ran_a_task(app: Engine, **job: Any) -> Node:
    """Job "j" (with the given fields) whose one task ran and succeeded on node "a"."""
    await make_job(app, "j", **job)
    node = Node(app, "a", 1)
    await node.connect()
    await app.create_tasks(ACCOUNT, "j", specs(1))
    await settle(app)
    (a,) = node.assignments()
    await node.finish(a.attempt_id)
    return node


async def read_log(w: World, job: str, task: str) -> bytes:
    return b"".join([d async for _, d in w.app.read_task_file(ACCOUNT, job, task, "stdout.txt", 0)])


async def test_delete_job_sweeps_the_logs_of_a_job_created_again_under_its_id(w: World) -> None:
    app = w.app
    await make_job(app, "j")
    node = Node(app, "a", 1)
    await node.connect()
    # Delete j; hold it at its commit (any await before DeleteJobLogs returns will do:
    # a slow S3 sweep or the client's UNAVAILABLE retries make this window seconds long).
    gate = w.store.hold("commit")
    deleting = asyncio.create_task(app.delete_job(ACCOUNT, "j"))
    await gate.entered.wait()
    # The id is free already: the user creates j again and its task runs and logs.
    await make_job(app, "j")
    await app.create_tasks(ACCOUNT, "j", specs(1))
    await settle(app)
    (a,) = node.assignments()
    await upload_log(w, node, a.attempt_id, b"the new job's output\n")
    await node.finish(a.attempt_id)
    await node.disconnect()
    assert await read_log(w, "j", "t0") == b"the new job's output\n"
    gate.release.set()
    await deleting
    assert await read_log(w, "j", "t0") == b"the new job's output\n", \
        "the new job's log was swept by the old job's DeleteJobLogs"



async def test_release_task_is_sent_again_after_a_scheduler_restart(tmp_path: Path) -> None:
    apps = Apps(tmp_path / "s.db", Clock())
    try:
        app = await apps.open()
        node = await ran_a_task(
            app, job_release_task=task_pb2.JobReleaseTask(command_line="cleanup"),
            on_all_tasks_complete=job_pb2.TERMINATE_JOB)
        await app.commit()
        await jobs_ended(node, 1)  # the job completed: its release runs once, as it should
        app = await apps.restart(app)
        node = Node(app, "a", 1)
        await node.connect()
        node.drain()
        await app.delete_job(ACCOUNT, "j")
        await app.quiesce()  # what it would send in the background has been sent
        again = [e for m in node.drain() for e in m.jobs_ended]
        assert again == [], "JobEnded (with the release task) sent a second time"
    finally:
        await apps.close()


async def test_release_download_failure_is_reported_with_a_download_code(tmp_path: Path) -> None:
    apps = Apps(tmp_path / "s.db", Clock())
    try:
        app = await apps.open()  # no storage configured
        rel = task_pb2.JobReleaseTask(command_line="cleanup", resource_files=[
            task_pb2.ResourceFile(container="tools", object_key="c.sh", file_path="c.sh")])
        node = await ran_a_task(app, job_release_task=rel)
        await app.terminate_job(ACCOUNT, "j", "")
        (ended,) = await jobs_ended(node, 1)
        assert ended.failure.code == "RESOURCE_FILE_DOWNLOAD_FAILED", ended.failure.code
    finally:
        await apps.close()


async def test_the_log_of_an_attempt_lost_with_its_node_is_reported_not_stored(w: World) -> None:
    app = w.app
    await make_job(app, "j")
    await app.create_tasks(ACCOUNT, "j", [specs(1)[0]._replace(command_line="/bin/echo hello")])
    node = Node(app, "a", 1)
    await node.connect()
    await settle(app)
    (a,) = node.assignments()
    await node.start(a.attempt_id)
    await node.disconnect()
    w.clock.advance(3600)
    await app.check_liveness()
    with pytest.raises(ShoalError) as e:
        await read_log(w, "j", "t0")
    assert e.value.reason == "LOG_NOT_STORED"


async def test_a_node_away_when_its_job_ends_is_told_when_it_is_back(tmp_path: Path) -> None:
    # Its stream broke (it is reconnecting) as the job ended: its release task still runs.
    apps = Apps(tmp_path / "s.db", Clock())
    try:
        app = await apps.open()
        node = await ran_a_task(
            app, job_release_task=task_pb2.JobReleaseTask(command_line="cleanup"))
        await node.disconnect()
        await app.terminate_job(ACCOUNT, "j", "")
        await node.connect()
        (ended,) = await jobs_ended(node, 1)
        assert (ended.job_id, ended.release.command_line) == ("j", "cleanup")
        await node.disconnect()
        await node.connect()
        await app.quiesce()  # what it would send in the background has been sent
        assert [e for m in node.drain() for e in m.jobs_ended] == [], "told twice"
    finally:
        await apps.close()


async def test_the_log_of_an_attempt_we_stopped_is_reported_not_stored(w: World) -> None:
    # The agent uploads no logs for an attempt it was told to stop: reading them after the
    # node is gone says so rather than returning an empty file.
    app = w.app
    await make_job(app, "j")
    await app.create_tasks(ACCOUNT, "j", specs(1))
    node = Node(app, "a", 1)
    await node.connect()
    await settle(app)
    (a,) = node.assignments()
    await node.start(a.attempt_id)
    await app.terminate_task(ACCOUNT, "j", "t0")
    await node.cancelled(a.attempt_id)
    await node.disconnect()
    with pytest.raises(ShoalError) as e:
        await read_log(w, "j", "t0")
    assert e.value.reason == "LOG_NOT_STORED"
    assert "TASK_TERMINATED" in e.value.message


async def test_a_job_ending_keeps_nothing_for_nodes_that_will_not_be_back(tmp_path: Path) -> None:
    apps = Apps(tmp_path / "s.db", Clock())
    try:
        app = await apps.open()
        await make_job(app, "j", job_release_task=task_pb2.JobReleaseTask(command_line="cleanup"))
        a, b = Node(app, "a", 1), Node(app, "b", 1)
        await a.connect()
        await b.connect()
        await app.create_tasks(ACCOUNT, "j", specs(2))
        await settle(app)
        for n in (a, b):
            for x in n.assignments():
                await n.finish(x.attempt_id)
            await n.disconnect()
        await app.remove_nodes(ACCOUNT, "p", ["a"], pool_pb2.REQUEUE)  # a leaves while away
        await app.terminate_job(ACCOUNT, "j", "")
        assert list(app.core.ended_away) == [b.session.key]  # type: ignore[union-attr]
        await app.remove_nodes(ACCOUNT, "p", ["b"], pool_pb2.REQUEUE)
        assert app.core.ended_away == {}
    finally:
        await apps.close()
