"""A service whose database is unreadable stops at once, saying which file, what is wrong and
what to do; `shoal admin` backs a running suite's databases up, checks them, and restores
them with the suite stopped. Real service processes, real SQLite files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoal.cli.main import cli
from shoal.suite import LocalSuite, SuiteError
from tests.support import start_suite

EXIT_DATABASE = 65


def zero_header(db: Path) -> None:
    with db.open("r+b") as f:
        f.write(b"\0" * 100)


def cut_in_half(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


def admin(state_dir: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--state-dir", str(state_dir), "admin", *args], input=input,
                                env={"SHOAL_DEBUG": ""})
    return result.exit_code, result.output


def stopped_suite_with_a_job(state_dir: Path, job: str = "before") -> LocalSuite:
    s = start_suite(state_dir)
    try:
        with s.client() as c:
            c.create_pool("p", target_nodes=0)
            c.create_job(job, pool_id="p")
            c.add_tasks(job, [{"id": f"t{i}", "command_line": "/bin/true"} for i in range(200)])
    finally:
        s.stop()
    return s


@pytest.mark.parametrize("damage", [zero_header, cut_in_half], ids=["header", "half"])
@pytest.mark.parametrize("service", ["job-scheduler", "pool-manager", "storage-stager"])
def test_a_damaged_database_stops_its_service_at_once_naming_the_file(
    tmp_path: Path, service: str, damage: Callable[[Path], None]
) -> None:
    s = stopped_suite_with_a_job(tmp_path / "state")
    db = s.state_dir / f"{service}.db"
    damage(db)
    with pytest.raises(SuiteError) as caught:
        s.start(timeout=30)  # stops the others again
    assert caught.value.service == service
    assert f"exited with code {EXIT_DATABASE} while starting" in str(caught.value)
    last = s.log_tail(service, lines=1)
    assert str(db) in last and "shoal admin restore" in last, last
    assert "Traceback" not in s.log_tail(service, lines=200)
    code, out = admin(s.state_dir, "check")
    assert code == 1 and f"{service}.db" in out


def test_backup_of_a_running_suite_then_restore_brings_back_what_it_held(tmp_path: Path) -> None:
    state = tmp_path / "state"
    s = start_suite(state)
    try:
        with s.client() as c:
            c.create_pool("p", target_nodes=0)
            c.create_job("before", pool_id="p")
            c.add_tasks("before", [{"id": f"t{i}", "command_line": "/bin/true"} for i in range(300)])
            code, out = admin(state, "backup", str(tmp_path / "bk"))  # while it runs
            assert code == 0, out
            c.create_job("after", pool_id="p")
        code, out = admin(state, "restore", str(tmp_path / "bk"), "--yes")
        assert code == 1 and "a suite is running" in out  # refused: nothing replaced
    finally:
        s.stop()
    assert sorted(p.name for p in (tmp_path / "bk").iterdir()) == sorted(
        p.name for p in state.glob("*.db"))
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (tmp_path / "bk").iterdir())
    zero_header(state / "job-scheduler.db")
    code, out = admin(state, "restore", str(tmp_path / "bk"))  # asks first: no
    assert code == 1 and admin(state, "check")[0] == 1
    code, out = admin(state, "restore", str(tmp_path / "bk"), "--yes")
    assert code == 0, out
    assert admin(state, "check") == (0, f"{len(list(state.glob('*.db')))} databases of {state}: ok\n")
    [aside] = state.glob("replaced-*")
    assert (aside / "job-scheduler.db").exists()  # the damaged file is kept, not deleted
    s.start()
    try:
        with s.client() as c:
            jobs = {j.name for j in c.list_jobs()}
            assert jobs == {"jobs/before"}
            assert c.get_job("before").task_counts.active == 300
    finally:
        s.stop()


def test_a_backup_needs_a_state_dir_and_a_new_destination(tmp_path: Path) -> None:
    code, out = admin(tmp_path, "backup", str(tmp_path / "bk"))
    assert code == 1 and "holds no database" in out
    s = stopped_suite_with_a_job(tmp_path / "state")
    (tmp_path / "taken").mkdir()
    code, out = admin(s.state_dir, "backup", str(tmp_path / "taken"))
    assert code == 1 and "taken" in out and "Traceback" not in out
