"""Races and edge cases of the scheduler's job and task behaviours, found in review; each test
failed before its fix. Awaits are held open with gates on the real store's methods."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.job_scheduler.model import JobState, Result, TaskState
from shoal.v1 import job_pb2, pool_pb2
from shoal.v1 import task_pb2 as T
from tests.scheduler.harness import ACCOUNT, Apps, Clock, Node, make_job
from tests.scheduler.test_behaviours import add, assigned, deps_job, state, task


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[Apps]:
    a = Apps(tmp_path / "sched.db", Clock())
    yield a
    await a.close()


async def test_deleting_a_dependency_while_a_dependent_is_added_is_refused(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app, uses_task_dependencies=True)
    await add(app, task("a"))
    gate = app.store.hold("insert_tasks")  # type: ignore[attr-defined]
    adding = asyncio.create_task(add(app, task("b", deps=["a"])))
    await gate.entered.wait()
    # The delete waits for the add's lock (its first await), and then sees b depend on a.
    deleting = asyncio.create_task(app.delete_task(ACCOUNT, "j", "a"))
    await asyncio.sleep(0)
    gate.release.set()
    await adding
    with pytest.raises(Exception, match="dependent tasks"):
        await deleting
    assert sorted(t.spec.id for t in await app.list_tasks(ACCOUNT, "j", None, None, 10)) == ["a", "b"]
    assert await state(app, "b") == (TaskState.ACTIVE, "waiting for 1 dependency")


async def test_disable_then_enable_keeps_required_slots(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    await add(app, task("big", slots=3), task("s1"), task("s2"), task("s3"))
    await app.disable_job(ACCOUNT, "j", 0)   # parks the ready tasks ... and drops their slots
    await app.enable_job(ACCOUNT, "j")
    n = Node(app, "a", 4)
    await n.connect()
    got = await assigned(app, n)
    attempts = {app.core.attempts[aid].task_id: app.core.attempts[aid].slots for aid in got.values()}
    assert attempts == {"big": 3, "s1": 1}, attempts   # {"big": 1, "s1": 1, "s2": 1, "s3": 1}


async def test_disabling_a_job_with_requeue_is_not_counted_as_losing_the_node(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    n = Node(app, "a", 1)
    await n.connect()
    await add(app, task("t"))
    for _ in range(6):       # the harness's max_requeue_count is 5 (production: 10)
        got = await assigned(app, n)
        await app.disable_job(ACCOUNT, "j", 0)                 # DISABLE_REQUEUE
        await n.cancelled(got["t"])                            # killed by the cancel
        await app.enable_job(ACCOUNT, "j")
    t = await app.get_task(ACCOUNT, "j", "t")
    assert t.failure is None, t.failure   # NODE_REQUEUE_LIMIT "... requeued 5 times after losing its node"


async def test_unblock_still_waits_for_dependencies_that_have_not_completed(apps: Apps) -> None:
    app, n = await deps_job(apps, slots=4)
    await add(app, task("a"), task("e"), task("d", deps=["a", "e"]))
    got = await assigned(app, n)
    await n.finish(got["a"], 1)                     # d blocked by a; e still running
    await app.unblock_task(ACCOUNT, "j", "d")       # "run anyway" the failure of a
    assert await state(app, "d") == (TaskState.ACTIVE, "waiting for 1 dependency")
    assert await assigned(app, n) == {}


async def test_a_task_stays_blocked_while_another_failed_dependency_blocks_it(apps: Apps) -> None:
    app, n = await deps_job(apps, slots=4)
    await add(app, task("a"), task("e"), task("d", deps=["a", "e"]))
    got = await assigned(app, n)
    await n.finish(got["a"], 1)                     # d: blocked by a
    await n.finish(got["e"], 1)                     # ... and by e (not recorded: first wins)
    await app.reactivate_task(ACCOUNT, "j", "a")
    again = await assigned(app, n)
    await n.finish(again["a"], 0)                   # a succeeds now; e is still a failure
    st, why = await state(app, "d")
    assert "e failed" in why, (st, why)
    assert await assigned(app, n) == {}


async def test_terminating_a_job_leaves_no_required_slots_behind(apps: Apps) -> None:
    app, n = await deps_job(apps, slots=4)
    await add(app, task("a"), task("w", deps=["a"], slots=2))
    await app.terminate_job(ACCOUNT, "j", "")
    q = app.core.queues[app.get_job(ACCOUNT, "j").pool_key]
    # every later job in the pool now takes the general path (jq.order() per round)
    assert q.slots == {}, q.slots


async def test_the_default_exit_option_does_not_apply_to_a_success(apps: Apps) -> None:
    """Azure: `default` is used for a nonzero exit not listed, a pre-processing error or an
    upload error without their own entry. "If you want non-default behavior on exit code 0,
    you must list it explicitly." The common "terminate the job on any failure" pattern:"""
    app = await apps.open()
    await make_job(app, on_task_failure=job_pb2.PERFORM_EXIT_OPTIONS_JOB_ACTION)
    n = Node(app, "a", 1)
    await n.connect()
    on_failure = T.ExitConditions(default=T.ExitOptions(job_action=T.ExitOptions.TERMINATE))
    await add(app, task("a", exits=on_failure), task("b", exits=on_failure))
    got = await assigned(app, n)
    await n.finish(got["a"], 0)                       # a success
    job = app.get_job(ACCOUNT, "j")
    assert job.state == JobState.ACTIVE, (job.state, job.terminate_reason)   # COMPLETED, TaskFailed


