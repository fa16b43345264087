"""The scheduler's rules as event sequences fed to the pure core, asserting on the plans it
returns: no SQLite, no gRPC, no event loop, no sleeps. The races found so far are written
here as the interleavings they were: an event that arrives between a read and the decision
that follows it."""

from __future__ import annotations

import pytest

from services.common.errors import ShoalError
from services.job_scheduler import convert
from services.job_scheduler.core import AgentReport
from services.job_scheduler.core.plan import (
    AckResults,
    AssignTask,
    CancelAttempts,
    EndAttempt,
    FailTasks,
    JobChanged,
    SetBlocked,
    TaskChanged,
    TaskDeleted,
    TaskOutcome,
    UpdateJob,
)
from services.job_scheduler.model import (
    Category,
    DepRow,
    DisableOption,
    Failure,
    JobState,
    OnAllTasksComplete,
    Result,
    TaskState,
)
from shoal.v1 import task_pb2
from tests.scheduler.core_world import ACCOUNT, T0, World, assigns, rows, spec


@pytest.fixture
def w() -> World:
    return World()


# -- the life of a task -----------------------------------------------------------------------


def test_a_task_is_assigned_then_completes_and_its_job_with_it(w: World) -> None:
    job = w.job(on_all_tasks_complete=OnAllTasksComplete.TERMINATE_JOB)
    n = w.node(slots=2)
    added = w.add(job, spec("t1"))
    assert added.dispatch and added.reply == 1
    assert rows(added, UpdateJob)[-1].counts == (1, 0, 0, 0, 0)
    plan = w.dispatch()
    assert assigns(plan) == {"t1": "a1"}
    assert rows(plan, AssignTask) == [AssignTask(w.pks["t1"], "a1", 1, "pools/p/nodes/n1", T0)]
    (assigned,) = rows(plan, AssignTask)
    # The event names the task and carries the row that records it: what a watcher is sent.
    assert TaskChanged(ACCOUNT, "j", w.pks["t1"], TaskState.PREPARING, task_id="t1",
                       row=assigned) in plan.events
    assert plan.sends[0].stream_id == n.stream_id  # bound to the stream it was decided for
    done = w.result(n, "a1")
    assert [s.message for s in done.sends] == [AckResults(["a1"])]
    (outcome,) = rows(done, TaskOutcome)
    assert (outcome.state, outcome.result) == (TaskState.COMPLETED, Result.SUCCESS)
    # The job ends in the same plan, as an explicit step: no later commit decides it.
    assert rows(done, UpdateJob)[-1].state == JobState.COMPLETED
    assert JobChanged(ACCOUNT, "j", JobState.COMPLETED) in done.events
    assert job.counts.row() == (0, 0, 1, 1, 0)


