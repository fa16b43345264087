"""Shared helpers of the LocalSuite / `shoal up` tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
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


def serving(address: str) -> bool:
    """What the suite itself asks a service: its gRPC health check."""
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
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
