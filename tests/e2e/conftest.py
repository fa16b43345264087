"""End-to-end fixtures: the real suite (four service processes, real agents, real SQLite
files) on free loopback ports, state in a tmp dir, short heartbeat timings."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from services.common.config import SchedulerTiming
from shoal.suite import LocalSuite

FAST = SchedulerTiming(
    heartbeat_interval=0.5, unreachable_after=1.5, lost_after=4.0, reconnect_grace=4.0
)
PY = sys.executable
T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout: float = 60.0, every: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def processes_mentioning(text: str) -> dict[int, str]:
    """pid -> command line of live processes whose command line contains `text`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found[int(entry.name)] = cmd
    return found


def agent_pid(node_id: str) -> int:
    pids = [p for p, cmd in processes_mentioning(f"--node-id {node_id}").items() if "-m agent" in cmd]
    assert len(pids) == 1, f"expected one agent for {node_id}, found {pids}"
    return pids[0]


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[LocalSuite]:
    s = LocalSuite(tmp_path / "state", gateway_port=0, pool_manager_port=0, scheduler_port=0,
                   stager_port=0, timing=FAST)
    s.start()
    try:
        yield s
    finally:
        s.stop()
        # Shown by pytest only when the test failed: what each process said.
        for log in sorted(s.logs_dir.glob("*.log")):
            print(f"----- {log.name}\n{log.read_text()[-6000:]}")
        leftovers = processes_mentioning(str(s.state_dir))
        assert leftovers == {}, f"processes left behind: {leftovers}"


@pytest.fixture(scope="module")
def shared_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuite]:
    """One suite for a module of tests that don't disturb each other (bad input, reads)."""
    s = LocalSuite(tmp_path_factory.mktemp("shared") / "state", gateway_port=0,
                   pool_manager_port=0, scheduler_port=0, stager_port=0, timing=FAST)
    s.start()
    try:
        yield s
    finally:
        s.stop()
