"""The scheduler's pure rules, rule by rule: judging an attempt, placement, liveness."""

from __future__ import annotations

from services.job_scheduler.engine import Outbound
from services.job_scheduler.model import (
    Attempt,
    CancelIntent,
    Category,
    Failure,
    Job,
    JobState,
    OnAllTasksComplete,
    Report,
    Result,
    TaskCounts,
    TaskState,
    job_should_complete,
    judge,
)
from services.job_scheduler.placement import PoolQueue, plan
from services.job_scheduler.sessions import Liveness, NodeSession, check_liveness, fence_after
from shoal.agent.v1 import agent_pb2
from tests.support import ManualClock


def attempt(**kw: object) -> Attempt:
    base: dict[str, object] = dict(
        attempt_id="a1", task_pk=1, job_pk=1, number=1, node_key=("acct", "p", "n1"),
        node_name="pools/p/nodes/n1", slots=1, assign_time=0.0, retry_count=0,
        requeue_count=0, max_retries=0,
    )
    base.update(kw)
    return Attempt(**base)  # type: ignore[arg-type]


def report(exit_code: int | None = 0, failure: Failure | None = None) -> Report:
    return Report("a1", exit_code, 1.0, 2.0, failure)


def session(node: str, slots: int, used: int = 0, **kw: object) -> NodeSession:
    s = NodeSession(("acct", "p", node), "p", node, slots, last_seen=0.0, **kw)  # type: ignore[arg-type]
    s.used_slots = used
    return s


def test_exit_zero_succeeds() -> None:
    out = judge(report(0), attempt(), max_requeues=10)
    assert (out.state, out.result) == (TaskState.COMPLETED, Result.SUCCESS)


def test_nonzero_exit_retries_while_retries_remain() -> None:
    out = judge(report(3), attempt(retry_count=1, max_retries=2), max_requeues=10)
    assert out.state == TaskState.ACTIVE and out.retried and not out.requeued


def test_nonzero_exit_fails_when_retries_are_used_up() -> None:
    out = judge(report(3), attempt(retry_count=2, max_retries=2), max_requeues=10)
    assert (out.state, out.result, out.retried) == (TaskState.COMPLETED, Result.FAILURE, False)


def test_failure_info_fails_without_retry() -> None:
    f = Failure(Category.USER_ERROR, "MAX_WALL_CLOCK_TIME_EXCEEDED", "over 1s")
    out = judge(report(137, f), attempt(max_retries=5), max_requeues=10)
    assert (out.state, out.result, out.failure) == (TaskState.COMPLETED, Result.FAILURE, f)


def test_lost_node_requeues_without_counting_a_retry() -> None:
    out = judge(None, attempt(max_retries=0), max_requeues=10)
    assert out.state == TaskState.ACTIVE and out.requeued and not out.retried


def test_requeue_limit_completes_as_failed() -> None:
    out = judge(None, attempt(requeue_count=3), max_requeues=3)
    assert out.state == TaskState.COMPLETED and out.failure is not None
    assert out.failure.code == "NODE_REQUEUE_LIMIT"


CANCELLED = Failure(Category.USER_ERROR, "TASK_CANCELLED", "the scheduler cancelled the attempt")
WHY = Failure(Category.USER_ERROR, "TASK_TERMINATED", "the task was terminated")


def test_cancel_for_requeue_requeues_what_the_agent_stopped() -> None:
    out = judge(report(137, CANCELLED), attempt(cancel=CancelIntent.REQUEUE, cancel_failure=WHY),
                max_requeues=10)
    assert out.state == TaskState.ACTIVE and out.requeued and out.by_cancel


def test_cancel_for_terminate_completes_with_the_recorded_failure() -> None:
    for rep in (report(137, CANCELLED), None):  # stopped by the agent, or its node is gone
        out = judge(rep, attempt(cancel=CancelIntent.TERMINATE, cancel_failure=WHY),
                    max_requeues=10)
        assert (out.state, out.result, out.failure) == (TaskState.COMPLETED, Result.FAILURE, WHY)
        assert out.by_cancel


