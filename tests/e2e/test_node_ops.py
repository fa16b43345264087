"""Node operations through the real suite (gateway, pool-manager, job-scheduler, real agents):
disable scheduling with each option, enable, reboot, remove named nodes — and a disabled
node that stays disabled across an agent restart and a job-scheduler restart.

Tasks that must be running at a given moment wait for a file the test creates, and tasks run
a second time see a marker the first run left, so no test depends on how long anything takes.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from services.common.rpc import internal_metadata
from shoal.client import Client
from shoal.errors import ShoalError, StatusCode
from shoal.internal.v1 import scheduler_control_pb2 as sc_pb2
from shoal.internal.v1 import scheduler_control_pb2_grpc as sc_grpc
from shoal.suite import LocalSuite
from shoal.v1 import pool_pb2, task_pb2
from tests.support import agent_pid, wait_for

N = pool_pb2.Node
SUCCESS, FAILURE = task_pb2.TaskExecutionInfo.SUCCESS, task_pb2.TaskExecutionInfo.FAILURE


def sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


def once_then_succeed(marker: Path) -> str:
    """Runs until killed the first time (leaving `marker`); exits 0 on any later run."""
    return sh(f"test -e {marker} && exit 0; touch {marker}; exec sleep 300")


def until(go: Path, started: Path) -> str:
    """Creates `started`, then runs until the file `go` exists, and exits 0."""
    return sh(f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done")


def add_quick(c: Client, job: str, prefix: str, count: int) -> list[str]:
    """Tasks added in one call, so one dispatch places them all: a node that could take
    tasks would get some once the other's free slots run out."""
    ids = [f"{prefix}{i}" for i in range(count)]
    c.add_tasks(job, [{"id": i, "command_line": "echo quick"} for i in ids])
    return ids


def nodes_that_ran(c: Client, job: str, ids: list[str]) -> set[str]:
    done = [c.wait_task(job, i, timeout=60) for i in ids]
    assert all(t.execution_info.result == SUCCESS for t in done)
    return {node_of(t) for t in done}


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def idle_pool(c: Client, pool: str, nodes: int, slots: int = 1) -> list[str]:
    c.create_pool(pool, target_nodes=nodes, task_slots_per_node=slots)

    def idle() -> list[str] | None:
        ns = list(c.list_nodes(pool))
        ok = len(ns) == nodes and all(n.state == N.IDLE for n in ns)
        return [short(n.name) for n in ns] if ok else None

    ids = wait_for(idle, f"{nodes} idle nodes in {pool}")
    c.create_job(pool, pool_id=pool)
    return ids


def running_on(c: Client, job: str, task: str, started: Path) -> str:
    """Wait until the task runs and its command has started; the node it runs on."""
    def running() -> task_pb2.Task | None:
        t = c.get_task(job, task)
        return t if t.state == task_pb2.Task.RUNNING and started.exists() else None

    return short(wait_for(running, f"task {task} to run").execution_info.node)


def node_of(t: task_pb2.Task) -> str:
    return short(t.execution_info.node)


@pytest.fixture(scope="module")
def c(shared_suite: LocalSuite) -> Iterator[Client]:
    with shared_suite.client() as client:
        yield client


def test_disable_requeue_sends_the_running_task_to_another_node(c: Client, tmp_path: Path) -> None:
    a, b = idle_pool(c, "requeue", 2)
    marker = tmp_path / "ran"
    c.add_task("requeue", "t", once_then_succeed(marker), max_task_retry_count=3)
    first = running_on(c, "requeue", "t", marker)
    other = b if first == a else a

    node = c.disable_node_scheduling("requeue", first)  # requeue is the default
    assert node.scheduling_state == N.DISABLED

    t = c.wait_task("requeue", "t", timeout=60)
    info = t.execution_info
    assert info.result == SUCCESS and node_of(t) == other
    assert (info.requeue_count, info.retry_count) == (1, 0)
    assert [short(p.node) for p in info.previous_attempts] == [first]
    why = info.previous_attempts[0].failure_info
    assert (why.code, why.message) == (
        "NODE_SCHEDULING_DISABLED", "the task's node had its scheduling disabled; the task was requeued")
    got = c.get_node("requeue", first)
    assert (got.scheduling_state, got.state, got.running_tasks) == (N.DISABLED, N.IDLE, 0)


def test_disable_terminate_fails_the_running_task_and_new_ones_go_elsewhere(
    c: Client, tmp_path: Path
) -> None:
    a, b = idle_pool(c, "terminate", 2)
    started = tmp_path / "started"
    c.add_task("terminate", "t", sh(f"touch {started}; exec sleep 300"), max_task_retry_count=3)
    first = running_on(c, "terminate", "t", started)

    c.disable_node_scheduling("terminate", first, "terminate")
    t = c.wait_task("terminate", "t", timeout=60)
    info = t.execution_info
    assert info.result == FAILURE and info.failure_info.code == "NODE_SCHEDULING_DISABLED"
    assert "scheduling disabled" in info.failure_info.message
    assert (info.retry_count, info.requeue_count) == (0, 0)  # a terminate is not retried

    quick = add_quick(c, "terminate", "u", 4)
    assert nodes_that_ran(c, "terminate", quick) == {b if first == a else a}


