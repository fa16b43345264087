"""The local provider with real processes (stand-in commands instead of the agent)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.pool_manager.providers.base import NodeSpec, ProcessRef
from services.pool_manager.providers.local import LocalProvider, NodeBusy
from shoal.cluster_config import ClusterConfig
from tests.support import eventually

from .conftest import pid_alive

ROOT = Path(__file__).resolve().parents[2]

# Records its arguments, join token and pid in its node root, then sleeps; SIGTERM ends it (default action).
SLEEPER = """
import json, os, pathlib, sys, time
root = pathlib.Path(sys.argv[sys.argv.index("--node-root") + 1])
(root / "argv.json").write_text(json.dumps(sys.argv[1:]))
(root / "join-token").write_text(os.environ.get("SHOAL_JOIN_TOKEN", ""))
(root / "pid").write_text(str(os.getpid()))
print("sleeper up", flush=True)
time.sleep(60)
"""
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
# Does what an agent does with its node's processes: takes the root's lock, tracks, starts a
# task in a session of its own (which also starts a child that leaves its group), records the
# pids; then sleeps. Killed, it leaves the task running, as a SIGKILLed agent does.
TRACKING = """
import pathlib, subprocess, sys, time
from services.common.node_processes import RootLock, Tracker
root = pathlib.Path(sys.argv[sys.argv.index("--node-root") + 1])
lock = RootLock.acquire(root)
tracker = Tracker.begin(root)
env = {"PATH": "/usr/bin:/bin", "SHOAL_NODE_ROOT_DIR": str(root)}
task = tracker.spawn(lambda: subprocess.Popen(
    ["/bin/sh", "-c", "setsid sleep 300 & echo $! > child; exec sleep 300"],
    cwd=root, env=env, start_new_session=True, close_fds=True))
while not (root / "child").exists() or not (root / "child").read_text().strip():
    time.sleep(0.01)
