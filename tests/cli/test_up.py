"""`shoal up` as a user runs it — a real process starting the real services — plus a stand-in
for a service that fails while starting."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoal.cli.main import cli
from shoal.suite import SERVICES
from tests.cli.helpers import (
    agent_pids,
    kill_leftovers,
    read_pid,
    service_pids,
    standin_commands,
    wait_gone,
)
from tests.support import processes_mentioning, wait_for

ROOT = Path(__file__).resolve().parents[2]


class Up:
    """`shoal up --port 0` in the background, its output in files."""

    def __init__(self, tmp_path: Path, **modes: str) -> None:
        self.state = (tmp_path / "state").resolve()
        self.stderr_path = tmp_path / "up.stderr"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        if modes:
            env["SHOAL_SERVICE_COMMANDS"] = json.dumps(standin_commands(**modes))
        argv = ["up", "--state-dir", str(self.state), "--port", "0"]
        with open(self.stderr_path, "wb") as err, open(tmp_path / "up.stdout", "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shoal.cli.main", *argv],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=ROOT,
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_up(self) -> dict[str, int]:
        """Pids of the four services once `shoal up` says it is up."""
        wait_for(
            lambda: "Shoal is up" in self.stderr or self.proc.poll() is not None, "shoal up", 30
        )
        assert self.proc.poll() is None, self.stderr
        pids = service_pids(self.state)
        assert sorted(pids) == sorted(SERVICES), pids
        return pids

    def left_running(self) -> dict[int, str]:
        """Processes of this state dir, `shoal up` itself included, still running."""
        return processes_mentioning(str(self.state))

    def close(self) -> None:
        # Clean-up only: whatever an assertion left running, by pid.
        kill_leftovers([*self.left_running(), self.proc.pid])
        self.proc.wait()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Callable[..., Up]]:
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
    u = up()
    pids = u.wait_up()
    banner = u.stderr
    endpoint = json.loads((u.state / "client.json").read_text())["endpoint"]
    assert f"gateway   {endpoint}" in banner
    assert str(u.state) in banner and "shoal pool create" in banner
    dashboard = re.search(r"dashboard (http://127\.0\.0\.1:\d+/)", banner)
    assert dashboard, banner
    with urllib.request.urlopen(dashboard.group(1) + "login", timeout=10) as r:
        assert b"Account key" in r.read()
    # Where Prometheus scrapes each service, as printed.
    for service in SERVICES:
        url = re.search(rf"(http://127\.0\.0\.1:\d+/metrics)  \({service}\)", banner)
        assert url, banner
        with urllib.request.urlopen(url.group(1), timeout=10) as r:
            assert b"shoal_grpc_server_handled_total" in r.read()

    # Used as the banner says, from "another terminal": the client finds it by its state dir.
    created = CliRunner().invoke(
        cli,
        ["--state-dir", str(u.state), "pool", "create", "p", "--nodes", "1"],
        env={"SHOAL_ENDPOINT": None, "SHOAL_ACCOUNT_KEY": None},
    )
    assert created.exit_code == 0, created.output
    agent = wait_for(lambda: agent_pids(u.state), "the pool's agent to start", 30)

    u.proc.send_signal(sig)
    assert u.proc.wait(timeout=60) == 0, u.stderr
    wait_gone([*pids.values(), *agent])
    assert u.left_running() == {}
    assert "Shoal stopped." in u.stderr
    assert "Traceback" not in u.stderr


def test_up_exits_1_when_a_service_dies_and_stops_the_rest(up) -> None:
    u = up()
    pids = u.wait_up()
    os.kill(pids["job-scheduler"], signal.SIGKILL)
    assert u.proc.wait(timeout=60) == 1
    err = u.stderr
    assert "job-scheduler died" in err
    assert "Shoal stopped." not in err and "Traceback" not in err
    wait_gone(list(pids.values()))
    assert u.left_running() == {}


# A stand-in: a real service does not fail at start on purpose.


def test_up_reports_a_service_that_fails_to_start(up) -> None:
    u = up(gateway="exit")
    assert u.proc.wait(timeout=60) == 1
    err = u.stderr
    assert "error: gateway exited with code 3 while starting" in err
    assert "boom: gateway cannot open its database" in err
    assert "Traceback" not in err
    stager = read_pid(u.state / "storage-stager.pid")
    wait_gone([stager])
