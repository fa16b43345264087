"""Removes ended attempts' directories when their retention time has passed, and deleted
tasks' directories at once (agent.retention decides when; this module does the I/O).

Surviving a restart without a database: when an attempt ends its directory's mtime is set to
the end time, and an attempt whose retention is not the default also gets a marker
tasks/{job}/{task}/{attempt}.retain holding its deadline — so the common case costs one
utime per attempt, no file. At start, one scan of tasks/ rebuilds the plan: a marker's
deadline, else the directory's mtime plus the default retention. The scan runs before the
agent takes work, so every attempt directory it sees has ended.

Removing a directory tree runs in a worker thread (it may be large); removing emptied task
and job directories runs on the event loop, where the executor creates them, so an rmdir can
never slip between the executor's mkdir of a task directory and of its attempt directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from agent.job_tasks import PREP_TASK_ID, RELEASE_TASK_ID
from agent.layout import NodeLayout, UnsafePath, check_id
from agent.retention import (
    DEFAULT_RETENTION,
    MARKER_SUFFIX,
    Removal,
    RetentionPlan,
    marker_name,
)
from services.common.ids import ID_RE
from services.common.timeutil import from_duration
from shoal.agent.v1 import agent_pb2

log = structlog.get_logger()

MAX_SLEEP = 300.0
"""Longest wait between checks of the plan: a wall clock that jumps is noticed this soon."""
# The directories of a job's preparation and release tasks sit next to its tasks' ones.
NOT_TASKS = frozenset({PREP_TASK_ID, RELEASE_TASK_ID})


def retention_of(a: agent_pb2.Assignment) -> float:
    """Seconds the attempt's directory stays after it ends."""
    if a.HasField("retention_time"):
        return max(0.0, from_duration(a.retention_time))
    return DEFAULT_RETENTION