(root / "task-pids").write_text(f"{task.pid} {(root / 'child').read_text().strip()}")
time.sleep(300)
"""

SPEC = NodeSpec("acct", "pool-1", "node-0000abcd", "the-join-token")


@pytest.fixture
def cluster(tmp_path: Path) -> ClusterConfig:
    return ClusterConfig.new(tmp_path / "state", log_level="debug")


def provider(cluster: ClusterConfig, script: str = SLEEPER, **kw: float) -> LocalProvider:
    return LocalProvider(cluster, "127.0.0.1:4242", agent_command=(sys.executable, "-c", script),
                         **kw)


@pytest.fixture
async def local(cluster: ClusterConfig) -> AsyncIterator[LocalProvider]:
    p = provider(cluster)
    yield p
    await p.close()


def _file(path: Path) -> str | None:
    return path.read_text() if path.exists() and path.stat().st_size else None


async def test_start_passes_the_agent_command_line_and_stop_ends_it(
    local: LocalProvider, cluster: ClusterConfig
) -> None:
    ref = await local.start(SPEC)
    root = Path(cluster.state_dir) / "nodes" / "acct" / "pool-1" / "node-0000abcd"
    # The pid is the stand-in's last file: once it is there, the others are whole.
    await eventually(lambda: _file(root / "pid"), "the stand-in to start")
    argv = json.loads((root / "argv.json").read_text())
    assert argv == [
        "--pool-manager", "127.0.0.1:4242",
        "--node-id", "node-0000abcd", "--node-root", str(root), "--log-level", "debug",
    ]
    # The token travels in the environment, out of sight of `ps`.
    assert (root / "join-token").read_text() == "the-join-token"
    assert int((root / "pid").read_text()) == ref.pid and ref.start_time is not None
    assert os.getsid(ref.pid) == ref.pid  # its own session: our signals do not reach it
    log_file = Path(cluster.state_dir) / "logs" / "agent-acct-pool-1-node-0000abcd.log"
    await eventually(lambda: _file(log_file), "the agent's output in its log file")
    assert "sleeper up" in log_file.read_text()
    assert local.running(SPEC.key)

    await local.stop(SPEC.key)
    assert not local.running(SPEC.key) and not pid_alive(ref.pid)
    assert local.poll() == []  # stopped by us: not reported as an exit
    await local.remove(SPEC)
    assert not root.exists() and not root.parent.exists()


async def test_an_agent_that_ignores_sigterm_is_killed(cluster: ClusterConfig) -> None:
    p = provider(cluster, STUBBORN, stop_timeout=0.3)
    ref = await p.start(SPEC)
    await eventually(lambda: _ignoring_sigterm(ref.pid), "the stand-in to ignore SIGTERM")
    await p.stop(SPEC.key)
    assert not pid_alive(ref.pid)
    await p.close()


def _ignoring_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:"))
                  .split()[1], 16)
    return bool(ignored & (1 << (signal.SIGTERM - 1)))


async def test_an_agent_that_exits_on_its_own_is_reported(local: LocalProvider) -> None:
    woken = asyncio.Event()
    local.watch(woken.set)
    ref = await local.start(SPEC)
    os.kill(ref.pid, signal.SIGKILL)
    await asyncio.wait_for(woken.wait(), 30)
    exits = local.poll()
    assert [(e.key, e.returncode) for e in exits] == [(SPEC.key, -signal.SIGKILL)]
    assert not local.running(SPEC.key)
    assert local.poll() == []


async def test_a_successor_adopts_running_agents_and_notices_their_end(
    cluster: ClusterConfig,
) -> None:
    first = provider(cluster)
    ref = await first.start(SPEC)
    await first.close(stop_nodes=False)
    assert pid_alive(ref.pid)

    second = provider(cluster, poll_interval=0.01)
    wrong = ProcessRef(ref.pid, (ref.start_time or 0) + 1)  # the pid, reused by another process
    assert not second.adopt(SPEC, wrong)
    assert second.adopt(SPEC, ref) and second.running(SPEC.key)
    assert second.poll() == []

    os.kill(ref.pid, signal.SIGKILL)

    async def noticed() -> list:
        return second.poll()

    exits = await eventually(noticed, "the adopted agent's end to be noticed")
    assert [(e.key, e.returncode) for e in exits] == [(SPEC.key, None)]
    assert not second.running(SPEC.key)
    await second.close()


async def test_close_stops_adopted_agents_too(cluster: ClusterConfig) -> None:
    first = provider(cluster)
    ref = await first.start(SPEC)
    await first.close(stop_nodes=False)
    second = provider(cluster, poll_interval=0.01)
    assert second.adopt(SPEC, ref)
    await second.close()
    assert not pid_alive(ref.pid)


async def test_unsafe_node_keys_are_refused(local: LocalProvider) -> None:
    with pytest.raises(ValueError):
        await local.start(NodeSpec("acct", "..", "node-1", "t"))


async def _task_pids(root: Path) -> list[int]:
    text = await eventually(lambda: _file(root / "task-pids"), "the stand-in's task to start")
    return [int(p) for p in text.split()]


async def test_a_dead_agents_tasks_are_gone_before_its_end_is_reported(
    cluster: ClusterConfig,
) -> None:
    p = provider(cluster, TRACKING)
    seen_alive: list[list[int]] = []
    pids: list[int] = []
    # What the pool-manager does when told (it has the scheduler requeue the node's tasks):
    # by then nothing of the node may run.
    p.watch(lambda: seen_alive.append([pid for pid in pids if pid_alive(pid)]))
    try:
        ref = await p.start(SPEC)
        pids.extend(await _task_pids(p.node_root(SPEC.key)))
        assert all(pid_alive(pid) for pid in pids)
        os.kill(ref.pid, signal.SIGKILL)
        await eventually(lambda: seen_alive, "the agent's end to be reported")
        assert seen_alive == [[]]
        assert [e.key for e in p.poll()] == [SPEC.key]
    finally:
        await p.close()


async def test_an_adopted_agents_tasks_are_gone_before_its_end_is_reported(
    cluster: ClusterConfig,
) -> None:
    first = provider(cluster, TRACKING)
    ref = await first.start(SPEC)
    pids = await _task_pids(first.node_root(SPEC.key))
    await first.close(stop_nodes=False)
    second = provider(cluster, TRACKING)
    seen_alive: list[list[int]] = []
    second.watch(lambda: seen_alive.append([pid for pid in pids if pid_alive(pid)]))
    try:
        assert second.adopt(SPEC, ref)
        os.kill(ref.pid, signal.SIGKILL)
        await eventually(lambda: seen_alive, "the adopted agent's end to be reported")
        assert seen_alive == [[]]
        assert [(e.key, e.returncode) for e in second.poll()] == [(SPEC.key, None)]
    finally:
        await second.close()


async def test_stopping_a_stubborn_agent_kills_its_tasks_and_removal_follows(
    cluster: ClusterConfig,
) -> None:
    p = provider(cluster, TRACKING.replace("import pathlib", "import signal; "
                 "signal.signal(signal.SIGTERM, signal.SIG_IGN); import pathlib"),
                 stop_timeout=0.3)
    try:
        await p.start(SPEC)
        root = p.node_root(SPEC.key)
        pids = await _task_pids(root)
        await p.stop(SPEC.key)
        assert [pid for pid in pids if pid_alive(pid)] == []
        await p.remove(SPEC)
        assert not root.exists()
    finally:
        await p.close()


async def test_a_node_root_in_use_by_a_live_agent_is_not_deleted(cluster: ClusterConfig) -> None:
    local = provider(cluster, lock_wait=0.2)
    root = local.node_root(SPEC.key)
    root.mkdir(parents=True)
    # Another live agent on the root (holding its lock), with a task.
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", TRACKING, "--node-root", str(root), cwd=ROOT,
        start_new_session=True)
    try:
        pids = await _task_pids(root)
        with pytest.raises(NodeBusy, match="still has live processes"):
            await local.remove(SPEC)
        assert root.is_dir() and all(pid_alive(pid) for pid in pids)
    finally:
        holder.kill()
        await holder.wait()
    await local.remove(SPEC)
    assert not root.exists() and not any(pid_alive(pid) for pid in pids)
    await local.close()
