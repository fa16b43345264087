"""A suite's SQLite files as files: checking one, and the online backup and the restore of a
state directory's databases. Standard library only: the services open their databases through
`check_file` (services/common/db.py), and `shoal admin` runs the rest on the control-plane
host without importing any service.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import time
from pathlib import Path

LOCK_FILE = "suite.lock"
"""The lock a running suite holds in its state directory (shoal.suite.LocalSuite)."""


class DatabaseUnreadable(Exception):
    """A database file cannot be used: say which file, what is wrong and what to do."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"{path}: {problem}. Restore it from a backup (shoal admin restore), or move it "
            f"aside to start this service with an empty database")
        self.path = path
        self.problem = problem


def check_file(path: Path) -> None:
    """SQLite's quick_check of an existing file (a missing one is created later): it reads
    every page once, without the index cross-checks of a full integrity_check — about a
    second per million tasks. Raises DatabaseUnreadable."""
    if not path.exists():
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5.0)
    except sqlite3.Error as e:
        raise DatabaseUnreadable(path, f"cannot be opened ({e})") from None
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        raise DatabaseUnreadable(path, f"is not a readable SQLite database ({e})") from None
    finally:
        conn.close()
    problems = [r[0] for r in rows if r[0] != "ok"]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DatabaseUnreadable(path, f"is damaged: {problems[0]}{more}")


def databases(state_dir: Path) -> list[Path]:
    return sorted(p for p in state_dir.glob("*.db") if p.is_file())


def backup(state_dir: Path, dest: Path) -> list[Path]:
    """Copy every database of `state_dir` into `dest` (a new directory, 0700: the databases
    hold what lets one act as the services) while the suite runs: SQLite's online backup API
    gives a consistent copy of each file, and each copy is checked. Returns the copies."""
    dbs = databases(state_dir)
    if not dbs:
        raise FileNotFoundError(f"{state_dir} holds no database (*.db): is it a state directory?")
    dest.mkdir(mode=0o700, parents=True, exist_ok=False)
    copies = []
    for db in dbs:
        out_path = dest / db.name
        src = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)
        try:
            out = sqlite3.connect(out_path)
            try:
                src.backup(out, pages=1024)
            finally:
                out.close()
        finally:
            src.close()
        out_path.chmod(0o600)
        check_file(out_path)
        copies.append(out_path)
    return copies


def restore(backup_dir: Path, state_dir: Path) -> Path:
    """Put a backup's databases in place of `state_dir`'s, with the suite stopped (refused
    while it runs). Each copy is checked first; the files replaced (with their WAL) are moved
    to state_dir/replaced-<time>/, not deleted. Returns that directory."""
    copies = databases(backup_dir)
    if not copies:
        raise FileNotFoundError(f"{backup_dir} holds no database (*.db): is it a backup?")
    for c in copies:
        check_file(c)
    with _suite_stopped(state_dir):
        aside = state_dir / time.strftime("replaced-%Y%m%d-%H%M%S")
        aside.mkdir(mode=0o700)
        for c in copies:
            for suffix in ("", "-wal", "-shm"):
                old = state_dir / (c.name + suffix)
                if old.exists():
                    old.rename(aside / old.name)
            shutil.copy2(c, state_dir / c.name)
            (state_dir / c.name).chmod(0o600)
        return aside


class _suite_stopped:
    """Holds the state directory's suite lock, so no suite starts on it meanwhile; refuses
    when one runs."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / LOCK_FILE
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise RuntimeError(
                f"a suite is running on {self._path.parent}: stop it (Ctrl-C its shoal up, or "
                f"SIGTERM it) before restoring") from None

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)