async def test_disable_with_terminate_does_not_trigger_the_jobs_exit_options(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app, on_task_failure=job_pb2.PERFORM_EXIT_OPTIONS_JOB_ACTION)
    n = Node(app, "a", 1)
    await n.connect()
    await add(app, task("a"), task("b"))
    got = await assigned(app, n)
    await app.disable_job(ACCOUNT, "j", job_pb2.DISABLE_TERMINATE)
    await n.cancelled(got["a"])                     # killed by the disable
    job = app.get_job(ACCOUNT, "j")
    assert job.state == JobState.DISABLED, (job.state, job.terminate_reason)  # COMPLETED, TaskFailed


async def test_a_task_that_finished_before_its_cancel_arrived_keeps_its_result(apps: Apps) -> None:
    # The cancel and the task's own end cross on the stream: the agent reports the end (not
    # TASK_CANCELLED). A success stays a success and is not run again.
    app = await apps.open()
    await make_job(app)
    n = Node(app, "a", 3)
    await n.connect()
    await add(app, task("t", retries=3), task("u", retries=3), task("v", retries=3))
    got = await assigned(app, n)
    await app.terminate_task(ACCOUNT, "j", "t")
    await n.finish(got["t"], 0)
    await app.set_node_scheduling(ACCOUNT, "p", "a", False, pool_pb2.REQUEUE)
    await n.finish(got["u"], 0)
    await n.finish(got["v"], 3)  # failed on its own: its retry gives way to the requeue
    t = await app.get_task(ACCOUNT, "j", "t")
    u = await app.get_task(ACCOUNT, "j", "u")
    v = await app.get_task(ACCOUNT, "j", "v")
    assert (t.state, t.result, t.failure) == (TaskState.COMPLETED, Result.SUCCESS, None)
    assert (u.state, u.result, u.requeue_count) == (TaskState.COMPLETED, Result.SUCCESS, 0)
    assert (v.state, v.retry_count, v.requeue_count) == (TaskState.ACTIVE, 0, 1)


async def test_a_requeued_attempt_says_why(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    n = Node(app, "a", 1)
    await n.connect()
    await add(app, task("t"))
    for cancel in (lambda: app.set_node_scheduling(ACCOUNT, "p", "a", False, pool_pb2.REQUEUE),
                   lambda: app.disable_job(ACCOUNT, "j", job_pb2.DISABLE_REQUEUE)):
        got = await assigned(app, n)
        await cancel()
        await n.cancelled(got["t"])
        await app.set_node_scheduling(ACCOUNT, "p", "a", True, pool_pb2.REQUEUE)
        if app.get_job(ACCOUNT, "j").state == JobState.DISABLED:
            await app.enable_job(ACCOUNT, "j")
    got = await assigned(app, n)
    await app.remove_nodes(ACCOUNT, "p", ["a"], pool_pb2.REQUEUE)
    await n.cancelled(got["t"])
    t = await app.get_task(ACCOUNT, "j", "t")
    assert t.state == TaskState.ACTIVE
    reasons = [(r.failure.code, r.failure.message) for r in t.attempts if r.failure]
    assert reasons == [
        ("NODE_SCHEDULING_DISABLED",
         "the task's node had its scheduling disabled; the task was requeued"),
        ("REQUEUED", "its job was disabled; the task was requeued"),
        ("NODE_REMOVED", "the task's node was removed; the task was requeued"),
    ], reasons


async def test_a_failure_of_its_own_that_crossed_a_requeue_takes_its_job_action(apps: Apps) -> None:
    # The node was being disabled (requeue) as the task failed by itself with no retries
    # left: the failure is the task's own, so its exit options apply.
    app = await apps.open()
    await make_job(app, on_task_failure=job_pb2.PERFORM_EXIT_OPTIONS_JOB_ACTION)
    n = Node(app, "a", 1)
    await n.connect()
    on_failure = T.ExitConditions(default=T.ExitOptions(job_action=T.ExitOptions.TERMINATE))
    await add(app, task("a", exits=on_failure), task("b"))
    got = await assigned(app, n)
    await app.set_node_scheduling(ACCOUNT, "p", "a", False, pool_pb2.REQUEUE)
    await n.finish(got["a"], 3)
    t = await app.get_task(ACCOUNT, "j", "a")
    assert (t.state, t.result, t.exit_code) == (TaskState.COMPLETED, Result.FAILURE, 3)
    job = app.get_job(ACCOUNT, "j")
    assert job.state in (JobState.TERMINATING, JobState.COMPLETED), job.state
    assert job.terminate_reason == "TaskFailed"