def test_a_task_that_finished_before_the_cancel_reached_it_stays_finished() -> None:
    # The agent reported an end of the task's own (not TASK_CANCELLED): a cancel never turns
    # a success into a failure or reruns work that completed.
    for intent in (CancelIntent.TERMINATE, CancelIntent.REQUEUE, CancelIntent.RETURN):
        done = judge(report(0), attempt(cancel=intent, cancel_failure=WHY), max_requeues=10)
        assert (done.state, done.result, done.by_cancel) == (
            TaskState.COMPLETED, Result.SUCCESS, False)
        failed = judge(report(3), attempt(cancel=intent, cancel_failure=WHY), max_requeues=10)
        assert (failed.state, failed.result, failed.by_cancel) == (
            TaskState.COMPLETED, Result.FAILURE, False)


def test_work_refused_unrun_is_not_an_end_of_its_own() -> None:
    # NODE_DRAINING at the requeue limit would complete the task (NODE_REQUEUE_LIMIT): under
    # a cancel it is the cancel that decides, and a disabled job's task goes back unharmed.
    drained = report(None, Failure(Category.SERVER_ERROR, "NODE_DRAINING", "draining"))
    at_limit = dict(requeue_count=10, cancel_failure=WHY)
    out = judge(drained, attempt(cancel=CancelIntent.TERMINATE, **at_limit), max_requeues=10)
    assert (out.state, out.failure, out.by_cancel) == (TaskState.COMPLETED, WHY, True)
    out = judge(drained, attempt(cancel=CancelIntent.RETURN, **at_limit), max_requeues=10)
    assert (out.state, out.by_cancel) == (TaskState.ACTIVE, True)


def test_a_failure_of_its_own_stands_under_a_cancel() -> None:
    upload = Failure(Category.USER_ERROR, "OUTPUT_FILE_UPLOAD_FAILED", "denied")
    for intent in (CancelIntent.TERMINATE, CancelIntent.REQUEUE, CancelIntent.RETURN):
        out = judge(report(0, upload), attempt(cancel=intent, cancel_failure=WHY, max_retries=3),
                    max_requeues=10)
        assert (out.state, out.failure, out.by_cancel) == (TaskState.COMPLETED, upload, False)


def test_a_retry_gives_way_to_the_cancel() -> None:
    # It failed on its own with retries left: the cancel decides, not the retry.
    a = dict(max_retries=3, cancel_failure=WHY)
    out = judge(report(3), attempt(cancel=CancelIntent.TERMINATE, **a), max_requeues=10)
    assert (out.state, out.failure, out.retried) == (TaskState.COMPLETED, WHY, False)
    out = judge(report(3), attempt(cancel=CancelIntent.REQUEUE, **a), max_requeues=10)
    assert (out.state, out.requeued, out.retried) == (TaskState.ACTIVE, True, False)
    out = judge(report(3), attempt(cancel=CancelIntent.RETURN, **a), max_requeues=10)
    assert (out.state, out.requeued, out.retried) == (TaskState.ACTIVE, False, False)


def job(on_all: OnAllTasksComplete, counts: TaskCounts) -> Job:
    return Job(1, "acct", "j", "p", 0, on_all, JobState.ACTIVE, 0.0, 0.0, counts=counts)


def test_job_completes_only_with_terminate_job_and_nothing_left() -> None:
    done = TaskCounts(completed=3, succeeded=3)
    assert job_should_complete(job(OnAllTasksComplete.TERMINATE_JOB, done))
    assert not job_should_complete(job(OnAllTasksComplete.NO_ACTION, done))
    assert not job_should_complete(job(OnAllTasksComplete.TERMINATE_JOB, TaskCounts(active=1, completed=2)))


