"""When the directories of ended attempts and deleted tasks go: decided without I/O.

An attempt's directory, tasks/{job}/{task}/{attempt}/, stays for its retention time after the
attempt ends (Azure Batch's TaskConstraints.retentionTime, 7 days by default), then goes. The
deadlines sit in one heap, so the agent wakes once for the earliest instead of scanning
every task. A deleted task goes at once, but never under an attempt of it that still runs:
what existed when the deletion arrived goes when the last of those attempts has ended. An
attempt that starts after the deletion (a new task under the same id) is not touched.

The I/O shell (agent.cleanup) feeds the plan what happens and removes what it returns.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_RETENTION = 7 * 24 * 3600.0
"""Seconds an ended attempt's directory stays when its task sets no retention time."""
MARKER_SUFFIX = ".retain"
"""tasks/{job}/{task}/{attempt}.retain holds the deadline of an attempt whose retention is not
the default, so it survives an agent restart (ids never hold a '.', so it never clashes)."""

Key = tuple[str, str]


def marker_name(attempt_id: str) -> str:
    return attempt_id + MARKER_SUFFIX


@dataclass(frozen=True)
class Removal:
    """Remove these entries of tasks/{job}/{task}/, then the task and job directories if
    that left them empty."""

    job: str
    task: str
    entries: tuple[str, ...]


@dataclass
class _Deletion:
    waiting: set[str] = field(default_factory=set)
    """Attempts of the task that ran when the deletion arrived and have not ended."""
    entries: set[str] = field(default_factory=set)
    """What to remove once none of them runs."""


class RetentionPlan:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str, str, str]] = []  # deadline, job, task, attempt
        self._running: dict[Key, set[str]] = {}
        self._deletions: dict[Key, _Deletion] = {}

    def began(self, job: str, task: str, attempt: str) -> None:
        """An attempt runs here (its directory is in use)."""
        self._running.setdefault((job, task), set()).add(attempt)

    def ended(self, job: str, task: str, attempt: str, deadline: float | None) -> list[Removal]:
        """An attempt ended; its directory goes at `deadline` (None: it has none). Returns
        what may go now: a deleted task that waited for this attempt."""
        key = (job, task)
        running = self._running.get(key)
        if running is not None:
            running.discard(attempt)
            if not running:
                del self._running[key]
        deletion = self._deletions.get(key)
        if deletion is not None and attempt in deletion.waiting:
            deletion.waiting.discard(attempt)
            deletion.entries.update((attempt, marker_name(attempt)))
            return self._release(key)
        if deadline is not None:
            self.retain(job, task, attempt, deadline)
        return []

    def retain(self, job: str, task: str, attempt: str, deadline: float) -> None:
        """The attempt's directory goes at `deadline` (also for what a start-up scan finds)."""
        heapq.heappush(self._heap, (deadline, job, task, attempt))

    def delete_task(self, job: str, task: str, entries: Iterable[str]) -> list[Removal]:
        """The task was deleted; `entries` are what tasks/{job}/{task}/ holds now. Returns
        them to remove now, or nothing while an attempt of the task runs."""
        key = (job, task)
        deletion = self._deletions.setdefault(key, _Deletion())
        deletion.waiting.update(self._running.get(key, ()))
        deletion.entries.update(entries)
        return self._release(key)

    def _release(self, key: Key) -> list[Removal]:
        deletion = self._deletions[key]
        if deletion.waiting:
            return []
        del self._deletions[key]
        return [Removal(key[0], key[1], tuple(sorted(deletion.entries)))]

    def due(self, now: float) -> list[Removal]:
        """The attempts whose retention has passed, taken off the plan."""
        out = []
        while self._heap and self._heap[0][0] <= now:
            _, job, task, attempt = heapq.heappop(self._heap)
            out.append(Removal(job, task, (attempt, marker_name(attempt))))
        return out

    def earliest(self, n: int) -> list[Removal]:
        """The `n` attempts whose retention ends first, taken off the plan before it ends:
        the node is short of disk space, and their directories are what it can give back."""
        out: list[Removal] = []
        while self._heap and len(out) < n:
            _, job, task, attempt = heapq.heappop(self._heap)
            out.append(Removal(job, task, (attempt, marker_name(attempt))))
        return out

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def waiting_deletions(self) -> list[Key]:
        """Deleted tasks whose removal waits for running attempts."""
        return list(self._deletions)

    def __len__(self) -> int:
        """Attempt directories waiting for their retention to pass."""
        return len(self._heap)
