"""Shared helpers of the LocalSuite / `shoal up` tests."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shoal.suite import MODULES, SERVICES
from tests.support import processes_mentioning, wait_for

STANDIN = Path(__file__).with_name("standin.py")


def standin_commands(**modes: str) -> dict[str, list[str]]:
    """LocalSuite commands running stand-ins; `job_scheduler="exit"` sets one service's mode."""
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


def wait_gone(pids: list[int], timeout: float = 20) -> None:
    """Wait until none of the processes runs any more."""
    wait_for(lambda: not any(pid_alive(p) for p in pids), f"pids {pids} to exit", timeout)


def read_pid(path: Path) -> int:
    """A pid file a stand-in writes."""
    wait_for(path.exists, f"{path}", 10)
    return int(path.read_text())


def serving(address: str, service: str = "") -> bool:
    """What the suite itself asks a service: its gRPC health check (of `service`: the
    gateway answers for each service behind it by name)."""
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def service_pids(state_dir: Path) -> dict[str, int]:
    """service -> pid of the real service processes running with this state dir."""
    found = {}
    for pid, cmd in processes_mentioning(str(state_dir)).items():
        for service, module in MODULES.items():
            if f" -m {module} " in f" {cmd} ":
                found[service] = pid
    return found


def agent_pids(state_dir: Path) -> list[int]:
    """Pids of the node agents the local provider started for this state dir."""
    return sorted(
        p for p, cmd in processes_mentioning(str(state_dir)).items() if " -m agent " in cmd
    )


def logged_clean_stop(log: str) -> bool:
    """True when a service's JSON log ends with its own "... stopped" event: it handled
    SIGTERM itself rather than being killed."""
    events = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line).get("event", ""))
    return bool(events) and events[-1].endswith("stopped")


def kill_leftovers(pids: list[int]) -> None:
    """Test clean-up only: never leave a process behind, even when an assertion failed."""
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Terminal:
    """What a real terminal showed: the command's stdout and stderr as one stream."""

    returncode: int
    text: str
    """With the terminal's \\r\\n turned into \\n and colours removed."""


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_in_terminal(
    *args: str, env: dict[str, str], columns: int = 80, answers: dict[str, str] | None = None,
    timeout: float = 60,
) -> Terminal:
    """`shoal ARGS` in a real pseudo-terminal `columns` wide, as a user's shell runs it;
    `answers` maps a prompt's text to what is typed when it appears."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    base = {k: v for k, v in os.environ.items() if (not k.startswith("SHOAL_") or k == "SHOAL_CONFIG") and k != "COLUMNS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli.main", *args],
        stdin=slave, stdout=slave, stderr=slave, env={**base, **env}, close_fds=True,
    )
    os.close(slave)
    pending = dict(answers or {})
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"shoal {' '.join(args)} did not end within {timeout}s: {seen!r}")
            ready, _, _ = select.select([master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the process closed the terminal
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                seen += chunk
                for prompt in list(pending):
                    if prompt.encode() in seen:
                        os.write(master, pending.pop(prompt).encode() + b"\n")
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = ANSI.sub("", seen.decode(errors="replace")).replace("\r\n", "\n")
    return Terminal(code, text)