def test_a_non_zero_exit_is_retried_first_in_line_then_fails(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1", retries=1), spec("t2"))
    assert assigns(w.dispatch()) == {"t1": "a1"}
    retried = w.result(n, "a1", exit_code=3)
    (o,) = rows(retried, TaskOutcome)
    assert (o.state, o.retry_count) == (TaskState.ACTIVE, 1)
    again = w.dispatch()
    assert assigns(again) == {"t1": "a2"}  # ahead of t2, which was added before its retry
    assert rows(again, AssignTask)[0].number == 2
    (o,) = rows(w.result(n, "a2", exit_code=3), TaskOutcome)
    assert (o.state, o.result, o.retry_count) == (TaskState.COMPLETED, Result.FAILURE, 1)


def test_a_result_on_an_older_stream_changes_nothing(w: World) -> None:
    job = w.job()
    old = w.node()
    w.add(job, spec("t1"))
    w.dispatch()
    new = w.node(running=("a1",))  # the agent reconnected; it still runs a1
    assert new.stream_id != old.stream_id
    stale = w.result(old, "a1")
    assert not stale.rows and not stale.sends
    assert rows(w.result(new, "a1"), TaskOutcome)


def test_a_late_duplicate_result_is_acknowledged_and_ignored(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"))
    w.dispatch()
    w.result(n, "a1")
    dup = w.result(n, "a1", exit_code=9)
    assert [s.message for s in dup.sends] == [AckResults(["a1"])]
    assert not rows(dup, TaskOutcome) and job.counts.succeeded == 1


# -- nodes ------------------------------------------------------------------------------------


def test_a_lost_node_requeues_what_it_ran(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"))
    w.dispatch()
    w.core.agent_message(n.session.key, n.stream_id, AgentReport([("a1", T0)], []), T0)
    w.now += 11
    plan = w.core.tick(w.now)
    assert plan.close_streams == [n.session.key]
    (end,) = rows(plan, EndAttempt)
    assert end.failure is not None and end.failure.code == "NODE_LOST"
    (o,) = rows(plan, TaskOutcome)
    assert (o.state, o.requeue_count) == (TaskState.ACTIVE, 1)


def test_an_assignment_that_could_not_be_sent_is_not_a_requeue(w: World) -> None:
    job = w.job()
    w.node()
    w.add(job, spec("t1"))
    w.dispatch()
    plan = w.core.undelivered(["a1"], w.now)
    (o,) = rows(plan, TaskOutcome)
    assert (o.state, o.requeue_count, o.retry_count) == (TaskState.ACTIVE, 0, 0)
    assert rows(plan, EndAttempt)[0].failure.code == "NODE_UNAVAILABLE"  # type: ignore[union-attr]
    assert plan.dispatch and job.counts.active == 1


def test_reconnecting_with_an_attempt_nobody_wants_cancels_it(w: World) -> None:
    w.job()
    welcome = w.node(running=("ghost",))
    assert welcome.cancel_attempts == ["ghost"]


def test_removing_a_node_with_requeue_cancels_and_drains(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"))
    w.dispatch()
    plan = w.core.remove_nodes([n.session.key], 1, w.now)
    assert CancelAttempts(["a1"]) in [s.message for s in plan.sends]
    cancelled = Failure(Category.USER_ERROR, "TASK_CANCELLED", "stopped")
    (o,) = rows(w.result(n, "a1", 137, cancelled), TaskOutcome)
    assert (o.state, o.requeue_count) == (TaskState.ACTIVE, 1)
    assert not w.dispatch().sends  # the removed node takes nothing more


def test_a_removed_node_whose_stream_ends_requeues_at_once(w: World) -> None:
    # The pool-manager may remove a node whose agent died before the scheduler saw its
    # stream end: the cancel goes nowhere. The end of the stream settles the attempt then,
    # not liveness a grace period later.
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"))
    w.dispatch()
    w.core.agent_message(n.session.key, n.stream_id, AgentReport([("a1", T0)], []), T0)
    w.core.remove_nodes([n.session.key], 1, w.now)
    plan = w.core.disconnect(n.session.key, n.stream_id, w.now)
    (o,) = rows(plan, TaskOutcome)
    assert (o.state, o.requeue_count) == (TaskState.ACTIVE, 1)
    w.node("n2")
    assert assigns(w.dispatch()) == {"t1": "a2"}


def test_a_node_that_drops_its_stream_keeps_its_attempts_until_lost(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"))
    w.dispatch()
    plan = w.core.disconnect(n.session.key, n.stream_id, w.now)
    assert not rows(plan, TaskOutcome) and "a1" in w.core.attempts


# -- jobs -------------------------------------------------------------------------------------


def test_terminating_a_job_fails_what_waits_and_cancels_what_runs(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"), spec("t2"))
    w.dispatch()
    plan = w.core.terminate_job(ACCOUNT, "j", "", w.now)
    assert rows(plan, FailTasks)[0].task_pks == [w.pks["t2"]]
    assert [s.message for s in plan.sends] == [CancelAttempts(["a1"])]
    assert job.state == JobState.TERMINATING
    cancelled = Failure(Category.USER_ERROR, "TASK_CANCELLED", "stopped")
    done = w.result(n, "a1", 137, cancelled)
    assert rows(done, TaskOutcome)[0].failure.code == "JOB_TERMINATED"  # type: ignore[union-attr]
    assert job.state == JobState.COMPLETED and job.counts.row() == (0, 0, 2, 0, 2)


def test_a_refused_event_changes_nothing(w: World) -> None:
    job = w.job()
    w.core.terminate_job(ACCOUNT, "j", "", w.now)
    before = (job.state, job.counts.row())
    with pytest.raises(ShoalError) as e:
        w.core.terminate_job(ACCOUNT, "j", "", w.now)
    assert e.value.reason == "JOB_COMPLETED"
    with pytest.raises(ShoalError) as e:
        w.core.terminate_job(ACCOUNT, "j", "x" * 300, w.now)
    assert e.value.field == "reason"
    assert (job.state, job.counts.row()) == before


def test_a_terminate_between_dispatch_read_and_placement_places_nothing(w: World) -> None:
    # The race: dispatch reads the rows of its candidates (an await); the job is terminated
    # meanwhile. The core decides on what it holds when the read is back.
    job = w.job()
    w.node()
    w.add(job, spec("t1"))
    info = {pk: w.info(pk) for pk in w.core.candidates()}
    w.core.terminate_job(ACCOUNT, "j", "", w.now)
    plan = w.core.dispatch(info, w.now)
    assert not plan.sends and not rows(plan, AssignTask)
    assert job.counts.row() == (0, 0, 1, 0, 1)


def test_a_task_added_during_the_dispatch_read_waits_for_the_next_round(w: World) -> None:
    job = w.job()
    w.node(slots=2)
    w.add(job, spec("t1"))
    info = {pk: w.info(pk) for pk in w.core.candidates()}
    w.add(job, spec("t2"))
    first = w.core.dispatch(info, w.now)
    assert assigns(first) == {"t1": "a1"}
    assert assigns(w.dispatch()) == {"t2": "a2"}


def test_a_disabled_job_parks_its_tasks_and_returns_what_ran(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"), spec("t2"))
    w.dispatch()
    plan = w.core.disable_job(ACCOUNT, "j", DisableOption.REQUEUE, w.now)
    assert [s.message for s in plan.sends] == [CancelAttempts(["a1"])]
    cancelled = Failure(Category.USER_ERROR, "TASK_CANCELLED", "stopped")
    (o,) = rows(w.result(n, "a1", 137, cancelled), TaskOutcome)
    assert (o.state, o.requeue_count, o.retry_count) == (TaskState.ACTIVE, 0, 0)
    assert job.state == JobState.DISABLED and not w.dispatch().sends
    w.core.enable_job(ACCOUNT, "j", w.now)
    assert assigns(w.dispatch()) == {"t1": "a2"}  # the returned task first, as before


# -- dependencies and task operations ---------------------------------------------------------


def test_a_failed_dependency_blocks_until_unblocked(w: World) -> None:
    job = w.job(uses_deps=True)
    n = w.node()
    w.add(job, spec("a"), spec("b", deps=("a",)))
    assert assigns(w.dispatch()) == {"a": "a1"}
    failed = w.result(n, "a1", exit_code=1)
    assert SetBlocked(w.pks["b"], "dependency a failed (exit code 1)") in failed.rows
    assert not w.dispatch().sends
    why = w.core.explain(job, w.record("b", TaskState.ACTIVE))
    assert why.reasons[0] == "DEPENDENCY_FAILED"
    w.core.unblock_task(job, w.record("b", TaskState.ACTIVE), w.now)
    assert assigns(w.dispatch()) == {"b": "a2"}


def test_deleting_a_running_task_tells_its_node_and_its_end_frees_the_slot(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"), spec("t2"))
    w.dispatch()
    rec = w.record("t1", TaskState.RUNNING)
    rec = rec._replace(node="pools/p/nodes/n1")
    plan = w.core.delete_task(job, rec, w.now)
    assert [s.message for s in plan.sends] == [CancelAttempts(["a1"]), TaskDeleted("j", "t1")]
    cancelled = Failure(Category.USER_ERROR, "TASK_CANCELLED", "stopped")
    end = w.result(n, "a1", 137, cancelled)
    assert not rows(end, TaskOutcome)  # nothing left to write of the task
    assert job.counts.row() == (1, 0, 0, 0, 0)
    assert assigns(w.dispatch()) == {"t2": "a2"}


def test_why_a_task_waits(w: World) -> None:
    job = w.job()
    w.add(job, spec("t1"), spec("t2"))
    assert w.core.explain(job, w.record("t1", TaskState.ACTIVE)).reasons == ["NO_NODES"]
    w.node()
    w.dispatch()
    why = w.core.explain(job, w.record("t2", TaskState.ACTIVE))
    assert why.reasons == ["NO_FREE_SLOT"]


def test_why_names_a_deleted_pool_not_its_old_nodes(w: World) -> None:
    # Azure Batch keeps the job active when its pool is deleted; its tasks wait for a pool
    # of that id. `why` says so, rather than counting the nodes the pool had.
    job = w.job()
    w.node(slots=1)
    w.add(job, spec("t1"), spec("t2"))
    w.dispatch()
    why = w.core.explain(job, w.record("t2", TaskState.ACTIVE), pool_exists=False)
    assert why.reasons == ["POOL_NOT_FOUND"]
    assert "does not exist" in why.summary


# -- races, as the interleavings they were ----------------------------------------------------
# Each was found on the engine with the old shape, where a decision could straddle an await.
# Here the event that came in the window is fed between the read and the decision.


def test_a_reconnect_between_dispatch_read_and_placement_never_overcommits(w: World) -> None:
    job = w.job()
    w.node(slots=1)
    w.add(job, spec("t1"), spec("t2"), spec("t3"))
    info = {pk: w.info(pk) for pk in w.core.candidates()}
    again = w.node(slots=1)  # a new stream, the agent running nothing
    plan = w.core.dispatch(info, w.now)
    assert len(assigns(plan)) == 1 and plan.sends[0].stream_id == again.stream_id
    assert again.session.used_slots == 1
    assert not w.dispatch().sends


def test_dispatch_does_not_ask_for_another_round_it_cannot_use(w: World) -> None:
    # A job at max_parallel_tasks, and tasks too big for any node now: a round that placed
    # what it could must not kick itself forever.
    capped = w.job("capped", max_parallel=1)
    other = w.job("other")
    w.node(slots=4)
    w.add(capped, *[spec(f"c{i}") for i in range(5)])
    w.add(other, *[spec(f"o{i}") for i in range(5)])
    w.add(w.job("big"), *[spec(f"b{i}", slots=8) for i in range(2)])
    plan = w.dispatch()
    assert sorted(assigns(plan)) == ["c0", "o0", "o1", "o2"]
    assert not plan.dispatch
    assert not w.dispatch().dispatch and not w.core.candidates()


def test_deleting_a_task_whose_retry_is_not_written_yet_leaves_nothing_behind(w: World) -> None:
    # Memory: ACTIVE and queued for its retry. The row the engine read still says PREPARING.
    job = w.job()
    n = w.node()
    w.add(job, spec("t", retries=1))
    w.dispatch()
    w.result(n, "a1", exit_code=1)
    w.core.delete_task(job, w.record("t", TaskState.PREPARING), w.now)
    assert job.counts.row() == (0, 0, 0, 0, 0)
    assert not w.core.candidates() and not w.dispatch().sends


def test_two_reactivates_read_before_either_is_written_run_the_task_once(w: World) -> None:
    job = w.job()
    n = w.node(slots=2)
    w.add(job, spec("t"))
    w.dispatch()
    w.result(n, "a1", exit_code=1)
    row = w.record("t", TaskState.COMPLETED, Result.FAILURE)  # both read this row
    w.core.reactivate_task(job, row, w.now)
    with pytest.raises(ShoalError) as e:
        w.core.reactivate_task(job, row, w.now)
    assert e.value.reason == "TASK_NOT_FAILED"
    assert list(assigns(w.dispatch())) == ["t"] and not w.dispatch().sends


def test_a_terminate_that_read_the_row_before_a_reactivate_was_written_ends_the_task(
    w: World,
) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t"))
    w.dispatch()
    w.result(n, "a1", exit_code=1)
    row = w.record("t", TaskState.COMPLETED, Result.FAILURE)
    w.core.reactivate_task(job, row, w.now)
    plan = w.core.terminate_task(job, row, w.now)  # the row still says COMPLETED
    assert rows(plan, FailTasks)[0].failure.code == "TASK_TERMINATED"
    assert not w.dispatch().sends and job.counts.row() == (0, 0, 1, 0, 1)


def test_a_dependent_added_after_its_failed_dependency_is_reactivated_waits_for_it(
    w: World,
) -> None:
    job = w.job(uses_deps=True)
    n = w.node(slots=2)
    w.add(job, spec("a"))
    w.dispatch()
    w.result(n, "a1", exit_code=1)
    # The add read a's row (completed, failed) before the reactivate; it lands after.
    dep = DepRow(w.pks["a"], "a", TaskState.COMPLETED, Result.FAILURE, 1, None, None)
    known = w.core.check_dependencies(job, [spec("b", deps=("a",))], {"a": dep}, False)
    w.core.reactivate_task(job, w.record("a", TaskState.COMPLETED, Result.FAILURE), w.now)
    pk = next(w.task_pks)
    w.specs[pk], w.pks["b"] = (job, spec("b", deps=("a",))), pk
    added = w.core.tasks_added(job, [spec("b", deps=("a",))], [pk], known, w.now)
    assert not rows(added, SetBlocked)  # memory knows a runs again: b waits, not blocked
    assert list(assigns(w.dispatch())) == ["a"]
    w.result(n, "a2")
    assert list(assigns(w.dispatch())) == ["b"]


def test_a_failure_of_its_own_that_crossed_a_requeue_takes_its_job_action(w: World) -> None:
    # The node was being disabled (requeue) as the task failed by itself, no retries left.
    exits = convert.task_spec("x", task_pb2.Task(
        command_line="x", exit_conditions=task_pb2.ExitConditions(
            default=task_pb2.ExitOptions(job_action=task_pb2.ExitOptions.TERMINATE)))).exits
    job = w.job(exit_job_actions=True)
    n = w.node()
    w.add(job, spec("a", exits=exits), spec("b"))
    w.dispatch()
    w.core.set_node_scheduling(n.session.key, False, 1, w.now)
    w.result(n, "a1", exit_code=3)
    assert job.state in (JobState.TERMINATING, JobState.COMPLETED)
    assert job.terminate_reason == "TaskFailed"


def test_a_terminate_before_a_node_is_removed_while_away_stays_a_terminate(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"))
    w.dispatch()
    w.core.terminate_job(ACCOUNT, "j", "", w.now)
    w.core.disconnect(n.session.key, n.stream_id, w.now)
    plan = w.core.remove_nodes([n.session.key], 1, w.now)
    assert rows(plan, TaskOutcome)[0].failure.code == "JOB_TERMINATED"  # type: ignore[union-attr]
    assert job.state == JobState.COMPLETED and job.counts.row() == (0, 0, 1, 0, 1)


def test_work_a_draining_node_refused_is_requeued_not_failed(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"))
    w.dispatch()
    draining = Failure(Category.SERVER_ERROR, "NODE_DRAINING", "leaving")
    (o,) = rows(w.result(n, "a1", None, draining), TaskOutcome)
    assert (o.state, o.requeue_count, o.retry_count) == (TaskState.ACTIVE, 1, 0)


def test_a_job_end_is_told_only_to_the_nodes_that_ran_it(w: World) -> None:
    job = w.job(release=b"\x0a\x04true")  # any release task
    n1 = w.node("n1")
    w.node("n2")
    w.add(job, spec("t1"))
    (send,) = w.dispatch().sends
    assert send.node == n1.session.key
    w.result(n1, "a1")
    plan = w.core.terminate_job(ACCOUNT, "j", "", w.now)
    assert [(s.node, type(s.message).__name__) for s in plan.sends] == [
        (n1.session.key, "JobEnded")]


def test_a_heartbeat_changes_nothing_but_brings_an_unreachable_node_back(w: World) -> None:
    n = w.node()
    w.now += 1
    assert w.core.heartbeat(n.session.key, n.stream_id, w.now) is None
    assert n.session.last_seen == w.now
    w.now += 4
    w.core.tick(w.now)  # silent for 4 s: unreachable
    assert not n.session.schedulable
    back = w.core.heartbeat(n.session.key, n.stream_id, w.now)
    assert back is not None and back.dispatch and n.session.schedulable
