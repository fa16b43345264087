"""The tests' one support module: deadline waits (sync and async), a clock a test moves by
hand, process lookups, and the real suite with short timings."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

from shoal.cluster_config import Limits, SchedulerTiming, StorageConfig, WatchConfig
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


async def eventually(
    check: Callable[[], T | Awaitable[T]], what: str, within: float = 30.0, every: float = 0.02
) -> T:
    """Call (and await, if it is a coroutine) `check` until it returns something truthy;
    return that, or fail naming `what` at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; last {value!r}")
        await asyncio.sleep(every)


class ManualClock:
    """Time that moves only when the test says (heartbeats, expiry) — no sleeping."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


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


def start_suite(
    state_dir: Path, storage: StorageConfig | None = None, watch: WatchConfig | None = None,
    limits: Limits | None = None, timing: SchedulerTiming = FAST,
) -> LocalSuite:
    """The real suite on free loopback ports with short liveness timings (and `limits`, when
    a test wants small quotas)."""
    s = LocalSuite(state_dir, gateway_port=0, pool_manager_port=0, scheduler_port=0,
                   stager_port=0, timing=timing, storage=storage, watch=watch, limits=limits)
    return s.start()


@contextlib.contextmanager
def running_suite(state_dir: Path, watch: WatchConfig | None = None) -> Iterator[LocalSuite]:
    """start_suite, stopped at the end, with its logs printed (pytest shows them when the
    test failed)."""
    s = start_suite(state_dir, watch=watch)
    try:
        yield s
    finally:
        s.stop()
        print_logs(s)


def print_logs(s: LocalSuite) -> None:
    """Shown by pytest only when a test failed: what each process said."""
    for log in sorted(s.logs_dir.glob("*.log")):
        print(f"----- {log.name}\n{log.read_text(errors='replace')[-6000:]}")