def test_disable_task_completion_lets_the_task_finish_and_takes_no_new_one(
    c: Client, tmp_path: Path
) -> None:
    a, b = idle_pool(c, "finish", 2, slots=2)
    go, started = tmp_path / "go", tmp_path / "started"
    c.add_task("finish", "t", until(go, started))
    first = running_on(c, "finish", "t", started)

    c.disable_node_scheduling("finish", first, "taskcompletion")
    # The disabled node has a free slot, and is passed over.
    quick = add_quick(c, "finish", "u", 6)
    assert nodes_that_ran(c, "finish", quick) == {b if first == a else a}
    assert c.get_task("finish", "t").state == task_pb2.Task.RUNNING

    go.touch()
    t = c.wait_task("finish", "t", timeout=60)
    info = t.execution_info
    assert info.result == SUCCESS and node_of(t) == first
    assert (info.requeue_count, info.retry_count) == (0, 0)


def test_enable_lets_the_node_take_tasks_again(c: Client, tmp_path: Path) -> None:
    a, b = idle_pool(c, "enable", 2)
    c.disable_node_scheduling("enable", a)
    go, started = tmp_path / "go", tmp_path / "started"
    c.add_task("enable", "blocker", until(go, started))
    assert running_on(c, "enable", "blocker", started) == b

    assert c.enable_node_scheduling("enable", a).scheduling_state == N.ENABLED
    c.add_task("enable", "next", "echo here")
    t = c.wait_task("enable", "next", timeout=60)
    assert t.execution_info.result == SUCCESS and node_of(t) == a
    go.touch()
    assert c.wait_task("enable", "blocker", timeout=60).execution_info.result == SUCCESS


def test_reboot_requeues_the_running_task_and_the_node_comes_back_idle(
    c: Client, tmp_path: Path
) -> None:
    (a,) = idle_pool(c, "reboot", 1)
    marker = tmp_path / "ran"
    c.add_task("reboot", "t", once_then_succeed(marker), max_task_retry_count=3)
    running_on(c, "reboot", "t", marker)
    pid = agent_pid(a)

    assert c.reboot_node("reboot", a).state == N.STARTING
    t = c.wait_task("reboot", "t", timeout=60)
    info = t.execution_info
    # Run again on the same node once its agent was back: a requeue, not a retry.
    assert info.result == SUCCESS and node_of(t) == a
    assert (info.requeue_count, info.retry_count) == (1, 0)
    assert [short(p.node) for p in info.previous_attempts] == [a]
    wait_for(lambda: c.get_node("reboot", a).state == N.IDLE, "the node to be idle")
    assert agent_pid(a) != pid
    assert [short(n.name) for n in c.list_nodes("reboot")] == [a]


def test_remove_nodes_removes_exactly_the_named_ones(c: Client) -> None:
    a, b, d = idle_pool(c, "remove", 3)
    with pytest.raises(ShoalError) as err:
        c.remove_nodes("remove", [a, "node-nope"])
    assert (err.value.code, err.value.reason) == (StatusCode.NOT_FOUND, "NODE_NOT_FOUND")
    assert "node-nope" in err.value.message
    assert c.get_pool("remove").target_nodes == 3
    assert {n.state for n in c.list_nodes("remove")} == {N.IDLE}

    pool = c.remove_nodes("remove", [a, d], node_deallocation_option="terminate")
    assert pool.target_nodes == 1
    wait_for(lambda: [short(n.name) for n in c.list_nodes("remove")] == [b],
             "only the node not named to be left")
    p = c.get_pool("remove")
    assert (p.target_nodes, p.current_nodes, p.allocation_state) == (1, 1, pool_pb2.Pool.STEADY)


def scheduler_sessions(suite: LocalSuite, pool: str) -> dict[str, sc_pb2.NodeSession]:
    """The job-scheduler's own sessions of a pool's nodes (its internal control API)."""
    cfg = suite.config
    with grpc.insecure_channel(cfg.job_scheduler_address) as channel:
        resp = sc_grpc.SchedulerControlServiceStub(channel).ListNodeSessions(
            sc_pb2.ListNodeSessionsRequest(pool_id=pool),
            metadata=internal_metadata(cfg.service_token, "default"), timeout=10)
    return {s.node_id: s for s in resp.sessions}


def test_a_disabled_node_stays_disabled_across_an_agent_and_a_scheduler_restart(
    suite: LocalSuite,
) -> None:
    c = suite.client()
    a, b = idle_pool(c, "p", 2)
    c.disable_node_scheduling("p", a)

    c.reboot_node("p", a)  # its agent restarts and connects again
    wait_for(lambda: c.get_node("p", a).state == N.IDLE, "the rebooted node to be back")
    assert c.get_node("p", a).scheduling_state == N.DISABLED
    assert nodes_that_ran(c, "p", add_quick(c, "p", "before", 4)) == {b}

    suite.kill("job-scheduler")
    suite.restart("job-scheduler")
    # The new scheduler knows nothing of it until the pool-manager, seeing its session
    # without the flag, tells it again.
    wait_for(lambda: (s := scheduler_sessions(suite, "p").get(a)) is not None
             and s.scheduling_disabled, "the scheduler to have the node disabled again")
    assert c.get_node("p", a).scheduling_state == N.DISABLED
    after = add_quick(c, "p", "after", 4)
    assert nodes_that_ran(c, "p", after) == {b}
    assert not any(c.get_task("p", i).execution_info.previous_attempts for i in after)
