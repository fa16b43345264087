"""A real job end to end: tasks run in parallel on a pool of local nodes, retried and killed
as their constraints say, and read back through the gateway."""

from __future__ import annotations

import shlex
from pathlib import Path

from shoal.suite import LocalSuite
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.support import PY, wait_for


def test_hundred_tasks_on_four_nodes_all_succeed_with_their_output(suite: LocalSuite) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=4, task_slots_per_node=2)
    wait_for(lambda: len([x for x in c.list_nodes("p") if x.state == pool_pb2.Node.IDLE]) == 4,
             "4 idle nodes")
    c.create_job("squares", pool_id="p", on_all_tasks_complete="terminate_job")
    code = "import os, sys; print(int(sys.argv[1]) ** 2, os.environ['AZ_BATCH_TASK_ID'])"
    tasks = [{"id": f"t{i:03}", "command_line": f"{PY} -c {shlex.quote(code)} {i}"} for i in range(100)]
    assert c.add_tasks("squares", tasks) == 100
    job = c.wait_job("squares", timeout=120)
    assert job.state == job_pb2.Job.COMPLETED
    counts = job.task_counts
    assert (counts.completed, counts.succeeded, counts.failed) == (100, 100, 0)
    nodes = set()
    for t in c.list_tasks("squares"):
        assert t.state == task_pb2.Task.COMPLETED
        assert t.execution_info.exit_code == 0
        nodes.add(t.execution_info.node)
    assert len(nodes) == 4  # spread over every node
    for i in range(100):
        out = c.read_task_file("squares", f"t{i:03}", "stdout.txt").decode()
        assert out == f"{i * i} t{i:03}\n"


def test_retries_count_nonzero_exits_only(suite: LocalSuite, tmp_path: Path) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1, task_slots_per_node=2)
    c.create_job("j", pool_id="p")
    marker = tmp_path / "second-time"
    flaky = f"/bin/sh -c 'if [ -e {marker} ]; then echo ok; else touch {marker}; exit 1; fi'"
    c.add_task("j", "flaky", flaky, max_task_retry_count=3)
    c.add_task("j", "broken", "/bin/sh -c 'exit 3'", max_task_retry_count=2)
    job = c.wait_job("j", timeout=60)
    assert (job.task_counts.succeeded, job.task_counts.failed) == (1, 1)
    flaky_t, broken_t = c.get_task("j", "flaky"), c.get_task("j", "broken")
    assert flaky_t.execution_info.result == task_pb2.TaskExecutionInfo.SUCCESS
    assert (flaky_t.execution_info.retry_count, flaky_t.execution_info.requeue_count) == (1, 0)
    assert broken_t.execution_info.result == task_pb2.TaskExecutionInfo.FAILURE
    assert (broken_t.execution_info.retry_count, broken_t.execution_info.exit_code) == (2, 3)
    assert len(broken_t.execution_info.previous_attempts) == 2
    assert c.read_task_file("j", "flaky", "stdout.txt") == b"ok\n"


def test_wall_clock_kills_the_task_and_its_children(suite: LocalSuite, tmp_path: Path) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1)
    c.create_job("j", pool_id="p")
    pidfile = tmp_path / "child.pid"
    c.add_task("j", "slow", f"/bin/sh -c 'sleep 300 & echo $! > {pidfile}; wait'",
               max_wall_clock_time=1.0, max_task_retry_count=3)
    c.wait_job("j", timeout=60)
    t = c.get_task("j", "slow")
    info = t.execution_info
    assert info.result == task_pb2.TaskExecutionInfo.FAILURE
    assert info.failure_info.code == "MAX_WALL_CLOCK_TIME_EXCEEDED"
    assert info.retry_count == 0  # a wall-clock kill is not retried
    child = int(pidfile.read_text())
    wait_for(lambda: not Path(f"/proc/{child}").exists()
             or Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
             "the task's child to be gone", timeout=10)


def test_task_environment_and_directories(suite: LocalSuite) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1)
    c.create_job("j", pool_id="p")
    code = ("import os; print(os.getcwd() == os.environ['SHOAL_TASK_WORKING_DIR'], "
            "os.environ['AZ_BATCH_JOB_ID'], os.environ['SHOAL_POOL_ID'], os.environ['GREETING'])")
    c.add_task("j", "env", f"{PY} -c {shlex.quote(code)}", environment={"GREETING": "hi there"})
    c.add_task("j", "noshell", "echo $HOME '|' wc")
    c.wait_job("j", timeout=60)
    assert c.read_task_file("j", "env", "stdout.txt") == b"True j p hi there\n"
    assert c.read_task_file("j", "noshell", "stdout.txt") == b"$HOME | wc\n"
