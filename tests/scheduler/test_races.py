"""Interleavings the reviewer found: events that land while the scheduler is suspended at an
await (reading task rows, committing). Each test holds the real store at that await with a
gate, acts, releases, and checks what a user would see: counts that match the rows, slots
that add up, nothing lost, nothing run twice."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.common.errors import ShoalError
from services.job_scheduler.core.plan import DeleteJob
from services.job_scheduler.model import JobState, Result, TaskState
from services.job_scheduler.store import Store
from shoal.agent.v1 import agent_pb2
from shoal.v1 import pool_pb2
from tests.scheduler.harness import (
    ACCOUNT,
    Apps,
    Clock,
    GatedStore,
    Node,
    expect_error,
    make_job,
    one_node,
    settle,
    specs,
)


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[Apps]:
    apps = Apps(tmp_path / "job-scheduler.db", Clock())
    yield apps
    await apps.close()


async def rows_by_state(app, job_id: str = "j") -> dict[str, int]:  # type: ignore[no-untyped-def]
    out: dict[str, int] = {}
    for t in await app.list_tasks(ACCOUNT, job_id, None, None, 1000):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


async def test_a_commit_with_nothing_new_waits_for_the_transaction_in_flight(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    store.write([DeleteJob(1)])
    first = asyncio.create_task(store.commit())
    for _ in range(1000):
        if store._inflight is not None:
            break
        await asyncio.sleep(0)
    assert store._inflight is not None and not store._pending
    await asyncio.wait_for(asyncio.gather(first, store.commit()), 10)
    await store.close()


async def test_concurrent_adds_of_the_same_id_refuse_one_and_keep_running(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    got = await asyncio.gather(app.create_tasks(ACCOUNT, "j", specs(1)),
                               app.create_tasks(ACCOUNT, "j", specs(1)), return_exceptions=True)
    assert sorted(type(g).__name__ for g in got) == ["ShoalError", "int"]
    assert [g.reason for g in got if not isinstance(g, int)] == ["TASK_ALREADY_EXISTS"]
    await app.create_tasks(ACCOUNT, "j", specs(1, "u"))
    assert app.get_job(ACCOUNT, "j").counts.active == 2 == sum((await rows_by_state(app)).values())


async def test_an_add_whose_caller_went_away_still_completes(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    # Held at its commit (its rows are inserted; the job's counts are being written).
    gate = app.store.hold("commit")  # type: ignore[attr-defined]
    call = asyncio.create_task(app.create_tasks(ACCOUNT, "j", specs(3)))
    await gate.entered.wait()
    call.cancel()
    gate.release.set()
    n = Node(app, "a", 3)
    await n.connect()
    await settle(app)
    assert len(n.assignments()) == 3


async def test_terminate_while_dispatch_commits_sends_nothing(apps: Apps) -> None:
    app, n = await one_node(apps, 2, 2)
    gate = app.store.hold("commit", skip=1)  # type: ignore[attr-defined]
    dispatch = asyncio.create_task(app.dispatch_once())
    await gate.entered.wait()
    await app.terminate_job(ACCOUNT, "j", "")
    gate.release.set()
    await dispatch
    sent = n.drain()
    assert [m for m in sent if m.assignments] == []
    job = app.get_job(ACCOUNT, "j")
    assert (job.state, job.counts.running, job.counts.failed) == (JobState.COMPLETED, 0, 2)
    assert await rows_by_state(app) == {"COMPLETED": 2}
    assert n.session is not None and n.session.used_slots == 0


async def test_reconnect_while_dispatch_commits_does_not_send_the_stale_attempt(apps: Apps) -> None:
    app, n = await one_node(apps, 1, 1)
    gate = app.store.hold("commit", skip=1)  # type: ignore[attr-defined]
    dispatch = asyncio.create_task(app.dispatch_once())
    await gate.entered.wait()
    await n.connect()
    gate.release.set()
    await dispatch
    await settle(app)
    got = n.assignments()
    assert len(got) == 1  # only the new attempt, once
    assert app.core.attempts.keys() == {got[0].attempt_id}
    await n.finish(got[0].attempt_id)
    t = await app.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.result) == (TaskState.COMPLETED, Result.SUCCESS)


async def test_a_draining_node_stays_draining_across_a_stream_blip(apps: Apps) -> None:
    app, n = await one_node(apps, 2, 1)
    await settle(app)
    (x,) = n.assignments()
    await app.remove_nodes(ACCOUNT, "p", ["a"], pool_pb2.TASK_COMPLETION)
    await n.disconnect()
    welcome = await n.connect()
    assert welcome.HasField("drain") and list(welcome.welcome.cancel_attempts) == []
    await app.create_tasks(ACCOUNT, "j", specs(1, "u"))
    await settle(app)
    assert n.assignments() == []  # no new work for a leaving node
    await n.finish(x.attempt_id)
    t = await app.get_task(ACCOUNT, "j", "t0")
    assert (t.result, t.requeue_count) == (Result.SUCCESS, 0)


async def test_restart_rebuilds_counts_from_rows(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    await app.create_tasks(ACCOUNT, "j", specs(4))
    await expect_error(app.create_tasks(ACCOUNT, "j", specs(1)), "TASK_ALREADY_EXISTS")
    app2 = await apps.restart(app)
    assert app2.get_job(ACCOUNT, "j").counts.active == 4
    assert isinstance(app2.store, GatedStore)


async def test_a_batch_applies_writes_in_a_safe_order(apps: Apps) -> None:
    # One batch can hold a task's start and end, and a job deleted and its id taken again:
    # grouping rows by statement must not reorder them for the same row.
    app, n = await one_node(apps, 1, 1)
    await settle(app)
    (x,) = n.assignments()
    await n.start(x.attempt_id)  # committed on its own
    gate = app.store.hold("commit")  # type: ignore[attr-defined]
    ts = agent_pb2.TaskResult(attempt_id=x.attempt_id, exit_code=0)
    msg = agent_pb2.AgentMessage(results=[ts])
    assert n.session is not None
    finishing = asyncio.create_task(app.on_agent_message(n.session, n.stream_id, msg))
    await gate.entered.wait()
    gate.release.set()
    await finishing
    t = await app.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.result) == (TaskState.COMPLETED, Result.SUCCESS)
    deleting = asyncio.create_task(app.delete_job(ACCOUNT, "j"))
    await asyncio.sleep(0)
    await make_job(app)  # the same id again, possibly in the same batch as the delete
    await deleting
    assert app.get_job(ACCOUNT, "j").counts.active == 0
    assert await rows_by_state(app) == {}


async def test_a_delete_queued_after_writes_never_runs_before_them(apps: Apps) -> None:
    # A job created and deleted in one batch stays deleted; one created again with the same
    # id in that batch is the one that lives; ids are never reused after a restart.
    app = await apps.open()
    await make_job(app, job_id="old")
    await app.create_tasks(ACCOUNT, "old", specs(2))
    gate = app.store.hold("commit")  # type: ignore[attr-defined]
    creating = asyncio.create_task(make_job(app, job_id="k"))
    await gate.entered.wait()  # k's row is queued, not written
    await app.delete_job(ACCOUNT, "k")
    await app.delete_job(ACCOUNT, "old")
    await make_job(app, job_id="old")
    gate.release.set()
    await creating
    app2 = await apps.restart(app)
    assert sorted(j.id for j in app2.core.jobs.values()) == ["old"]
    assert app2.get_job(ACCOUNT, "old").counts.active == 0
    assert await rows_by_state(app2, "old") == {}
    await app2.create_tasks(ACCOUNT, "old", specs(1))
    assert await rows_by_state(app2, "old") == {"ACTIVE": 1}
    assert app2.store.next_task_pk > 3  # the deleted job's task ids are not handed out again


async def test_an_add_that_waited_behind_a_delete_writes_nothing(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    deleting = asyncio.create_task(app.delete_job(ACCOUNT, "j"))
    adding = asyncio.create_task(app.create_tasks(ACCOUNT, "j", specs(2)))
    await deleting
    try:
        await adding
    except ShoalError as e:
        assert e.reason == "JOB_NOT_FOUND"
    app2 = await apps.restart(app)
    assert app2.core.jobs == {}
    await make_job(app2)
    assert await rows_by_state(app2) == {}


async def test_a_task_just_added_is_found_while_others_list(apps: Apps) -> None:
    # 20 clients each add tasks one at a time and read each back, while another lists. A
    # listing's cursor once held its read transaction open across awaits, and a read on the
    # same connection saw that older snapshot: tasks just added were NOT_FOUND.
    app = await apps.open()
    await make_job(app)
    done = asyncio.Event()

    async def lister() -> int:
        pages = 0
        while not done.is_set():
            after = None
            while True:
                page = await app.list_tasks(ACCOUNT, "j", None, after, 7)
                pages += 1
                if len(page) < 7:
                    break
                after = page[-1].spec.id
        return pages

    async def client(c: int) -> list[str]:
        missing = []
        for i in range(20):
            (spec,) = specs(1, f"c{c}-")
            spec = spec._replace(id=f"c{c}-{i}")
            await app.create_tasks(ACCOUNT, "j", [spec])
            try:
                await app.get_task(ACCOUNT, "j", spec.id)
            except ShoalError:
                missing.append(spec.id)
        return missing

    listing = asyncio.create_task(lister())
    missing = await asyncio.gather(*(client(c) for c in range(20)))
    done.set()
    assert await listing > 0
    assert [m for ms in missing for m in ms] == []
    assert app.get_job(ACCOUNT, "j").counts.active == 400


async def test_an_add_to_a_job_whose_row_is_not_written_yet_writes_the_job_first(
    apps: Apps,
) -> None:
    # Tasks are inserted in their own transaction; a job whose CreateJob is still committing
    # must reach the disk before them, or a crash would leave tasks without their job.
    app = await apps.open()
    gate = app.store.hold("commit")  # type: ignore[attr-defined]
    creating = asyncio.create_task(make_job(app))
    await gate.entered.wait()
    inserting = app.store.hold("insert_tasks")  # type: ignore[attr-defined]
    adding = asyncio.create_task(app.create_tasks(ACCOUNT, "j", specs(2)))
    await inserting.entered.wait()
    with sqlite3.connect(apps.path) as db:  # what a crash right now would leave
        assert db.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
    inserting.release.set()
    await adding
    gate.release.set()
    await creating
    app2 = await apps.restart(app)
    assert app2.get_job(ACCOUNT, "j").counts.active == 2
    assert len(await app2.list_tasks(ACCOUNT, "j", None, None, 10)) == 2
