"""A pool's start task and a job's preparation and release tasks, through the real suite:
they download their resource files, run where and when Azure Batch runs them, and their
failures show on the node and the task."""

from __future__ import annotations

import shlex
from pathlib import Path

from shoal import NodeCommand, ResourceFile
from shoal.suite import LocalSuite
from shoal.v1 import pool_pb2, task_pb2
from tests.support import wait_for


def _sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


def _node(c, pool: str, state: int) -> pool_pb2.Node:  # type: ignore[no-untyped-def]
    return wait_for(lambda: next((n for n in c.list_nodes(pool) if n.state == state), None),
                    f"a node of {pool} in state {pool_pb2.Node.State.Name(state)}")


def test_a_start_task_with_a_resource_file_prepares_every_node(
    suite: LocalSuite, tmp_path: Path
) -> None:
    c = suite.client()
    c.create_container("setup")
    c.upload_object("setup", "tools/greeting.txt", b"hello from setup\n")
    start = NodeCommand(_sh('cp greeting.txt "$SHOAL_NODE_SHARED_DIR/greeting.txt"'),
                        resource_files=[ResourceFile.from_object("setup", "tools/greeting.txt",
                                                                 "greeting.txt")])
    c.create_pool("p", target_nodes=2, start_task=start)
    wait_for(lambda: [n.state for n in c.list_nodes("p")] == [pool_pb2.Node.IDLE] * 2,
             "two idle nodes")
    for n in c.list_nodes("p"):
        info = n.start_task_info
        assert info.state == task_pb2.NodeTaskInfo.COMPLETED
        assert info.result == task_pb2.TaskExecutionInfo.SUCCESS and info.exit_code == 0
    c.create_job("j", pool_id="p")
    c.add_task("j", "t", _sh('cat "$SHOAL_NODE_SHARED_DIR/greeting.txt"'))
    t = c.wait_task("j", "t", timeout=60)
    assert t.execution_info.result == task_pb2.TaskExecutionInfo.SUCCESS, t.execution_info
    assert c.read_task_file("j", "t", "stdout.txt") == b"hello from setup\n"


def test_a_node_whose_start_task_fails_says_so_and_takes_no_tasks(
    suite: LocalSuite, tmp_path: Path
) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1,
                  start_task=NodeCommand(_sh("echo broken >&2; exit 3"), max_task_retry_count=1))
    node = _node(c, "p", pool_pb2.Node.START_TASK_FAILED)
    info = node.start_task_info
    assert (info.result, info.exit_code, info.retry_count) == (
        task_pb2.TaskExecutionInfo.FAILURE, 3, 1)
    assert [e.code for e in node.errors] == ["START_TASK_FAILED"]
    c.create_job("j", pool_id="p")
    ran = tmp_path / "ran"
    c.add_task("j", "t", f"/usr/bin/touch {ran}")
    # The scheduler says why it does not place the task: its only node takes none.
    why = wait_for(lambda: (e := c.explain_task("j", "t")) and list(e.reasons) == ["NO_NODES"]
                   and e, "the scheduler to see that no node takes tasks")
    assert "nodes takes tasks" in why.details[0]
    assert c.get_task("j", "t").state == task_pb2.Task.ACTIVE
    assert not ran.exists()


def test_the_job_preparation_task_runs_once_per_node_before_the_jobs_tasks(
    suite: LocalSuite, tmp_path: Path
) -> None:
    c = suite.client()
    c.create_container("prep")
    c.upload_object("prep", "env.txt", b"prepared\n")
    runs = tmp_path / "prep-runs"
    prep = NodeCommand(_sh(f'cat env.txt >> {runs}; cp env.txt "$SHOAL_NODE_SHARED_DIR/env.txt"'),
                       resource_files=[ResourceFile.from_object("prep", "env.txt", "env.txt")])
    c.create_pool("p", target_nodes=1, task_slots_per_node=3)
    c.create_job("j", pool_id="p", job_preparation_task=prep)
    for i in range(6):
        c.add_task("j", f"t{i}", _sh('cat "$SHOAL_NODE_SHARED_DIR/env.txt"'))
    for i in range(6):
        t = c.wait_task("j", f"t{i}", timeout=60)
        assert t.execution_info.result == task_pb2.TaskExecutionInfo.SUCCESS, t.execution_info
        assert c.read_task_file("j", f"t{i}", "stdout.txt") == b"prepared\n"
    assert runs.read_text() == "prepared\n"


def test_a_failed_preparation_task_fails_the_task_and_shows_on_the_node(
    suite: LocalSuite, tmp_path: Path
) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1)
    ran = tmp_path / "ran"
    c.create_job("j", pool_id="p", job_preparation_task=NodeCommand(_sh("exit 7")))
    c.add_task("j", "t1", f"/usr/bin/touch {ran}", max_task_retry_count=2)
    c.add_task("j", "t2", f"/usr/bin/touch {ran}")
    for tid in ("t1", "t2"):
        info = c.wait_task("j", tid, timeout=60).execution_info
        assert info.result == task_pb2.TaskExecutionInfo.FAILURE
        assert info.failure_info.code == "JOB_PREPARATION_TASK_FAILED"
        assert info.retry_count == 0
    assert not ran.exists()
    node = wait_for(lambda: next((n for n in c.list_nodes("p") if n.errors), None), "a node error")
    assert [e.code for e in node.errors] == ["JOB_PREPARATION_TASK_FAILED"]
    assert "j" in node.errors[0].message


def test_the_release_task_runs_on_the_nodes_that_ran_the_job_when_it_ends(
    suite: LocalSuite, tmp_path: Path
) -> None:
    c = suite.client()
    c.create_container("rel")
    c.upload_object("rel", "bye.txt", b"bye\n")
    released = tmp_path / "released"
    release = NodeCommand(_sh(f'cat bye.txt >> {released}; echo "$SHOAL_JOB_ID" >> {released}'),
                          resource_files=[ResourceFile.from_object("rel", "bye.txt", "bye.txt")])
    c.create_pool("p", target_nodes=2)
    wait_for(lambda: len([n for n in c.list_nodes("p") if n.state == pool_pb2.Node.IDLE]) == 2,
             "two idle nodes")
    c.create_job("j", pool_id="p", job_release_task=release)
    c.add_task("j", "t", "/bin/true")
    c.wait_task("j", "t", timeout=60)
    assert not released.exists()
    c.terminate_job("j")
    # Only the node that ran the job is told (tests/scheduler/test_core.py shows the other
    # is not): one release.
    wait_for(lambda: released.exists() and released.read_text() == "bye\nj\n",
             "the release task on the one node that ran the job")
