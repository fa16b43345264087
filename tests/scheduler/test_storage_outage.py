"""The scheduler's side of a storage outage: a grant the stager cannot serve says
STORAGE_UNAVAILABLE (the agent waits), logs left behind are granted after their attempt's
result (to its node only, while its job exists), and what an agent says waits for storage
shows in the task's state reason and in `task why` until it is over. Against a real
storage-stager where storage is involved (tests/scheduler/staging_world.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.job_scheduler.model import TaskState
from shoal.agent.v1 import agent_pb2
from shoal.v1 import storage_pb2, task_pb2
from tests.scheduler.harness import ACCOUNT, Apps, Clock, Node, make_job, settle, specs
from tests.scheduler.staging_world import World, grants

UP, DOWN = agent_pb2.UPLOADS, agent_pb2.DOWNLOADS


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    world = await World().start(tmp_path)
    yield world
    await world.stop()


def logs_request(attempt_id: str) -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(staging_requests=[agent_pb2.StagingRequest(
        attempt_id=attempt_id, kind=UP, uploads=[agent_pb2.UploadWanted(key="stdout.txt")])])


async def ended_on(w: World, node: Node) -> str:
    """Job "j"'s one task, run and ended on `node`: its attempt id."""
    await make_job(w.app, "j")
    await w.app.create_tasks(ACCOUNT, "j", specs(1))
    await settle(w.app)
    (a,) = node.assignments()
    await node.finish(a.attempt_id)
    return a.attempt_id


async def test_an_upload_grant_while_the_stager_is_down_says_storage_unavailable(
    w: World,
) -> None:
    await make_job(w.app, "j")
    await w.app.create_tasks(ACCOUNT, "j", specs(1))
    node = Node(w.app, "a", 1)
    await node.connect()
    await settle(w.app)
    (a,) = node.assignments()
    await w.stager.stop()
    await w.app.on_agent_message(node.session, node.stream_id, logs_request(a.attempt_id))
    (g,) = await grants(node, within=30)
    assert (g.failure.code, g.failure.category) == (
        "STORAGE_UNAVAILABLE", task_pb2.FailureInfo.SERVER_ERROR)
    assert "storage-stager" in g.failure.message


async def test_logs_left_behind_are_granted_to_the_node_their_attempt_ended_on(
    w: World,
) -> None:
    a, b = Node(w.app, "a", 1), Node(w.app, "b", 1)
    await a.connect()
    aid = await ended_on(w, a)
    await b.connect()
    await w.app.on_agent_message(a.session, a.stream_id, logs_request(aid))
    (g,) = await grants(a)
    assert not g.HasField("failure"), g.failure
    async with w.http.put(g.upload_urls[0], data=b"late\n") as r:
        assert r.status == 200
    # Another node, or anything but logs, gets nothing for an attempt that is not live.
    await w.app.on_agent_message(b.session, b.stream_id, logs_request(aid))
    (refused,) = await grants(b)
    assert refused.failure.code == "ATTEMPT_NOT_ASSIGNED"
    await w.storage.CreateContainer(
        storage_pb2.CreateContainerRequest(container_id="out"), metadata=w.md)
    await w.app.on_agent_message(a.session, a.stream_id, agent_pb2.AgentMessage(
        staging_requests=[agent_pb2.StagingRequest(
            attempt_id=aid, kind=UP, uploads=[agent_pb2.UploadWanted(container="out", key="k")])]))
    (output,) = await grants(a)
    assert output.failure.code == "ATTEMPT_NOT_ASSIGNED"
    await a.disconnect()  # the log is read from storage once its node is away
    stored = b"".join([d async for _, d in w.app.read_task_file(ACCOUNT, "j", "t0",
                                                                "stdout.txt", 0)])
    assert stored == b"late\n"


async def test_no_late_logs_for_a_deleted_job(w: World) -> None:
    node = Node(w.app, "a", 1)
    await node.connect()
    aid = await ended_on(w, node)
    await w.app.delete_job(ACCOUNT, "j")
    await w.app.on_agent_message(node.session, node.stream_id, logs_request(aid))
    (g,) = await grants(node)
    assert g.failure.code == "ATTEMPT_NOT_ASSIGNED"


def wait(attempt_id: str, kind: int, since: float, error: str) -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(storage_waits=[agent_pb2.StorageWait(
        attempt_id=attempt_id, kind=kind, since=Timestamp(seconds=int(since)),  # type: ignore[arg-type]
        give_up_at=Timestamp(seconds=int(since) + 300), error=error)])


async def test_what_waits_for_storage_shows_until_it_is_over(tmp_path: Path) -> None:
    apps = Apps(tmp_path / "s.db", Clock())
    try:
        app = await apps.open()
        await make_job(app, "j")
        await app.create_tasks(ACCOUNT, "j", specs(2))
        node = Node(app, "a", 2)
        await node.connect()
        await settle(app)
        first, second = node.assignments()
        # 12:00:00 UTC: the first's files wait (PREPARING); the second ran and its outputs wait.
        noon = 1_767_268_800
        await node.start(second.attempt_id)
        for aid, kind in ((first.attempt_id, DOWN), (second.attempt_id, UP)):
            await app.on_agent_message(node.session, node.stream_id,
                                       wait(aid, kind, noon, "connection refused"))
        t0 = await app.get_task(ACCOUNT, "j", "t0")
        assert t0.state == TaskState.PREPARING
        assert t0.state_reason == ("its files wait for storage (unavailable since 12:00:00 "
                                   "UTC; the task fails at 12:05:00 UTC if it still is)")
        why = await app.explain_task(ACCOUNT, "j", "t0")
        assert why.reasons == ["PREPARING", "STORAGE_UNAVAILABLE"]
        assert "last error: connection refused" in why.details
        t1 = await app.get_task(ACCOUNT, "j", "t1")
        assert t1.state == TaskState.RUNNING and t1.state_reason.startswith(
            "its output files wait for storage")
        why = await app.explain_task(ACCOUNT, "j", "t1")
        assert why.reasons == ["RUNNING", "STORAGE_UNAVAILABLE"]
        assert why.summary.startswith("its process ended on pools/p/nodes/a; its output files")
        assert [t.state_reason for t in await app.list_tasks(ACCOUNT, "j", None, None, 10)] == [
            t0.state_reason, t1.state_reason]
        # Storage is back: the first starts, the second reports its result.
        await node.start(first.attempt_id)
        assert (await app.get_task(ACCOUNT, "j", "t0")).state_reason == ""
        assert (await app.explain_task(ACCOUNT, "j", "t0")).reasons == ["RUNNING"]
        await node.finish(second.attempt_id)
        assert (await app.get_task(ACCOUNT, "j", "t1")).state == TaskState.COMPLETED
    finally:
        await apps.close()


async def test_the_welcome_tells_agents_the_clusters_bound(tmp_path: Path) -> None:
    apps = Apps(tmp_path / "s.db", Clock())
    try:
        app = await apps.open()
        welcome = await Node(app, "a", 1).connect()
        assert welcome.welcome.staging_outage_timeout.ToSeconds() == int(
            app.timing.staging_outage_timeout)
    finally:
        await apps.close()
