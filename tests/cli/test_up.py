"""`shoal up` as a user runs it — a real process starting the real services — plus a stand-in
for a service that fails while starting."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
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
    serving,
    standin_commands,
    wait_gone,
)
from tests.support import processes_mentioning, wait_for

ROOT = Path(__file__).resolve().parents[2]


class Up:
    """`shoal up --port 0` in the background, its output in files."""

    def __init__(self, tmp_path: Path, *args: str, **modes: str) -> None:
        self.state = (tmp_path / "state").resolve()
        self.stderr_path = tmp_path / "up.stderr"
        env = {k: v for k, v in os.environ.items() if (not k.startswith("SHOAL_") or k == "SHOAL_CONFIG")}
        self.config = tmp_path / "config.toml"
        env["SHOAL_CONFIG"] = str(self.config)
        if modes:
            env["SHOAL_SERVICE_COMMANDS"] = json.dumps(standin_commands(**modes))
        argv = ["up", "--state-dir", str(self.state), "--port", "0", *args]
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
            lambda: "Shoal is up" in self.stderr or self.proc.poll() is not None, "shoal up", 90
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

    def start(*args: str, **modes: str) -> Up:
        u = Up(tmp_path, *args, **modes)
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
    rest = json.loads((u.state / "cluster.json").read_text())["rest"]["address"]
    assert f"REST      http://{rest}" in banner and not rest.endswith(":0")
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

    # Used as the banner says, from "another terminal" in any directory: the client finds it
    # through the profile `shoal up` wrote.
    assert f"(profile local in {u.config} is the default" in banner
    assert u.config.stat().st_mode & 0o777 == 0o600
    assert tomllib.loads(u.config.read_text()) == {
        "default_profile": "local", "profiles": {"local": {"state_dir": str(u.state)}}}
    elsewhere = u.state.parent / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    created = subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", "pool", "create", "p", "--nodes", "1"],
        cwd=elsewhere, env={**env, "SHOAL_CONFIG": str(u.config)}, capture_output=True,
        text=True, timeout=60,
    )
    assert created.returncode == 0, created.stderr
    agent = wait_for(lambda: agent_pids(u.state), "the pool's agent to start", 30)

    u.proc.send_signal(sig)
    assert u.proc.wait(timeout=60) == 0, u.stderr
    wait_gone([*pids.values(), *agent])
    assert u.left_running() == {}
    assert "Shoal stopped." in u.stderr
    assert "Traceback" not in u.stderr


def creates_job(cli_args: list[str], env: dict[str, str | None], job: str) -> bool:
    made = CliRunner().invoke(cli, [*cli_args, "job", "create", job, "--pool", "p"], env=env)
    if made.exit_code != 0:
        assert "JOB_SCHEDULER_UNAVAILABLE" in made.output, made.output
    return made.exit_code == 0


def test_up_refuses_a_staging_outage_timeout_that_is_not_positive(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["up", "--state-dir", str(tmp_path / "s"),
                                    "--staging-outage-timeout", "0"])
    assert done.exit_code == 2 and "--staging-outage-timeout" in done.output
    assert not (tmp_path / "s").exists()


def restarted(u: Up, times: int) -> bool:
    return u.stderr.count("job-scheduler restarted") == times


def test_up_restarts_a_service_that_dies_and_keeps_the_others(up) -> None:
    u = up()
    pids = u.wait_up()
    cli_args = ["--state-dir", str(u.state)]
    env = {"SHOAL_ENDPOINT": None, "SHOAL_ACCOUNT_KEY": None}
    made = CliRunner().invoke(cli, [*cli_args, "pool", "create", "p", "--nodes", "0"], env=env)
    assert made.exit_code == 0, made.output
    for death in (1, 2):
        os.kill(service_pids(u.state)["job-scheduler"], signal.SIGKILL)
        wait_for(partial(restarted, u, death), "the restart", 60)
        # Restarted is healthy on its own port; the gateway reconnects to it within its
        # channel's backoff (at most 2 s) and says so in its health.
        endpoint = json.loads((u.state / "client.json").read_text())["endpoint"]
        wait_for(partial(serving, endpoint, "job-scheduler"), "the gateway to reach it", 30)
        now = service_pids(u.state)
        assert now["job-scheduler"] != pids["job-scheduler"]
        assert {s: p for s, p in now.items() if s != "job-scheduler"} == {
            s: p for s, p in pids.items() if s != "job-scheduler"}  # the others kept running
        # The gateway reconnects to the restarted scheduler within gRPC's backoff (≤ 2 s):
        # UNAVAILABLE until then.
        wait_for(partial(creates_job, cli_args, env, f"j{death}"), "a job create to pass", 30)
    err = u.stderr
    assert err.count("job-scheduler died") == 2 and "restarting job-scheduler" in err
    assert u.proc.poll() is None  # it stops only when asked
    u.proc.send_signal(signal.SIGTERM)
    assert u.proc.wait(timeout=60) == 0, u.stderr
    assert u.left_running() == {}
    assert "Traceback" not in u.stderr


def test_up_keeps_trying_a_service_that_cannot_start_until_it_can(up) -> None:
    u = up()
    pids = u.wait_up()
    db = u.state / "job-scheduler.db"
    # Damaged under it, then killed: from now on it exits at once on every attempt, naming
    # its file (damaged first, so no restart can come in between).
    db.write_bytes(b"not a database " * 1000)
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    os.kill(pids["job-scheduler"], signal.SIGKILL)
    wait_for(lambda: u.stderr.count("job-scheduler did not restart") >= 2, "two failed attempts",
             60)
    assert "exited with code 65" in u.stderr and "next attempt in" in u.stderr
    assert service_pids(u.state)["pool-manager"] == pids["pool-manager"]
    listed = CliRunner().invoke(cli, ["--state-dir", str(u.state), "pool", "list"],
                                env={"SHOAL_ENDPOINT": None, "SHOAL_ACCOUNT_KEY": None})
    assert listed.exit_code == 0, listed.output  # the others still serve
    for suffix in ("", "-wal", "-shm"):  # the operator moves the damaged file aside
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    wait_for(lambda: "job-scheduler restarted" in u.stderr, "the restart once it can", 90)
    u.proc.send_signal(signal.SIGINT)
    assert u.proc.wait(timeout=60) == 0, u.stderr
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
