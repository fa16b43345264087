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
from services.pool_manager.providers.local import LocalProvider
from shoal.cluster_config import ClusterConfig
from tests.support import eventually

from .conftest import pid_alive

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
