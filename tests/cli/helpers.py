"""Shared helpers of the client / CLI / LocalSuite tests."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from shoal.suite import SERVICES

STANDIN = Path(__file__).with_name("standin.py")


def standin_commands(**modes: str) -> dict[str, list[str]]:
    """LocalSuite commands running stand-ins; `pool_manager="spawn"` sets one service's mode."""
    commands = {}
    for service in SERVICES:
        mode = modes.get(service.replace("-", "_"), "serve")
        commands[service] = [sys.executable, str(STANDIN), service, "--mode", mode]
    return commands


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def read_pid(path: Path) -> int:
    wait_for(path.exists, what=f"{path}")
    return int(path.read_text())


def kill_leftovers(pids: list[int]) -> None:
    """Test clean-up only: never leave a process behind, even when an assertion failed."""
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
