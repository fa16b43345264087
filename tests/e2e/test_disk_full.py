"""A full disk under a service: writes are refused with RESOURCE_EXHAUSTED/DISK_FULL, reads
go on, the process stays up, and once space is freed writes work again with nothing accepted
before lost. Real service processes on a real small filesystem (a tmpfs mounted for the test;
the test is skipped, saying why, where mounting is not allowed)."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from shoal.errors import ShoalError, StatusCode
from shoal.v1 import task_pb2
from tests.support import print_logs, start_suite, wait_for

T = TypeVar("T")


def task_id(t: task_pb2.Task) -> str:
    return t.name.rsplit("/", 1)[1]


def answered(call: Callable[[], T]) -> T | None:
    """The call's answer, or None while the service it needs is still coming back."""
    try:
        return call()
    except ShoalError as e:
        if e.code != StatusCode.UNAVAILABLE:
            raise
        return None


@contextlib.contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(fs: Path, leave: int = 0) -> Path:
    """A file that takes every free byte of the filesystem but `leave`."""
    filler = fs / "filler"
    headroom = fs / "headroom"
    headroom.write_bytes(b"\0" * leave)
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 20, 4096):
            block = b"\0" * size
            try:
                while True:
                    f.write(block)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    headroom.unlink()
    return filler


def test_a_full_disk_refuses_writes_keeps_reads_and_recovers(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "fs", "24m") as fs:
        state = fs / "state"
        state.mkdir()
        # The logs stay off the small disk: this is about the databases.
        (tmp_path / "logs").mkdir()
        (state / "logs").symlink_to(tmp_path / "logs")
        s = start_suite(state)
        try:
            pid = s.pid("job-scheduler")
            with s.client(timeout=20) as c:
                c.create_pool("p", target_nodes=0)
                c.create_job("j", pool_id="p")
                filler = fill(fs, leave=2 << 20)  # room for a few adds
                added: list[str] = []
                refused: ShoalError | None = None
                command = "/bin/echo " + "x" * 2000
                for n in range(400):  # 400 × 100 tasks of 2 kB: far more than the disk holds
                    ids = [f"t{n}-{i}" for i in range(100)]
                    try:
                        c.add_tasks("j", [{"id": i, "command_line": command} for i in ids])
                    except ShoalError as e:
                        if e.code == StatusCode.DEADLINE_EXCEEDED:
                            continue  # durable or not, it is checked below
                        refused = e
                        break
                    added += ids
                assert refused is not None, "the disk never filled"
                assert added, "no add went through before the disk filled"
                assert refused.code == StatusCode.RESOURCE_EXHAUSTED, refused
                assert refused.reason == "DISK_FULL" and "disk is full" in refused.message

                # Small writes go on into what the database's log has left, until a commit
                # finds no room: it waits for space (its caller's deadline passes) and every
                # write after it is refused at once.
                priority = None
                with s.client(timeout=3) as quick:
                    for n in range(1, 5000):
                        try:
                            quick.update_job("j", priority=n % 1000)
                        except ShoalError as e:
                            if e.code == StatusCode.DEADLINE_EXCEEDED:
                                priority = n % 1000
                                continue
                            assert e.reason == "DISK_FULL", e
                            break
                    else:
                        pytest.fail("no commit ever waited for space")
                assert priority is not None, "a commit was refused, not kept"
                with pytest.raises(ShoalError) as caught:
                    c.add_task("j", "while-full", "/bin/true")
                assert caught.value.reason == "DISK_FULL"

                # Reads still answer, and the process is the same one.
                assert c.get_job("j").name == "jobs/j"
                listed = {task_id(t) for t in c.list_tasks("j")}
                assert set(added) <= listed
                assert s.pid("job-scheduler") == pid

                filler.unlink()

                def a_write_goes_through() -> bool:
                    try:
                        c.add_task("j", "after", "/bin/true")
                    except ShoalError as e:
                        assert e.reason == "DISK_FULL", e
                        return False
                    return True

                wait_for(a_write_goes_through, "a write once space is back", timeout=60)
                assert s.pid("job-scheduler") == pid
                listed = {task_id(t) for t in c.list_tasks("j")}
                assert set(added) | {"after"} <= listed
                counts = c.get_job("j").task_counts
                assert c.get_job("j").priority == priority  # the commit that waited
                assert counts.active == len(listed)

            # Memory and file agree: a restarted scheduler, built from the file, holds the same.
            s.restart("job-scheduler")
            with s.client() as c:
                job = wait_for(lambda: answered(lambda: c.get_job("j")), "the restarted scheduler")
                assert job.task_counts == counts
                assert job.priority == priority
                assert {task_id(t) for t in c.list_tasks("j")} == listed
        except BaseException:
            print_logs(s)
            raise
        finally:
            s.stop()
