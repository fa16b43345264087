"""A service's database damaged while it is stopped — its first 100 bytes zeroed, or the file
cut in half: does the service stop at once, with a non-zero code and one line naming the
file, and does a backup bring it back?

For each of the job-scheduler, pool-manager and storage-stager, and each damage: a suite
with a pool, a job and 200 tasks is backed up (`shoal admin backup`'s code) and stopped, the
file is damaged, and the service started on it as the suite starts it: the seconds until it
exited, its exit code, whether its last log line names the file and says what to do. Then the backup is
restored and the suite must start with the job's 200 tasks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import say
from bench.figures import Outcome, Target
from shoal import dbfiles
from shoal.suite import MODULES, LocalSuite

SERVICES = ("job-scheduler", "pool-manager", "storage-stager")
EXIT_DATABASE = 65
GIVE_UP = 60.0
"""Seconds after which a service still running on a damaged file counts as not stopped."""


def _zero(db: Path) -> None:
    with db.open("r+b") as f:
        f.write(b"\0" * 100)


def _halve(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


DAMAGES = {"header zeroed": _zero, "cut in half": _halve}


def _suite(state: Path) -> LocalSuite:
    return LocalSuite(state, gateway_port=0, pool_manager_port=0, scheduler_port=0,
                      stager_port=0, log_level="warning")


def _trial(root: Path, service: str, damage: str) -> dict[str, object]:
    state = root / "state"
    s = _suite(state)
    s.start()
    try:
        with s.client() as c:
            c.create_pool("p", target_nodes=0)
            c.create_job("j", pool_id="p")
            c.add_tasks("j", [{"id": f"t{i}", "command_line": "/bin/true"} for i in range(200)])
        dbfiles.backup(state, root / "backup")
    finally:
        s.stop()
    db = state / f"{service}.db"
    DAMAGES[damage](db)
    # The service alone, as the suite starts it: how long until it gives up, and what it says.
    t0 = time.perf_counter()
    argv = [sys.executable, "-m", MODULES[service], "--config", str(s.config_path)]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=GIVE_UP, cwd=state)
        stderr, code = proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:  # it served on a damaged file: the defect
        stderr, code = e.stderr or b"", None
    seconds = time.perf_counter() - t0
    lines = stderr.decode(errors="replace").strip().splitlines()
    last = lines[-1] if lines else ""
    stopped = code is not None and code != 0
    dbfiles.restore(root / "backup", state)
    s.start()
    try:
        with s.client() as c:
            back = c.get_job("j").task_counts.active == 200
    finally:
        s.stop()
    return {"service": service, "damage": damage, "stopped": stopped, "seconds": seconds,
            "code": code, "names_file": str(db) in last and "restore" in last,
            "traceback": any("Traceback" in x for x in lines), "restored": back}


def run(quick: bool) -> Outcome:
    outcome = Outcome("corrupt-db")
    trials = []
    for service in SERVICES[:1] if quick else SERVICES:
        for damage in DAMAGES:
            with tempfile.TemporaryDirectory(prefix="shoal-chaos-db-") as d:
                r = _trial(Path(d), service, damage)
            say(f"{service}, {damage}: {r}")
            trials.append(r)
    stopped = [t for t in trials if t["stopped"]]
    outcome.add("stopped", f"damaged databases that stopped their service (of {len(trials)})",
                len(stopped), "trials", Target(">=", len(trials)))
    outcome.add("slowest_exit", "the service started on its damaged file → it exited, slowest",
                max((float(str(t["seconds"])) for t in stopped), default=None), "s",
                Target("<=", 10))
    outcome.add("exit_65", "exited with code 65 and a log line naming the file and what to do",
                sum(1 for t in stopped if t["code"] == EXIT_DATABASE and t["names_file"]),
                "trials", Target(">=", len(trials)))
    outcome.add("restored", "suites that came back from `shoal admin backup` with their job",
                sum(1 for t in stopped if t["restored"]), "trials", Target(">=", len(trials)))
    outcome.series["trials"] = trials
    return outcome
