"""A frozen node is found by its missing heartbeats; a big batch goes in one call; deleting a
job stops its running tasks; the demo runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from shoal.suite import LocalSuite
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.support import agent_pid, processes_mentioning, wait_for


def test_a_frozen_node_is_lost_by_heartbeat_and_its_task_runs_elsewhere(
    suite: LocalSuite, tmp_path: Path
) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=2)
    wait_for(lambda: len([n for n in c.list_nodes("p") if n.state == pool_pb2.Node.IDLE]) == 2,
             "2 idle nodes")
    c.create_job("j", pool_id="p")
    c.add_task("j", "t", "/bin/sh -c 'sleep 2; echo done'")
    t = wait_for(lambda: (t := c.get_task("j", "t")).state == task_pb2.Task.RUNNING and t, "running")
    frozen = t.execution_info.node
    pid = agent_pid(frozen.rsplit("/", 1)[1])
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: c.get_node("p", frozen.rsplit("/", 1)[1]).state == pool_pb2.Node.UNREACHABLE,
                 "the frozen node to be unreachable", timeout=30)
        done = wait_for(lambda: (t := c.get_task("j", "t")).state == task_pb2.Task.COMPLETED and t,
                        "the task to finish on the other node", timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
    info = done.execution_info
    assert (info.result, info.requeue_count, info.retry_count) == (
        task_pb2.TaskExecutionInfo.SUCCESS, 1, 0)
    assert info.node != frozen
    # The thawed node reconnects; its late result for the old attempt is ignored (fenced).
    wait_for(lambda: c.get_node("p", frozen.rsplit("/", 1)[1]).state == pool_pb2.Node.IDLE,
             "the thawed node to be idle again", timeout=30)
    again = c.get_task("j", "t").execution_info
    assert (again.attempt_id, again.requeue_count, again.node) == (info.attempt_id, 1, info.node)
    assert c.get_job("j").task_counts.completed == 1


def test_ten_thousand_tasks_in_one_call(shared_suite: LocalSuite) -> None:
    c = shared_suite.client()
    c.create_pool("big", target_nodes=0)
    c.create_job("big", pool_id="big")
    n = c.add_tasks("big", [{"id": f"t{i:05}", "command_line": "true"} for i in range(10_000)],
                    chunk=10_000)
    assert n == 10_000
    counts = c.get_job("big").task_counts
    assert (counts.active, counts.running, counts.completed) == (10_000, 0, 0)
    assert len(list(c.list_tasks("big", state="active", page_size=1000))) == 10_000
    c.delete_job("big")


def test_deleting_a_job_stops_its_running_tasks(suite: LocalSuite, tmp_path: Path) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1, task_slots_per_node=2)
    c.create_job("j", pool_id="p")
    c.add_tasks("j", [{"id": f"t{i}", "command_line": f"sleep 60{i}"} for i in range(2)])
    wait_for(lambda: c.get_job("j").task_counts.running == 2
             and len(processes_mentioning("sleep 60")) == 2, "2 running sleeps")
    c.delete_job("j")
    wait_for(lambda: not processes_mentioning("sleep 60"), "the task processes to be killed")
    wait_for(lambda: [n.state for n in c.list_nodes("p")] == [pool_pb2.Node.IDLE], "an idle node")
    c.create_job("j", pool_id="p")  # the id is free again
    assert c.get_job("j").state == job_pb2.Job.ACTIVE


def test_the_demo_runs_and_checks_its_answer(tmp_path: Path) -> None:
    shoal = Path(sys.executable).with_name("shoal")
    out = subprocess.run(
        [str(shoal), "demo", "--nodes", "2", "--tasks", "40", "--state-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "primes below 2,000,000: 148933 (checked)" in out.stdout
    assert processes_mentioning(str(tmp_path / "d")) == {}
