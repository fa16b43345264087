"""Azure Batch's job and task behaviours, rule by rule, through the real scheduler engine with
no network (tests/scheduler/harness.py): dependencies, exit conditions, job actions, job
disable/enable and constraints, parallelism, slots, fill types, priorities, task operations,
and `why`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.job_scheduler import convert
from services.job_scheduler.engine import Engine
from services.job_scheduler.model import JobState, Result, TaskDefinition, TaskState
from shoal.v1 import job_pb2, task_pb2
from tests.scheduler.harness import ACCOUNT, Apps, Clock, Node, expect_error, make_job, settle

T = task_pb2


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[Apps]:
    a = Apps(tmp_path / "sched.db", Clock())
    yield a
    await a.close()


def task(tid: str, *, deps: list[str] = (), ranges: list[tuple[int, int]] = (),  # type: ignore[assignment]
         exits: T.ExitConditions | None = None, slots: int = 0, priority: int = 0,
         retries: int | None = None) -> TaskDefinition:
    t = T.Task(command_line=f"echo {tid}", required_slots=slots, priority=priority)
    if deps or ranges:
        t.depends_on.task_ids.extend(deps)
        t.depends_on.task_id_ranges.extend(T.TaskIdRange(start=a, end=b) for a, b in ranges)
    if exits is not None:
        t.exit_conditions.CopyFrom(exits)
    if retries is not None:
        t.constraints.max_task_retry_count = retries
    return convert.task_spec(tid, t)


def satisfy_on(code: int) -> T.ExitConditions:
    return T.ExitConditions(exit_codes=[T.ExitCodeMapping(
        code=code, exit_options=T.ExitOptions(dependency_action=T.ExitOptions.SATISFY))])


async def add(app: Engine, *specs: TaskDefinition, job: str = "j") -> None:
    await app.create_tasks(ACCOUNT, job, list(specs))


async def state(app: Engine, tid: str, job: str = "j") -> tuple[TaskState, str]:
    t = await app.get_task(ACCOUNT, job, tid)
    return t.state, t.state_reason


async def assigned(app: Engine, node: Node) -> dict[str, str]:
    """task id -> attempt id of what the node was given since last asked."""
    await settle(app)
    return {a.task_id: a.attempt_id for a in node.assignments()}


async def deps_job(apps: Apps, slots: int = 4, **kw: object) -> tuple[Engine, Node]:
    app = await apps.open()
    await make_job(app, uses_task_dependencies=True, **kw)
    n = Node(app, "a", slots)
    await n.connect()
    return app, n


# -- dependencies ----------------------------------------------------------------------------


async def test_a_dependent_waits_for_its_dependency_then_runs(apps: Apps) -> None:
    app, n = await deps_job(apps)
    await add(app, task("a"), task("b", deps=["a"]))
    got = await assigned(app, n)
    assert list(got) == ["a"]
    assert await state(app, "b") == (TaskState.ACTIVE, "waiting for 1 dependency")
    await n.finish(got["a"], 0)
    assert list(await assigned(app, n)) == ["b"]


async def test_a_failed_dependency_blocks_and_says_which(apps: Apps) -> None:
    app, n = await deps_job(apps)
    await add(app, task("a"), task("b", deps=["a"]), task("c", deps=["b"]))
    got = await assigned(app, n)
    await n.finish(got["a"], 2)
    assert await assigned(app, n) == {}
    st, why = await state(app, "b")
    assert st == TaskState.ACTIVE and why == "blocked: dependency a failed (exit code 2)"
    assert await state(app, "c") == (TaskState.ACTIVE, "waiting for 1 dependency")
    _, summary, reasons, _ = await app.explain_task(ACCOUNT, "j", "b")
    assert reasons[0] == "DEPENDENCY_FAILED" and "dependency a failed" in summary


async def test_a_blocked_task_can_be_unblocked_or_terminated(apps: Apps) -> None:
    app, n = await deps_job(apps)
    await add(app, task("a"), task("b", deps=["a"]), task("c", deps=["a"]))
    got = await assigned(app, n)
    await n.finish(got["a"], 1)
    await app.unblock_task(ACCOUNT, "j", "b")
    assert list(await assigned(app, n)) == ["b"]
    t = await app.terminate_task(ACCOUNT, "j", "c")
    assert t.state == TaskState.COMPLETED and t.failure is not None
    assert t.failure.code == "TASK_TERMINATED"
    await expect_error(app.unblock_task(ACCOUNT, "j", "b"), "TASK_NOT_BLOCKED")


async def test_exit_conditions_can_let_dependents_run_after_a_failure(apps: Apps) -> None:
    app, n = await deps_job(apps)
    await add(app, task("a", exits=satisfy_on(3)), task("b", deps=["a"]),
              task("x"), task("y", deps=["x"]))
    got = await assigned(app, n)
    await n.finish(got["a"], 3)  # mapped to satisfy
    await n.finish(got["x"], 4)  # default for a failure: block
    assert list(await assigned(app, n)) == ["b"]
    assert (await state(app, "y"))[1].startswith("blocked: dependency x failed")


async def test_exit_code_ranges_default_and_pre_processing_errors(apps: Apps) -> None:
    app, n = await deps_job(apps)
    block = T.ExitOptions(dependency_action=T.ExitOptions.BLOCK)
    sat = T.ExitOptions(dependency_action=T.ExitOptions.SATISFY)
    rules = T.ExitConditions(
        exit_code_ranges=[T.ExitCodeRangeMapping(start=10, end=20, exit_options=sat)],
        pre_processing_error=sat, default=block)
    await add(app, task("r", exits=rules), task("p", exits=rules), task("d", exits=rules),
              task("r2", deps=["r"]), task("p2", deps=["p"]), task("d2", deps=["d"]))
    got = await assigned(app, n)
    await n.finish(got["r"], 15)
    await n.finish(got["p"], None, failure=(1, "RESOURCE_FILE_DOWNLOAD_FAILED"))
    await n.finish(got["d"], 0)  # `default` answers failures only (Azure): a success satisfies
    assert sorted(await assigned(app, n)) == ["d2", "p2", "r2"]


async def test_dependencies_on_tasks_that_already_completed(apps: Apps) -> None:
    app, n = await deps_job(apps)
    await add(app, task("ok"), task("bad"))
    got = await assigned(app, n)
    await n.finish(got["ok"], 0)
    await n.finish(got["bad"], 1)
    await add(app, task("after-ok", deps=["ok"]), task("after-bad", deps=["bad"]))
    assert list(await assigned(app, n)) == ["after-ok"]
    assert (await state(app, "after-bad"))[1] == "blocked: dependency bad failed (exit code 1)"


async def test_unknown_ids_cycles_and_jobs_without_dependencies_are_refused(apps: Apps) -> None:
    app, _ = await deps_job(apps)
    await expect_error(add(app, task("b", deps=["nope"])), "UNKNOWN_DEPENDENCY")
    e = await expect_error(add(app, task("x", deps=["y"]), task("y", deps=["z"]),
                               task("z", deps=["x"])), "DEPENDENCY_CYCLE")
    assert e.field == "requests[0].task.depends_on" and "x -> y -> z -> x" in e.message
    await expect_error(add(app, task("r", ranges=[(1, 3)]), task("1"), task("2")),
                       "UNKNOWN_DEPENDENCY")  # 3 does not exist
    with pytest.raises(Exception, match="depend on itself"):
        task("s", deps=["S"])
    await make_job(app, "plain")
    await add(app, task("a"), job="plain")
    e = await expect_error(add(app, task("b", deps=["a"]), job="plain"), "INVALID_ARGUMENT")
    assert e.field == "requests[0].task.depends_on"
    assert [t.spec.id for t in await app.list_tasks(ACCOUNT, "j", None, None, 100)] == []


async def test_a_fan_in_of_ten_thousand_tasks_into_one_reduce(apps: Apps) -> None:
    app, n = await deps_job(apps, slots=256)
    await add(app, *[task(str(i)) for i in range(10_000)])
    await add(app, task("reduce", ranges=[(0, 9_999)]))
    done = 0
    while done < 10_000:
        got = await assigned(app, n)
        assert "reduce" not in got
        for aid in got.values():
            await n.finish(aid, 0)
        done += len(got)
        if done < 10_000:
            assert (await state(app, "reduce"))[1] == f"waiting for {10_000 - done} dependencies"
    assert list(await assigned(app, n)) == ["reduce"]


async def test_waiting_and_blocked_tasks_survive_a_restart(apps: Apps) -> None:
    app, n = await deps_job(apps)
    await add(app, task("a"), task("b"), task("w", deps=["a"]), task("k", deps=["b"]))
    got = await assigned(app, n)
    await n.finish(got["b"], 5)
    app = await apps.restart(app)
    n = Node(app, "a", 4, running={got["a"]})
    await n.connect()
    assert (await state(app, "k"))[1].startswith("blocked: dependency b failed")
    assert await state(app, "w") == (TaskState.ACTIVE, "waiting for 1 dependency")
    await settle(app)
    n.drain()
    await n.finish(got["a"], 0)
    assert list(await assigned(app, n)) == ["w"]


async def test_reactivating_a_failed_dependency_lets_its_dependents_wait_for_it_again(apps: Apps) -> None:
    app, n = await deps_job(apps)
    await add(app, task("a"), task("b", deps=["a"]))
    got = await assigned(app, n)
    await n.finish(got["a"], 1)
    assert (await state(app, "b"))[1].startswith("blocked")
    t = await app.reactivate_task(ACCOUNT, "j", "a")
    assert t.state == TaskState.ACTIVE and t.retry_count == 0
    assert await state(app, "b") == (TaskState.ACTIVE, "waiting for 1 dependency")
    got = await assigned(app, n)
    await n.finish(got["a"], 0)
    assert list(await assigned(app, n)) == ["b"]


async def test_a_task_with_waiting_dependents_cannot_be_deleted(apps: Apps) -> None:
    app, n = await deps_job(apps)
    await add(app, task("a"), task("b", deps=["a"]))
    await expect_error(app.delete_task(ACCOUNT, "j", "a"), "TASK_HAS_DEPENDENTS")
    await app.delete_task(ACCOUNT, "j", "b")
    await app.delete_task(ACCOUNT, "j", "a")
    assert await app.list_tasks(ACCOUNT, "j", None, None, 10) == []
    assert app.get_job(ACCOUNT, "j").counts.active == 0


# -- job actions, disable/enable, constraints -------------------------------------------------


async def test_a_failure_terminates_the_job_when_it_performs_exit_options(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app, on_task_failure=job_pb2.PERFORM_EXIT_OPTIONS_JOB_ACTION)
    n = Node(app, "a", 1)
    await n.connect()
    await add(app, task("a"), task("b"))
    got = await assigned(app, n)
    await n.finish(got["a"], 1)
    job = app.get_job(ACCOUNT, "j")
    assert job.state == JobState.COMPLETED and job.terminate_reason == "TaskFailed"
    assert (await app.get_task(ACCOUNT, "j", "b")).failure.code == "JOB_TERMINATED"  # type: ignore[union-attr]


async def test_an_exit_code_can_disable_the_job_and_a_job_action_needs_the_job_to_allow_it(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app, on_task_failure=job_pb2.PERFORM_EXIT_OPTIONS_JOB_ACTION)
    n = Node(app, "a", 1)
    await n.connect()
    disable = T.ExitConditions(exit_codes=[T.ExitCodeMapping(
        code=9, exit_options=T.ExitOptions(job_action=T.ExitOptions.DISABLE))])
    await add(app, task("a", exits=disable), task("b"))
    got = await assigned(app, n)
    await n.finish(got["a"], 9)
    assert app.get_job(ACCOUNT, "j").state == JobState.DISABLED
    assert await assigned(app, n) == {}
    assert await state(app, "b") == (TaskState.ACTIVE, "the job is disabled")
    await make_job(app, "plain")
    e = await expect_error(add(app, task("x", exits=disable), job="plain"), "INVALID_ARGUMENT")
    assert e.field == "requests[0].task.exit_conditions"


async def test_disable_requeue_terminate_wait_and_enable(apps: Apps) -> None:
    app = await apps.open()
    n = Node(app, "a", 4)
    await n.connect()
    for job in ("rq", "tm", "wt"):
        await make_job(app, job)
        await add(app, task(f"{job}1"), job=job)
    got = await assigned(app, n)
    for job, opt in (("rq", job_pb2.DISABLE_REQUEUE), ("tm", job_pb2.DISABLE_TERMINATE),
                     ("wt", job_pb2.DISABLE_WAIT)):
        await app.disable_job(ACCOUNT, job, opt)
    stopped = {aid for m in n.drain() for aid in m.cancel_attempts}
    assert stopped == {got["rq1"], got["tm1"]}
    for aid in stopped:
        await n.cancelled(aid)
    assert app.get_job(ACCOUNT, "rq").state == JobState.DISABLED
    assert (await app.get_task(ACCOUNT, "rq", "rq1")).state == TaskState.ACTIVE  # requeued
    assert (await app.get_task(ACCOUNT, "tm", "tm1")).failure.code == "JOB_DISABLED"  # type: ignore[union-attr]
    assert app.get_job(ACCOUNT, "wt").state == JobState.DISABLING
    await n.finish(got["wt1"], 0)
    await app.commit()
    assert app.get_job(ACCOUNT, "wt").state == JobState.DISABLED
    await add(app, task("late"), job="rq")  # a disabled job takes tasks; they wait
    assert await assigned(app, n) == {}
    await app.enable_job(ACCOUNT, "rq")
    assert sorted(await assigned(app, n)) == ["late", "rq1"]
    await expect_error(app.enable_job(ACCOUNT, "rq"), "JOB_NOT_DISABLED")


async def test_job_constraints_default_retries_and_wall_clock(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app, constraints=job_pb2.JobConstraints(
        max_task_retry_count=2, max_wall_clock_time={"seconds": 60}))
    n = Node(app, "a", 2)
    await n.connect()
    await add(app, task("inherits"), task("own", retries=0))
    got = await assigned(app, n)
    await n.finish(got["own"], 1)
    await n.finish(got["inherits"], 1)
    again = await assigned(app, n)
    assert list(again) == ["inherits"]  # retried: the job's default of 2
    assert (await app.get_task(ACCOUNT, "j", "own")).state == TaskState.COMPLETED
    app.clock.advance(61)  # type: ignore[attr-defined]
    await app.check_liveness()
    job = app.get_job(ACCOUNT, "j")
    assert job.terminate_reason == "MaxWallClockTimeExpiry"
    assert job.state in (JobState.TERMINATING, JobState.COMPLETED)


# -- placement ---------------------------------------------------------------------------------


async def test_max_parallel_tasks_caps_a_job(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app, max_parallel_tasks=2)
    n = Node(app, "a", 8)
    await n.connect()
    await add(app, *[task(f"t{i}") for i in range(5)])
    got = await assigned(app, n)
    assert len(got) == 2
    _, _, reasons, _ = await app.explain_task(ACCOUNT, "j", "t4")
    assert "MAX_PARALLEL_TASKS" in reasons
    await n.finish(next(iter(got.values())), 0)
    assert len(await assigned(app, n)) == 1


async def test_required_slots_take_that_many_slots_of_one_node(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    a, b = Node(app, "a", 4), Node(app, "b", 4)
    await a.connect()
    await b.connect()
    await add(app, task("big", slots=3), task("big2", slots=3), task("s1"), task("s2"),
              task("huge", slots=5))
    got = {**await assigned(app, a), **await assigned(app, b)}
    assert sorted(got) == ["big", "big2", "s1", "s2"]
    assert sum(x.used_slots for x in app.core.sessions.values()) == 8
    _, _, reasons, _ = await app.explain_task(ACCOUNT, "j", "huge")
    assert reasons == ["NO_NODE_FITS"]


async def test_pack_fills_one_node_before_the_next_and_spread_evens_them(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app, "packed", pool="k")
    k1, k2 = Node(app, "k1", 4, pool="k"), Node(app, "k2", 4, pool="k")
    await k1.connect()
    await k2.connect()
    await add(app, *[task(f"t{i}") for i in range(4)], job="packed")
    assert (len(await assigned(app, k1)), len(await assigned(app, k2))) == (4, 0)
    await make_job(app, "spread")
    p1, p2 = Node(app, "p1", 4), Node(app, "p2", 4)
    await p1.connect()
    await p2.connect()
    await add(app, *[task(f"s{i}") for i in range(4)], job="spread")
    assert (len(await assigned(app, p1)), len(await assigned(app, p2))) == (2, 2)


async def test_task_priority_orders_a_jobs_ready_tasks(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    await add(app, task("low", priority=-5), task("plain1"), task("high", priority=10),
              task("plain2"), task("higher", priority=20))
    n = Node(app, "a", 1)
    await n.connect()
    order = []
    for _ in range(5):
        got = await assigned(app, n)
        order += list(got)
        await n.finish(next(iter(got.values())), 0)
    assert order == ["higher", "high", "plain1", "plain2", "low"]


# -- task operations and why --------------------------------------------------------------------


async def test_terminate_a_running_task_and_reactivate_it(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    n = Node(app, "a", 1)
    await n.connect()
    await add(app, task("t", retries=3))
    got = await assigned(app, n)
    await app.terminate_task(ACCOUNT, "j", "t")
    assert got["t"] in {aid for m in n.drain() for aid in m.cancel_attempts}
    await n.cancelled(got["t"])
    t = await app.get_task(ACCOUNT, "j", "t")
    assert (t.state, t.failure.code, t.retry_count) == (TaskState.COMPLETED, "TASK_TERMINATED", 0)  # type: ignore[union-attr]
    await app.reactivate_task(ACCOUNT, "j", "t")
    got = await assigned(app, n)
    assert list(got) == ["t"]
    await expect_error(app.reactivate_task(ACCOUNT, "j", "t"), "TASK_NOT_FAILED")
    await n.finish(got["t"], 0)
    again = await app.terminate_task(ACCOUNT, "j", "t")  # completed: returned as it is
    assert (again.state, again.result, again.failure) == (TaskState.COMPLETED, Result.SUCCESS, None)


async def test_why_explains_each_kind_of_wait(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    await add(app, task("t0"), task("t1"))
    _, summary, reasons, _ = await app.explain_task(ACCOUNT, "j", "t0")
    assert reasons == ["NO_NODES"] and "no connected nodes" in summary
    n = Node(app, "a", 1)
    await n.connect()
    got = await assigned(app, n)
    assert (await app.explain_task(ACCOUNT, "j", "t1"))[2] == ["NO_FREE_SLOT"]
    assert (await app.explain_task(ACCOUNT, "j", "t0"))[2] == ["PREPARING"]
    await n.start(got["t0"])
    assert (await app.explain_task(ACCOUNT, "j", "t0"))[2] == ["RUNNING"]
    await n.finish(got["t0"], 0)
    assert (await app.explain_task(ACCOUNT, "j", "t0"))[2] == ["COMPLETED"]
