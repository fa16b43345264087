"""`shoal up` as a user runs it — a real process — with stand-in services."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.suite import SERVICES
from tests.cli.helpers import kill_leftovers, pid_alive, read_pid, standin_commands, wait_for

ROOT = Path(__file__).resolve().parents[2]


class Up:
    """`shoal up --port 0` in the background, its output in files."""

    def __init__(self, tmp_path: Path, **modes: str) -> None:
        self.state = tmp_path / "state"
        self.stderr_path = tmp_path / "up.stderr"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        env["SHOAL_SERVICE_COMMANDS"] = json.dumps(standin_commands(**modes))
        with open(self.stderr_path, "wb") as err, open(tmp_path / "up.stdout", "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shoal.cli.main",
                    "up",
                    "--state-dir",
                    str(self.state),
                    "--port",
                    "0",
                ],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=ROOT,
            )
        self.pids: list[int] = [self.proc.pid]

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_up(self) -> dict[str, int]:
        wait_for(
            lambda: "Shoal is up" in self.stderr or self.proc.poll() is not None, 30, "shoal up"
        )
        assert self.proc.poll() is None, self.stderr
        pids = {s: read_pid(self.state / f"{s}.pid") for s in SERVICES}
        self.pids += pids.values()
        return pids

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        kill_leftovers(self.pids)


@pytest.fixture
def up(tmp_path: Path):
    running: list[Up] = []

    def start(**modes: str) -> Up:
        u = Up(tmp_path, **modes)
        running.append(u)
        return u

    yield start
    for u in running:
        u.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_up_runs_until_a_signal_then_stops_everything(up, sig: signal.Signals) -> None:
    u = up(pool_manager="spawn")
    pids = u.wait_up()
    child = read_pid(u.state / "pool-manager.child.pid")
    u.pids.append(child)
    assert all(pid_alive(p) for p in [*pids.values(), child])
    banner = u.stderr
    endpoint = json.loads((u.state / "client.json").read_text())["endpoint"]
    assert f"gateway   {endpoint}" in banner
    assert str(u.state.resolve()) in banner and "shoal pool create" in banner

    u.proc.send_signal(sig)
    assert u.proc.wait(timeout=60) == 0, u.stderr
    for pid in [*pids.values(), child]:
        wait_for(lambda pid=pid: not pid_alive(pid), what=f"pid {pid} to exit")
    assert "Shoal stopped." in u.stderr
    assert "Traceback" not in u.stderr


def test_up_exits_1_when_a_service_dies_and_stops_the_rest(up) -> None:
    u = up()
    pids = u.wait_up()
    os.kill(pids["job-scheduler"], signal.SIGKILL)
    assert u.proc.wait(timeout=60) == 1
    assert "job-scheduler died" in u.stderr
    for pid in pids.values():
        wait_for(lambda pid=pid: not pid_alive(pid), what=f"pid {pid} to exit")


def test_up_reports_a_service_that_fails_to_start(up) -> None:
    u = up(gateway="exit")
    assert u.proc.wait(timeout=60) == 1
    err = u.stderr
    assert "error: gateway exited with code 3 while starting" in err
    assert "boom: gateway cannot open its database" in err
    assert "Traceback" not in err
    stager = read_pid(u.state / "storage-stager.pid")
    wait_for(lambda: not pid_alive(stager), what="the stager to be stopped")
