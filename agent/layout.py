"""The node's directory layout, and the one place paths under it are built from ids.

Every id that comes from the scheduler is checked against the id charset before it becomes a
path component, so `..`, `/` and NUL can never appear; files a client asks to read are opened
without following symlinks at any level below `tasks/`, because the task itself owns its
attempt directory and could plant a link there.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from services.common.ids import ID_RE
from shoal.agent.v1 import agent_pb2

READABLE_FILES = ("stdout.txt", "stderr.txt")
CHUNK_BYTES = 64 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(ValueError):
    """A request named something outside what the agent lets it reach."""


def check_id(value: str, field: str) -> str:
    if ID_RE.fullmatch(value) is None:
        raise UnsafePath(f"{field} {value[:80]!r} is not a valid id (1-64 of A-Z a-z 0-9 _ -)")
    return value


@dataclass(frozen=True)
class TaskPaths:
    """Where a process runs: an attempt's, or a node command's (the start task's, a job's
    preparation or release task's)."""

    dir: Path
    """SHOAL_TASK_DIR: its own directory (also its HOME)."""
    wd: Path
    """SHOAL_TASK_WORKING_DIR: the process's cwd."""
    stdout: Path
    stderr: Path

    @classmethod
    def of(cls, d: Path) -> TaskPaths:
        return cls(d, d / "wd", d / "stdout.txt", d / "stderr.txt")


class NodeLayout:
    """{node_root}/shared, startup/ (the start task's; wd/ is its cwd),
    applications/{app}/{version}/, cache/, tasks/{job}/{task}/{attempt}/,
    tasks/{job}/jobpreparation/ and jobrelease/, outbox/, uploads/ (uploads that wait for
    storage)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.shared = self.root / "shared"
        self.startup = self.root / "startup"
        self.applications = self.root / "applications"
        self.cache = self.root / "cache"
        self.tasks = self.root / "tasks"
        self.outbox = self.root / "outbox"
        self.uploads = self.root / "uploads"

    def create(self) -> None:
        # applications/ and cache/ appear with the first staging that needs them.
        for d in (self.shared, self.startup, self.tasks, self.outbox, self.uploads):
            d.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        """tasks/{job}: the job's attempts, and its preparation and release tasks'
        directories (`jobpreparation/`, `jobrelease/`, Azure Batch's names)."""
        return self.tasks / check_id(job_id, "job_id")

    def attempt(self, job_id: str, task_id: str, attempt_id: str) -> TaskPaths:
        d = (
            self.tasks
            / check_id(job_id, "job_id")
            / check_id(task_id, "task_id")
            / check_id(attempt_id, "attempt_id")
        )
        return TaskPaths.of(d)

    def open_task_file(self, job_id: str, task_id: str, attempt_id: str, name: str) -> int:
        """Open an attempt's stdout.txt or stderr.txt read-only; return the fd.

        Raises UnsafePath for a bad id or name, FileNotFoundError when it does not exist,
        OSError when it is not a regular file or a symlink was planted on the way.
        """
        if name not in READABLE_FILES:
            raise UnsafePath(f"path {name[:80]!r} is not readable: only {' and '.join(READABLE_FILES)}")
        fd = self._open_under_tasks(
            check_id(job_id, "job_id"), check_id(task_id, "task_id"),
            check_id(attempt_id, "attempt_id"),
        )
        try:
            # O_NONBLOCK: a FIFO planted under the name must not hang the agent.
            f = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd
            )
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(f).st_mode):
            os.close(f)
            raise OSError(f"{name} is not a regular file")
        return f

    def _open_under_tasks(self, *parts: str) -> int:
        """An fd of tasks/{parts...}, opened one checked component at a time without following
        a symlink (OSError ELOOP / ENOTDIR when one was planted on the way)."""
        fd = os.open(self.tasks, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    # --- clean-up (agent.cleanup): ended attempts and deleted tasks ----------------------

    def task_entries(self, job_id: str, task_id: str) -> list[str]:
        """What tasks/{job}/{task}/ holds (attempt directories, retention markers); empty
        when it does not exist."""
        try:
            fd = self._open_under_tasks(check_id(job_id, "job_id"), check_id(task_id, "task_id"))
        except FileNotFoundError:
            return []
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def remove_task_entries(self, job_id: str, task_id: str, names: Iterable[str]) -> int:
        """Remove entries of tasks/{job}/{task}/: directories with everything below them
        (symlinks inside are removed, never followed), anything else unlinked. Names that are
        not an id, or an id with a suffix such as `.retain`, are refused. Returns how many
        were removed; missing ones are skipped."""
        try:
            fd = self._open_under_tasks(check_id(job_id, "job_id"), check_id(task_id, "task_id"))
        except FileNotFoundError:
            return 0
        removed = 0
        try:
            for name in names:
                check_id(name.split(".", 1)[0], "entry")
                try:
                    if stat.S_ISDIR(os.lstat(name, dir_fd=fd).st_mode):
                        shutil.rmtree(name, dir_fd=fd)
                    else:
                        os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    continue
                removed += 1
        finally:
            os.close(fd)
        return removed

    def prune(self, job_id: str, task_id: str) -> None:
        """Remove tasks/{job}/{task}/, then tasks/{job}/, if empty (an rmdir, which fails on
        anything else: a directory in use is never empty)."""
        try:
            fd = self._open_under_tasks(check_id(job_id, "job_id"))
        except FileNotFoundError:
            return
        try:
            _rmdir_if_empty(task_id, fd)
        finally:
            os.close(fd)
        tasks = os.open(self.tasks, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _rmdir_if_empty(job_id, tasks)
        finally:
            os.close(tasks)


def _rmdir_if_empty(name: str, dir_fd: int) -> None:
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.ENOTDIR):
            raise


def answer_read(layout: NodeLayout, r: agent_pb2.FileRead) -> Generator[agent_pb2.FileChunk, None, None]:
    """The FileChunks answering a read: the data from `offset` (or from `from_end` bytes before
    the end) in pieces, the last with eof; or a single chunk with `error` set (and eof) when
    the file cannot be read. Close the generator when abandoning it, to close the file."""

    def error(message: str) -> agent_pb2.FileChunk:
        return agent_pb2.FileChunk(request_id=r.request_id, offset=r.offset, eof=True, error=message)

    try:
        fd = layout.open_task_file(r.job_id, r.task_id, r.attempt_id, r.path)
    except FileNotFoundError:
        yield error(f"{r.path} of attempt {r.attempt_id} not found on this node")
        return
    except (UnsafePath, OSError) as e:
        yield error(str(e))
        return
    try:
        start = max(0, os.fstat(fd).st_size - r.from_end) if r.from_end > 0 else r.offset
        for offset, data, eof in read_chunks(fd, start):
            yield agent_pb2.FileChunk(request_id=r.request_id, data=data, offset=offset, eof=eof)
    except (UnsafePath, OSError) as e:
        yield error(str(e))
    finally:
        os.close(fd)


def read_chunks(fd: int, offset: int, chunk: int = CHUNK_BYTES) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, data, eof) pieces of at most `chunk` bytes from `offset` to the size the file
    had when the read began (a file that keeps growing must not make one read endless).
    Always yields at least one piece, the last with eof True."""
    if offset < 0:
        raise UnsafePath(f"offset must not be negative, got {offset}")
    end = os.fstat(fd).st_size
    pos = offset
    while True:
        data = os.pread(fd, min(chunk, max(0, end - pos)), pos) if pos < end else b""
        eof = not data or pos + len(data) >= end
        yield pos, data, eof
        if eof:
            return
        pos += len(data)