def test_job_with_no_tasks_yet_is_not_complete() -> None:
    # Azure Batch completes it at once; we wait for the first task.
    assert not job_should_complete(job(OnAllTasksComplete.TERMINATE_JOB, TaskCounts()))


def test_plan_spreads_over_the_node_with_most_free_slots() -> None:
    q = PoolQueue()
    q.push_many(1, 0, [1, 2, 3, 4])
    a, b = session("a", 4, used=2), session("b", 4)
    picks = plan(q, [a, b], limit=100)
    nodes = [s.node_id for _, _, s, _ in picks]
    assert nodes.count("b") == 3 and nodes.count("a") == 1
    assert (a.used_slots, b.used_slots) == (3, 3)


def test_plan_serves_higher_priority_jobs_first_and_stops_at_capacity() -> None:
    q = PoolQueue()
    q.push_many(1, 0, [10, 11])
    q.push_many(2, 5, [20, 21])
    picks = plan(q, [session("a", 3)], limit=100)
    assert [t for _, t, _, _ in picks] == [20, 21, 10]
    assert len(q) == 1


def test_plan_skips_nodes_that_are_removing_or_unreachable() -> None:
    q = PoolQueue()
    q.push_many(1, 0, [1, 2])
    gone = session("x", 4, removing=True)
    silent = session("y", 4, liveness=Liveness.UNREACHABLE)
    assert plan(q, [gone, silent], limit=10) == []
    assert len(q) == 2


def test_plan_respects_the_limit() -> None:
    q = PoolQueue()
    q.push_many(1, 0, list(range(10)))
    assert len(plan(q, [session("a", 100)], limit=4)) == 4
    assert len(q) == 6


def test_liveness_marks_unreachable_then_lost() -> None:
    s = session("a", 1)
    s.last_seen = 100.0
    assert check_liveness([s], 104.0, 6.0, 20.0) == ([], [])
    unreachable, lost = check_liveness([s], 107.0, 6.0, 20.0)
    assert unreachable == [s] and s.liveness == Liveness.UNREACHABLE
    unreachable, lost = check_liveness([s], 121.0, 6.0, 20.0)
    assert lost == [s] and s.liveness == Liveness.LOST
    assert check_liveness([s], 200.0, 6.0, 20.0) == ([], [])


def test_an_agent_fences_itself_before_the_scheduler_can_requeue_its_attempts() -> None:
    # The defaults: requeued 20 s after the last heartbeat heard; the agent kills at 16 s.
    assert fence_after(2.0, 20.0, 20.0) == 16.0
    # After a restart the grace is the shorter window; a margin of at least 1 s.
    assert fence_after(0.2, 20.0, 4.0) == 3.0
    # Never more than half the window goes to the margin.
    assert fence_after(2.0, 3.0, 20.0) == 1.5
    for hb, lost, grace in [(0.5, 4.0, 4.0), (5.0, 60.0, 30.0), (0.05, 0.5, 0.5)]:
        assert 0 < fence_after(hb, lost, grace) < min(lost, grace)


async def test_the_scheduler_echoes_heartbeats_alone_only_on_a_quiet_stream() -> None:
    clock = ManualClock(100.0)
    out = Outbound(1, echo_every=2.0, clock=clock)
    out.heard(1)  # the stream was just opened: not quiet yet
    assert out.queue.empty()
    clock.advance(2.0)
    out.heard(2)
    echo = out.queue.get_nowait()
    assert echo is not None and out.stamp(echo).heartbeat_seen == 2
    clock.advance(1.0)
    out.heard(3)  # written a second ago: the next message carries it
    assert out.queue.empty()
    out.send(agent_pb2.SchedulerMessage(ack_attempts=["a1"]))
    msg = out.queue.get_nowait()
    assert msg is not None and out.stamp(msg).heartbeat_seen == 3
    clock.advance(5.0)
    out.heard(2)  # older than what was echoed: nothing
    assert out.queue.empty() and out.seen == 3
