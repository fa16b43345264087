"""Task dependencies with a failure, exit conditions and `why`, through the real suite: real
processes on real nodes, the state read back through the gateway."""

from __future__ import annotations

import shlex
from pathlib import Path

from shoal.suite import LocalSuite
from shoal.v1 import job_pb2, task_pb2
from tests.support import wait_for


def _sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


def test_dependencies_with_a_failure_block_then_unblock_and_satisfy(
    suite: LocalSuite, tmp_path: Path
) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=2, task_slots_per_node=2)
    c.create_job("j", pool_id="p", uses_task_dependencies=True)
    log = tmp_path / "order"
    c.add_task("j", "extract", _sh(f"echo extract >> {log}"))
    c.add_task("j", "broken", _sh(f"echo broken >> {log}; exit 3"))
    c.add_task("j", "load", _sh(f"echo load >> {log}"), depends_on=["extract", "broken"])
    c.add_task("j", "report", _sh(f"echo report >> {log}"), depends_on=["load"])
    blocked = wait_for(lambda: (t := c.get_task("j", "load")).state_reason.startswith("blocked")
                       and t, "load to be blocked by broken's failure")
    assert blocked.state == task_pb2.Task.ACTIVE
    assert blocked.state_reason == "blocked: dependency broken failed (exit code 3)"
    why = c.explain_task("j", "load")
    assert why.reasons[0] == "DEPENDENCY_FAILED" and "broken" in why.summary
    assert c.get_task("j", "report").state_reason == "waiting for 1 dependency"
    assert "load" not in log.read_text()
    c.unblock_task("j", "load")
    done = c.wait_task("j", "report", timeout=60)
    assert done.execution_info.result == task_pb2.TaskExecutionInfo.SUCCESS
    lines = log.read_text().split()
    assert lines.index("load") > lines.index("extract") and lines[-1] == "report"


def test_an_exit_code_mapped_to_satisfy_lets_dependents_run(suite: LocalSuite) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1)
    c.create_job("j", pool_id="p", uses_task_dependencies=True)
    rules = task_pb2.ExitConditions(exit_codes=[task_pb2.ExitCodeMapping(
        code=2, exit_options=task_pb2.ExitOptions(dependency_action=task_pb2.ExitOptions.SATISFY))])
    c.add_task("j", "grep", _sh("exit 2"), exit_conditions=rules)  # "no match" is fine
    c.add_task("j", "next", "/bin/true", depends_on=["grep"])
    t = c.wait_task("j", "next", timeout=60)
    assert t.execution_info.result == task_pb2.TaskExecutionInfo.SUCCESS
    assert c.get_task("j", "grep").execution_info.result == task_pb2.TaskExecutionInfo.FAILURE


def test_a_range_fan_in_runs_the_reduce_once_all_maps_are_done(suite: LocalSuite) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=2, task_slots_per_node=4)
    c.create_job("j", pool_id="p", uses_task_dependencies=True,
                 on_all_tasks_complete="terminate_job")
    c.add_tasks("j", [{"id": str(i), "command_line": f"/bin/echo {i}"} for i in range(200)])
    c.add_task("j", "reduce", "/bin/echo reduced", depends_on=[(0, 199)])
    job = c.wait_job("j", timeout=120)
    assert job.state == job_pb2.Job.COMPLETED and job.task_counts.succeeded == 201
    reduce_start = c.get_task("j", "reduce").execution_info.start_time.ToNanoseconds()
    last_map_end = max(c.get_task("j", str(i)).execution_info.end_time.ToNanoseconds()
                       for i in range(0, 200, 7))
    assert reduce_start >= last_map_end


def test_bad_dependencies_are_refused_with_the_field(suite: LocalSuite) -> None:
    from shoal.errors import ShoalError

    c = suite.client()
    c.create_pool("p", target_nodes=0)
    c.create_job("j", pool_id="p", uses_task_dependencies=True)
    c.create_job("plain", pool_id="p")
    # A single CreateTask names its own fields (`task.…`), not a batch's (`requests[0].task.…`),
    # and quotes ids as they were typed.
    for job, kwargs, reason, field in (
            ("j", {"depends_on": ["Ghost"]}, "UNKNOWN_DEPENDENCY", "task.depends_on"),
            ("j", {"depends_on": ["t"]}, "INVALID_ARGUMENT", "task.depends_on"),
            ("plain", {"depends_on": ["Other"]}, "INVALID_ARGUMENT", "task.depends_on")):
        try:
            c.add_task(job, "t", "/bin/true", **kwargs)
        except ShoalError as e:
            assert (e.reason, e.field) == (reason, field), e
            assert "Ghost" in str(e) or reason != "UNKNOWN_DEPENDENCY", e
        else:
            raise AssertionError(f"{kwargs} was accepted")
    try:
        c.add_tasks("j", [{"id": "A", "command_line": "true", "depends_on": ["B"]},
                          {"id": "B", "command_line": "true", "depends_on": ["A"]}])
    except ShoalError as e:
        assert e.reason == "DEPENDENCY_CYCLE" and e.field == "requests[0].task.depends_on", e
        assert "A -> B -> A" in str(e), e
    else:
        raise AssertionError("a cycle was accepted")
    assert list(c.list_tasks("j")) == [] and list(c.list_tasks("plain")) == []