class Cleanup:
    def __init__(self, layout: NodeLayout, *, clock: Callable[[], float] = time.time) -> None:
        self.layout = layout
        self.plan = RetentionPlan()
        self._clock = clock
        self._now: list[Removal] = []
        self._wake = asyncio.Event()

    # --- what happens ----------------------------------------------------------------

    def began(self, a: agent_pb2.Assignment) -> None:
        self.plan.began(a.job_id, a.task_id, a.attempt_id)

    def ended(self, a: agent_pb2.Assignment) -> None:
        """An attempt ended (with a result or not): its directory now waits for its
        retention time, or goes at once with its deleted task."""
        end = self._clock()
        retention = retention_of(a)
        deadline: float | None = end + retention
        try:
            self._stamp(a, end, retention)
        except (UnsafePath, FileNotFoundError):
            deadline = None  # it never had a directory (refused before it was made)
        except OSError as e:
            log.warning("cannot mark an ended attempt's directory; it is kept for the "
                        "default retention after a restart", error=str(e))
        self._queue(self.plan.ended(a.job_id, a.task_id, a.attempt_id, deadline), deadline)

    def _stamp(self, a: agent_pb2.Assignment, end: float, retention: float) -> None:
        d = self.layout.attempt(a.job_id, a.task_id, a.attempt_id).dir
        os.utime(d, (end, end), follow_symlinks=False)
        if retention != DEFAULT_RETENTION:
            marker = d.parent / marker_name(a.attempt_id)
            # The task directory is the agent's; the marker's own name is not followed.
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, f"{end + retention:.3f}\n".encode())
            finally:
                os.close(fd)

    def delete_task(self, job_id: str, task_id: str) -> None:
        """The scheduler deleted the task: remove its directory now, or once its running
        attempts have ended."""
        try:
            entries = self.layout.task_entries(job_id, task_id)
        except UnsafePath as e:
            log.error("deleted task with an invalid id ignored", error=str(e))
            return
        except OSError as e:
            log.error("cannot list a deleted task's directory", job=job_id, task=task_id,
                      error=str(e))
            return
        if task_id in NOT_TASKS:
            # A task named like a job's preparation or release task shares its directory:
            # remove only what is the task's own.
            entries = [e for e in entries if e.endswith(MARKER_SUFFIX) or e + MARKER_SUFFIX
                       in entries]
        self._queue(self.plan.delete_task(job_id, task_id, entries), None)

    def reclaim(self, n: int) -> int:
        """The node is short of disk space: remove the `n` ended attempts whose retention
        ends first now (Azure Batch may also remove task directories early when a node runs
        out of space). Returns how many were queued."""
        removals = self.plan.earliest(n)
        if removals:
            log.warning("short of disk space: removing ended attempts before their retention "
                        "time", attempts=len(removals))
        self._queue(removals, None)
        return len(removals)

    def _queue(self, removals: list[Removal], deadline: float | None) -> None:
        self._now.extend(removals)
        if removals or deadline is not None:
            self._wake.set()

    # --- start-up ----------------------------------------------------------------------

    def scan(self) -> int:
        """Plan the removal of every attempt directory already on the node; returns how
        many. Run before the agent takes work."""
        found = 0
        for job in _subdirs(self.layout.tasks):
            for task in _subdirs(self.layout.tasks / job):
                if task in NOT_TASKS:
                    continue
                found += self._scan_task(job, task)
        return found

    def _scan_task(self, job: str, task: str) -> int:
        d = self.layout.tasks / job / task
        names = set(os.listdir(d))
        found = 0
        for name in names:
            if name.endswith(MARKER_SUFFIX):
                if name.removesuffix(MARKER_SUFFIX) not in names:
                    self._now.append(Removal(job, task, (name,)))  # its attempt is gone
                continue
            if ID_RE.fullmatch(name) is None:
                continue
            try:
                st = os.lstat(d / name)
            except FileNotFoundError:
                continue
            deadline = st.st_mtime + DEFAULT_RETENTION
            if marker_name(name) in names:
                with contextlib.suppress(OSError, ValueError):
                    deadline = _read_deadline(d / marker_name(name))
            self.plan.retain(job, task, name, deadline)
            found += 1
        return found

    # --- the timer -----------------------------------------------------------------------

    async def run(self) -> None:
        """Remove what is due, then sleep until the next deadline or new work; forever."""
        while True:
            self._wake.clear()
            work, self._now = self._now, []
            work += self.plan.due(self._clock())
            if work:
                await self._remove(work)
                continue  # more may have come due, or been queued, meanwhile
            deadline = self.plan.next_deadline()
            wait = MAX_SLEEP if deadline is None else min(MAX_SLEEP, deadline - self._clock())
            if wait > 0:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation
                # that arrives as the event is set, and the agent's stop would hang on it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()

    async def _remove(self, work: list[Removal]) -> None:
        removed = await asyncio.to_thread(self._remove_entries, work)
        for r in work:
            try:
                self.layout.prune(r.job, r.task)
            except (UnsafePath, OSError) as e:
                log.warning("cannot remove an emptied task directory", job=r.job, task=r.task,
                            error=str(e))
        log.debug("removed attempt directories", removals=len(work), entries=removed)

    def _remove_entries(self, work: list[Removal]) -> int:
        removed = 0
        for r in work:
            try:
                removed += self.layout.remove_task_entries(r.job, r.task, r.entries)
            except (UnsafePath, OSError) as e:
                # A symlink planted in place of a directory, or a permission problem: leave
                # it, say so, and go on with the rest.
                log.warning("cannot remove a task's files", job=r.job, task=r.task,
                            error=str(e))
        return removed


def _read_deadline(path: Path) -> float:
    # Not following a symlink, not waiting on a FIFO: whatever is there, the scan goes on.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return float(os.read(fd, 64))
    finally:
        os.close(fd)


def _subdirs(path: os.PathLike[str] | str) -> list[str]:
    """Names of the real directories (not symlinks) with valid ids in `path`."""
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for e in entries:
        with contextlib.suppress(OSError, UnsafePath):
            if e.is_dir(follow_symlinks=False) and check_id(e.name, "name"):
                out.append(e.name)
    return out
