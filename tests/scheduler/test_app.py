"""The scheduler's use cases, driven through the harness: real SQLite, no network, no sleeps."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.common.errors import ShoalError
from services.common.filters import Filter
from services.job_scheduler import convert
from services.job_scheduler.model import JobState, Result, TaskState
from services.job_scheduler.task_filter import parse_task_filter
from shoal.agent.v1 import agent_pb2
from shoal.v1 import pool_pb2
from tests.scheduler.harness import (
    ACCOUNT,
    Apps,
    Clock,
    Node,
    expect_error,
    make_job,
    one_node,
    settle,
    specs,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def apps(tmp_path: Path, clock: Clock) -> AsyncIterator[Apps]:
    apps = Apps(tmp_path / "job-scheduler.db", clock)
    yield apps
    await apps.close()


async def test_tasks_spread_over_free_slots_and_complete(apps: Apps, clock: Clock) -> None:
    app = await apps.open()
    await make_job(app, on_all_tasks_complete=2)
    a, b = Node(app, "a", 2), Node(app, "b", 2)
    await a.connect()
    await b.connect()
    await app.create_tasks(ACCOUNT, "j", specs(6))
    await settle(app)
    got_a, got_b = a.assignments(), b.assignments()
    assert (len(got_a), len(got_b)) == (2, 2)
    assert app.get_job(ACCOUNT, "j").counts.running == 4
    for x in got_a + got_b:
        await (a if x in got_a else b).finish(x.attempt_id)
    await settle(app)
    rest = a.assignments() + b.assignments()
    assert len(rest) == 2
    for x in rest:
        node = a if x.attempt_id in a.running else b
        await node.finish(x.attempt_id)
    job = app.get_job(ACCOUNT, "j")
    assert (job.counts.completed, job.counts.succeeded, job.state) == (6, 6, JobState.COMPLETED)
    assert job.terminate_reason == "AllTasksComplete"


async def test_nonzero_exit_is_retried_then_fails(apps: Apps, clock: Clock) -> None:
    app, n = await one_node(apps, 1, 1, retries=2)
    for _ in range(3):
        await settle(app)
        (x,) = n.assignments()
        await n.finish(x.attempt_id, exit_code=3)
    await settle(app)
    assert n.assignments() == []
    t = await app.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.result, t.retry_count, t.requeue_count, t.exit_code) == (
        TaskState.COMPLETED, Result.FAILURE, 2, 0, 3)
    assert len(t.attempts) == 3


async def test_lost_node_requeues_its_tasks_elsewhere(apps: Apps, clock: Clock) -> None:
    app = await apps.open()
    await make_job(app)
    a = Node(app, "a", 1)
    await a.connect()
    await app.create_tasks(ACCOUNT, "j", specs(1))
    await settle(app)
    (x,) = a.assignments()
    b = Node(app, "b", 1)
    await b.connect()
    clock.advance(5)
    await b.heartbeat()
    await app.check_liveness()
    assert a.session is not None and a.session.observed.name == "UNREACHABLE"
    clock.advance(6)
    await b.heartbeat()
    await app.check_liveness()
    assert a.session.observed.name == "LOST"
    await settle(app)
    (y,) = b.assignments()
    await b.finish(y.attempt_id)
    # The lost node's late result is stale: acknowledged and ignored.
    await a.finish(x.attempt_id, exit_code=9)
    t = await app.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.result, t.requeue_count, t.retry_count) == (
        TaskState.COMPLETED, Result.SUCCESS, 1, 0)
    assert t.node == "pools/p/nodes/b"
    assert [p.failure.code for p in t.attempts if p.failure] == ["NODE_LOST"]


async def test_restart_keeps_state_and_fences_completed_tasks(apps: Apps, clock: Clock) -> None:
    app, n = await one_node(apps, 2, 3)
    await settle(app)
    x, y = n.assignments()
    await n.finish(x.attempt_id)
    app2 = await apps.restart(app)
    n2 = Node(app2, "a", 2, running={y.attempt_id}, finished={x.attempt_id})
    welcome = await n2.connect()
    assert list(welcome.welcome.cancel_attempts) == []
    # The already-recorded result is resent after the restart: ignored, task not completed twice.
    await n2.finish(x.attempt_id)
    job = app2.get_job(ACCOUNT, "j")
    assert (job.counts.completed, job.counts.running, job.counts.active) == (1, 1, 1)
    await settle(app2)
    (z,) = n2.assignments()
    await n2.finish(y.attempt_id)
    await n2.finish(z.attempt_id)
    job = app2.get_job(ACCOUNT, "j")
    assert (job.counts.completed, job.counts.succeeded) == (3, 3)


async def test_restart_requeues_attempts_of_nodes_that_do_not_come_back(apps: Apps, clock: Clock) -> None:
    app, n = await one_node(apps, 1, 1)
    await settle(app)
    n.assignments()
    app2 = await apps.restart(app)
    await app2.check_liveness()
    assert app2.get_job(ACCOUNT, "j").counts.running == 1  # still within the reconnect grace
    clock.advance(11)
    await app2.check_liveness()
    t = await app2.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.requeue_count) == (TaskState.ACTIVE, 1)


async def test_reconnect_without_a_started_attempt_requeues_it(apps: Apps, clock: Clock) -> None:
    app, n = await one_node(apps, 1, 1)
    await settle(app)
    (a,) = n.assignments()
    await n.start(a.attempt_id)
    n.running.clear()  # the agent restarted and its process is gone
    await n.connect()
    t = await app.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.requeue_count) == (TaskState.ACTIVE, 1)
    assert t.attempts[-1].failure is not None and t.attempts[-1].failure.code == "NODE_LOST"


async def test_an_assignment_the_node_never_started_is_not_a_requeue(
    apps: Apps, clock: Clock
) -> None:
    # Assigned and committed, but the node's hello does not know it and it was never
    # reported started: it never reached the node (or never ran there). Not charged.
    app, n = await one_node(apps, 1, 1)
    await settle(app)
    n.assignments()
    n.running.clear()
    await n.connect()
    t = await app.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.requeue_count, t.retry_count) == (TaskState.ACTIVE, 0, 0)
    assert t.attempts[-1].failure is not None
    assert t.attempts[-1].failure.code == "NODE_UNAVAILABLE"
    assert t.attempts[-1].start_time is None


async def test_a_file_read_ends_when_its_node_reconnects_on_a_new_stream(
    apps: Apps, clock: Clock
) -> None:
    # The old stream may end only after the new one began (a half-open connection): the
    # read it carried can never be answered and must not wait for its timeout.
    app, n = await one_node(apps, 1, 1)
    await settle(app)
    (a,) = n.assignments()
    await n.start(a.attempt_id)
    reader = app.read_task_file(ACCOUNT, "j", "t0", "stdout.txt", 0)
    read = asyncio.ensure_future(reader.__anext__())
    for _ in range(500):  # the request reaches the node's stream (bounded: 5 s)
        if any(m.file_reads for m in n.drain()):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the file read was not sent to the node")
    await n.connect()
    e = await expect_error(read, "NODE_NOT_CONNECTED")
    assert "went away" in e.message


async def test_unknown_attempts_in_hello_are_cancelled(apps: Apps, clock: Clock) -> None:
    app = await apps.open()
    n = Node(app, "a", 1, running={"ghost"})
    welcome = await n.connect()
    assert list(welcome.welcome.cancel_attempts) == ["ghost"]


async def test_terminate_job_fails_ready_tasks_and_cancels_running(apps: Apps, clock: Clock) -> None:
    app, n = await one_node(apps, 1, 3)
    await settle(app)
    (x,) = n.assignments()
    job = await app.terminate_job(ACCOUNT, "j", "")
    assert job.state == JobState.TERMINATING
    assert [m.cancel_attempts for m in n.drain() if m.cancel_attempts] == [[x.attempt_id]]
    await n.finish(x.attempt_id, exit_code=137, failure=(1, "TASK_CANCELLED"))
    job = app.get_job(ACCOUNT, "j")
    assert (job.state, job.counts.failed, job.terminate_reason) == (JobState.COMPLETED, 3, "UserTerminate")
    t = await app.get_task(ACCOUNT, "j", "t2")
    assert t.failure is not None and t.failure.code == "JOB_TERMINATED"
    await expect_error(app.create_tasks(ACCOUNT, "j", specs(1, "u")), "JOB_NOT_ACTIVE")


async def test_remove_node_with_requeue_cancels_and_requeues(apps: Apps, clock: Clock) -> None:
    app = await apps.open()
    await make_job(app)
    a = Node(app, "a", 1)
    await a.connect()
    await app.create_tasks(ACCOUNT, "j", specs(1))
    await settle(app)
    (x,) = a.assignments()
    await app.remove_nodes(ACCOUNT, "p", ["a"], 1)
    assert any(x.attempt_id in m.cancel_attempts for m in a.drain())
    await a.finish(x.attempt_id, exit_code=137, failure=(1, "TASK_CANCELLED"))
    t = await app.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.requeue_count, t.retry_count) == (TaskState.ACTIVE, 1, 0)
    b = Node(app, "b", 1)
    await b.connect()
    await settle(app)
    assert a.assignments() == [] and len(b.assignments()) == 1


async def test_duplicate_and_missing_ids_change_nothing(apps: Apps, clock: Clock) -> None:
    app = await apps.open()
    await make_job(app)
    await expect_error(make_job(app, job_id="J"), "JOB_ALREADY_EXISTS")
    await expect_error(make_job(app, job_id="k", pool="nope"), "POOL_NOT_FOUND")
    await app.create_tasks(ACCOUNT, "j", specs(2))
    await expect_error(app.create_tasks(ACCOUNT, "j", specs(3)), "TASK_ALREADY_EXISTS")
    dup = specs(2, "x") + specs(1, "X")
    e = await expect_error(app.create_tasks(ACCOUNT, "j", dup), "DUPLICATE_TASK_ID")
    assert e.field == "requests[2].task_id"
    await expect_error(app.create_tasks(ACCOUNT, "zz", specs(1)), "JOB_NOT_FOUND")
    await expect_error(app.create_tasks("other", "j", specs(1)), "JOB_NOT_FOUND")
    assert app.get_job(ACCOUNT, "j").counts.active == 2
    assert [t.spec.id for t in await app.list_tasks(ACCOUNT, "j", None, None, 10)] == ["t0", "t1"]


async def test_list_tasks_filters_by_state_and_pages(apps: Apps, clock: Clock) -> None:
    app, n = await one_node(apps, 2, 5)
    await settle(app)
    x, y = n.assignments()
    await n.start(x.attempt_id)
    got = await app.list_tasks(ACCOUNT, "j", where("state = RUNNING"), None, 10)
    assert [t.spec.id for t in got] == [x.task_id]
    got = await app.list_tasks(ACCOUNT, "j", where("state = PREPARING OR state = running"), None, 10)
    assert {t.spec.id for t in got} == {x.task_id, y.task_id}
    page1 = await app.list_tasks(ACCOUNT, "j", where("state = ACTIVE"), None, 2)
    page2 = await app.list_tasks(ACCOUNT, "j", where("state = ACTIVE"), page1[-1].spec.id, 2)
    assert len(page1) == 2 and len(page2) == 1
    assert not {t.spec.id for t in page1} & {t.spec.id for t in page2}


async def test_list_tasks_filters_by_result_node_and_exit_code_in_sql(
    apps: Apps, clock: Clock
) -> None:
    app = await apps.open()
    await make_job(app)
    a, b = Node(app, "a", 2), Node(app, "b", 2)
    await a.connect()
    await b.connect()
    await app.create_tasks(ACCOUNT, "j", specs(5))
    await settle(app)
    ran = {x.task_id: (a, x) for x in a.assignments()} | {x.task_id: (b, x) for x in b.assignments()}
    codes = {"t0": 0, "t1": 3, "t2": 1, "t3": 0}
    for tid, code in codes.items():
        node, x = ran[tid]
        await node.finish(x.attempt_id, exit_code=code)
    await app.commit()
    # (t4 went to a freed slot meanwhile.)
    on = {f"t{i}": (await app.get_task(ACCOUNT, "j", f"t{i}")).node for i in range(5)}

    async def ids(text: str) -> list[str]:
        return [t.spec.id for t in await app.list_tasks(ACCOUNT, "j", where(text), None, 10)]

    assert await ids("result = FAILURE") == ["t1", "t2"]
    assert await ids("state = COMPLETED AND result = success") == ["t0", "t3"]
    assert await ids("exit_code != 0") == ["t1", "t2"]
    assert await ids("exit_code >= 2") == ["t1"]
    # t4 has not ended: it has no result or exit code, so no comparison on them holds.
    assert await ids("result != FAILURE") == ["t0", "t3"]
    assert await ids("state != COMPLETED OR result = FAILURE") == ["t1", "t2", "t4"]
    on_a = sorted(t for t, n in on.items() if n == "pools/p/nodes/a")
    assert on_a and await ids("node = a") == on_a
    assert await ids("node = A") == on_a  # ids ignore case
    assert await ids('node = "pools/p/nodes/a"') == on_a
    assert await ids("node != a") == sorted(set(on) - set(on_a))
    assert await ids("node = pools/q/nodes/a") == []
    assert await ids("node = a AND exit_code = 99") == []


async def test_a_waiting_tasks_reason_says_what_holds_the_job(apps: Apps, clock: Clock) -> None:
    app = await apps.open()
    await make_job(app, max_parallel_tasks=1)
    await app.create_tasks(ACCOUNT, "j", specs(3))

    async def reasons() -> dict[str, str]:
        return {t.spec.id: t.state_reason
                for t in await app.list_tasks(ACCOUNT, "j", where("state = ACTIVE"), None, 10)}

    assert await reasons() == {f"t{i}": "pool 'p' has no connected nodes" for i in range(3)}
    n = Node(app, "a", 1)
    await n.connect()
    await settle(app)
    (x,) = n.assignments()
    await n.start(x.attempt_id)
    waiting = await reasons()
    assert len(waiting) == 2
    assert set(waiting.values()) == {"the job's max_parallel_tasks are running (1)"}
    one = next(iter(waiting))
    assert (await app.get_task(ACCOUNT, "j", one)).state_reason == waiting[one]
    await app.disable_job(ACCOUNT, "j", 3)  # wait: the running task goes on
    assert set((await reasons()).values()) == {"the job is disabled"}


async def test_adding_to_a_job_its_on_all_tasks_complete_ended_says_why(
    apps: Apps, clock: Clock
) -> None:
    # The README's old trap: one task added, done, and the next add finds the job completed.
    app = await apps.open()
    await make_job(app, on_all_tasks_complete=2)
    n = Node(app, "a", 1)
    await n.connect()
    await app.create_tasks(ACCOUNT, "j", specs(1))
    await settle(app)
    (x,) = n.assignments()
    await n.finish(x.attempt_id)
    e = await expect_error(app.create_tasks(ACCOUNT, "j", specs(1, "u")), "JOB_NOT_ACTIVE")
    assert e.message.startswith("job 'j' is completed: it takes no new tasks (it completed when "
                                "all the tasks it had were done, as its on_all_tasks_complete")


def where(text: str) -> Filter:
    return parse_task_filter(text)


async def test_a_bad_task_filter_names_the_field() -> None:
    for text, says in [("node = a/b", "neither a node id nor a name"),
                       ("result = MAYBE", "unknown value 'MAYBE'"),
                       ("exit_code = zero", "not an integer"),
                       ("attempts > 2", "cannot filter on 'attempts'")]:
        with pytest.raises(ShoalError) as caught:
            parse_task_filter(text)
        assert caught.value.field == "filter" and says in caught.value.message


async def test_an_attempt_newer_than_the_task_row_is_not_a_previous_attempt(
    apps: Apps, tmp_path: Path
) -> None:
    # A task is read in two queries (its row, then its attempts). An assignment committed
    # between them adds an attempt the row does not know yet: it must not show up as one of
    # the task's previous attempts (`task add -o json` once listed the task's own attempt).
    app, n = await one_node(apps, 1, 1)
    await settle(app)
    (a,) = n.assignments()
    await app.commit()
    with sqlite3.connect(apps.path) as db:  # what the second query sees: a newer attempt
        db.execute("INSERT INTO attempts (attempt_id, task_pk, number, node, assign_time) "
                   "SELECT 'newer', task_pk, 2, node, 0 FROM tasks WHERE id='t0'")
    t = await app.get_task(ACCOUNT, "j", "t0")
    assert [x.attempt_id for x in t.attempts] == [a.attempt_id]
    assert list(convert.task(t).execution_info.previous_attempts) == []


async def test_an_assignment_lost_with_a_killed_scheduler_is_not_a_requeue(
    apps: Apps, clock: Clock
) -> None:
    # Committed, then the scheduler died before the node got it: after the restart the node
    # says hello without it. It never ran: queued again, neither a retry nor a requeue.
    app, n = await one_node(apps, 1, 1)
    await settle(app)
    n.drain()  # committed and queued for the stream, but the stream dies with the process
    app2 = await apps.restart(app)
    n2 = Node(app2, "a", 1)
    await n2.connect()
    t = await app2.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.requeue_count, t.retry_count) == (TaskState.ACTIVE, 0, 0)
    assert t.attempts[-1].failure is not None
    assert t.attempts[-1].failure.code == "NODE_UNAVAILABLE"
    await settle(app2)
    (a,) = n2.assignments()
    assert a.attempt_number == 2
    await n2.finish(a.attempt_id)
    t = await app2.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.result, t.requeue_count) == (TaskState.COMPLETED, Result.SUCCESS, 0)


async def test_a_removed_node_whose_stream_then_ends_requeues_without_waiting_to_be_lost(
    apps: Apps, clock: Clock
) -> None:
    # A SIGKILLed agent: the pool-manager sees the process die and removes the node before
    # the scheduler notices the stream is gone. The cancel it sends reaches nobody; the end
    # of the stream must settle the attempt, not the lost-node timeout (20 s by default).
    app, n = await one_node(apps, 1, 1)
    await settle(app)
    (a,) = n.assignments()
    await n.start(a.attempt_id)
    await app.remove_nodes(ACCOUNT, "p", ["a"], pool_pb2.REQUEUE)
    assert (await app.get_task(ACCOUNT, "j", "t0")).state == TaskState.RUNNING
    await n.disconnect()
    t = await app.get_task(ACCOUNT, "j", "t0")
    assert (t.state, t.requeue_count) == (TaskState.ACTIVE, 1)
    b = Node(app, "b", 1)
    await b.connect()
    await settle(app)
    assert [x.task_id for x in b.assignments()] == ["t0"]


async def test_a_one_slot_node_gets_its_next_task_with_the_ack_of_its_last(apps: Apps) -> None:
    # The next task's row was read ahead: the slot the result frees is filled in the same
    # commit, and the assignment goes down with the ack — no dispatch round in between.
    app, n = await one_node(apps, 1, 3)
    await settle(app)
    (a,) = n.assignments()
    await n.finish(a.attempt_id)  # no dispatch round runs in the harness unless asked
    msg = agent_pb2.SchedulerMessage()
    for m in n.drain():  # queued together: the stream merges them into one write
        msg.MergeFrom(m)
    assert list(msg.ack_attempts) == [a.attempt_id]
    assert [x.task_id for x in msg.assignments] == ["t1"]
    await app.dispatch_once()  # the round the result kicked: it only reads ahead (t2)
    assert n.drain() == []
    await n.finish(msg.assignments[0].attempt_id)
    assert [x.task_id for m in n.drain() for x in m.assignments] == ["t2"]
