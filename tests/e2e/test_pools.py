"""Pools through the real processes: resize up and down with each node deallocation option,
delete, and paging — agents really start and stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal import ShoalError
from shoal.suite import LocalSuite
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.support import processes_mentioning, wait_for

IDLE, RUNNING, LEAVING = pool_pb2.Node.IDLE, pool_pb2.Node.RUNNING, pool_pb2.Node.LEAVING


def states(c, pool: str) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted(n.state for n in c.list_nodes(pool))


def agents(suite: LocalSuite) -> int:
    return len([p for p, cmd in processes_mentioning(str(suite.state_dir)).items() if "-m agent" in cmd])


def test_resize_down_removes_idle_nodes_first_and_running_tasks_finish(
    suite: LocalSuite, tmp_path: Path
) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=3)
    wait_for(lambda: states(c, "p") == [IDLE] * 3, "3 idle nodes")
    c.create_job("j", pool_id="p")
    go = tmp_path / "go"
    c.add_task("j", "long", f"/bin/sh -c 'while [ ! -e {go} ]; do sleep 0.05; done; echo finished'")
    busy = wait_for(lambda: [n.name for n in c.list_nodes("p") if n.state == RUNNING], "a running node")
    c.resize_pool("p", 1, node_deallocation_option="taskcompletion")
    wait_for(lambda: [n.name for n in c.list_nodes("p")] == busy, "the idle nodes to go")
    wait_for(lambda: agents(suite) == 1, "2 agents to stop")
    assert c.get_pool("p").allocation_state == pool_pb2.Pool.STEADY
    go.touch()
    wait_for(lambda: c.get_task("j", "long").state == task_pb2.Task.COMPLETED, "the task to finish")
    info = c.get_task("j", "long").execution_info
    assert (info.result, info.requeue_count) == (task_pb2.TaskExecutionInfo.SUCCESS, 0)


def test_resize_to_zero_with_requeue_puts_running_tasks_back(suite: LocalSuite) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1)
    c.create_job("j", pool_id="p")
    c.add_task("j", "t", "sleep 600")
    wait_for(lambda: c.get_task("j", "t").state == task_pb2.Task.RUNNING, "the task to run")
    c.resize_pool("p", 0, node_deallocation_option="requeue")
    wait_for(lambda: list(c.list_nodes("p")) == [] and agents(suite) == 0, "the node to go")
    t = c.get_task("j", "t")
    assert (t.state, t.execution_info.requeue_count, t.execution_info.retry_count) == (
        task_pb2.Task.ACTIVE, 1, 0)
    c.resize_pool("p", 1)
    wait_for(lambda: c.get_task("j", "t").state == task_pb2.Task.RUNNING, "the task to run again")
    c.terminate_job("j")
    t = wait_for(lambda: (t := c.get_task("j", "t")).state == task_pb2.Task.COMPLETED and t,
                 "terminate to stop it")
    assert t.execution_info.failure_info.code == "JOB_TERMINATED"


def test_resize_with_terminate_fails_running_tasks(suite: LocalSuite) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1)
    c.create_job("j", pool_id="p")
    c.add_task("j", "t", "sleep 600", max_task_retry_count=3)
    wait_for(lambda: c.get_task("j", "t").state == task_pb2.Task.RUNNING, "the task to run")
    c.resize_pool("p", 0, node_deallocation_option="terminate")
    t = wait_for(lambda: (t := c.get_task("j", "t")).state == task_pb2.Task.COMPLETED and t,
                 "the task to be terminated")
    assert t.execution_info.result == task_pb2.TaskExecutionInfo.FAILURE
    assert t.execution_info.failure_info.code == "NODE_REMOVED"
    assert t.execution_info.retry_count == 0


def test_delete_pool_stops_its_agents(suite: LocalSuite) -> None:
    c = suite.client()
    c.create_pool("gone", target_nodes=2)
    wait_for(lambda: states(c, "gone") == [IDLE, IDLE] and agents(suite) == 2, "2 idle nodes")
    c.delete_pool("gone")
    wait_for(lambda: agents(suite) == 0, "the agents to stop")
    def gone() -> bool:
        try:
            c.get_pool("gone")
        except ShoalError as e:
            return e.reason == "POOL_NOT_FOUND"
        return False
    wait_for(gone, "the pool to be removed")
    assert not (suite.state_dir / "nodes" / "default" / "gone").exists() or not any(
        (suite.state_dir / "nodes" / "default" / "gone").iterdir())


def test_a_job_outlives_its_deleted_pool_as_in_azure_and_why_says_so(suite: LocalSuite) -> None:
    # Azure Batch: deleting a pool requeues its running tasks; its jobs stay active and take
    # tasks, which wait until a pool of that id exists. `why` names that, not old nodes.
    c = suite.client()
    c.create_pool("doomed", target_nodes=1)
    c.create_job("orphan", pool_id="doomed")
    wait_for(lambda: states(c, "doomed") == [IDLE], "an idle node")
    c.delete_pool("doomed")
    wait_for(lambda: agents(suite) == 0, "the agent to stop")
    c.add_task("orphan", "late", "true")  # taken: the job is still active
    why = c.explain_task("orphan", "late")  # whether the pool is still DELETING or gone
    assert list(why.reasons) == ["POOL_NOT_FOUND"], why
    wait_for(lambda: not [p for p in c.list_pools() if p.name == "pools/doomed"], "the pool to go")
    assert c.get_job("orphan").state == job_pb2.Job.ACTIVE
    why = c.explain_task("orphan", "late")
    assert list(why.reasons) == ["POOL_NOT_FOUND"], why
    assert "'doomed' does not exist" in why.summary


def test_listing_pages_and_filters(shared_suite: LocalSuite) -> None:
    c = shared_suite.client()
    c.create_pool("lp", target_nodes=0)
    c.create_job("paged", pool_id="lp")
    c.add_tasks("paged", [{"id": f"t{i:03}", "command_line": "true"} for i in range(250)])
    ids = [t.name for t in c.list_tasks("paged", page_size=7)]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 250
    assert len(list(c.list_tasks("paged", state="active"))) == 250
    assert list(c.list_tasks("paged", state="completed")) == []
    with pytest.raises(ShoalError) as e:
        list(c.list_tasks("paged", state="bogus"))
    assert e.value.code.name == "INVALID_ARGUMENT"
