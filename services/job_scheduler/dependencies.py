"""Task dependencies, pure (stdlib only): which ids a task names, refusing unknown ids and
cycles when it is added, and — while the job runs — which waiting tasks become ready, and
which are blocked, as the tasks they depend on complete.

Beyond Azure Batch, a blocked task is never silently ACTIVE: it carries a reason naming the
dependency that blocked it, and can be unblocked (run anyway) or terminated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_IDS = 1000
MAX_RANGES = 100
MAX_RANGE = 100_000


def expand(ids: Iterable[str], ranges: Iterable[tuple[int, int]]) -> list[str]:
    """The ids a dependency spec names, each once (ids are unique case-insensitively), in
    order and as the user spelled them: errors quote them that way."""
    out: dict[str, str] = {}
    for i in ids:
        out.setdefault(i.lower(), i)
    for start, end in ranges:
        for n in range(start, end + 1):
            out.setdefault(str(n), str(n))
    return list(out.values())


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle among new tasks (id -> ids it depends on, lower-case), or None. Tasks added
    earlier cannot be in one: they could only depend on tasks that existed before them."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(edges, WHITE)
    for root in edges:
        if color[root] != WHITE:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        color[root] = GREY
        path.append(root)
        while stack:
            node, i = stack[-1]
            deps = edges.get(node, [])
            if i < len(deps):
                stack[-1] = (node, i + 1)
                nxt = deps[i]
                if nxt not in edges:
                    continue  # an existing task: not part of any new cycle
                if color[nxt] == GREY:
                    return [*path[path.index(nxt):], nxt]
                if color[nxt] == WHITE:
                    color[nxt] = GREY
                    path.append(nxt)
                    stack.append((nxt, 0))
            else:
                color[node] = BLACK
                path.pop()
                stack.pop()
    return None


@dataclass
class _Waiting:
    job_pk: int
    pending: int
    """Dependencies not yet completed."""
    failed: dict[int, str] = field(default_factory=dict)
    """Dependencies that completed without satisfying it, and how: it is blocked while any."""
    ignore_failures: bool = False
    """Unblocked by the user: failed dependencies no longer block it (pending ones still count)."""

    @property
    def blocked(self) -> str:
        return "" if self.ignore_failures or not self.failed else next(iter(self.failed.values()))


@dataclass
class DependencyTracker:
    """ACTIVE tasks that wait for others, and who waits for whom."""

    waiting: dict[int, _Waiting] = field(default_factory=dict)
    dependents: dict[int, list[int]] = field(default_factory=dict)
    """task -> tasks waiting for it to complete."""
    unfinished: dict[int, set[int]] = field(default_factory=dict)
    """job -> its tasks not yet completed, for jobs that use dependencies: whether a task
    named as a dependency is still to come."""
    outcomes: dict[int, tuple[bool, str]] = field(default_factory=dict)
    """task -> (satisfies its dependents, why not), for completed tasks of such jobs seen by
    this process (older ones are judged from their rows)."""

    def add(
        self, task_pk: int, job_pk: int, pending: Iterable[int],
        failed: dict[int, str] | None = None, ignore_failures: bool = False,
    ) -> bool:
        """Track a task; True when it waits (does not go to the ready queue now)."""
        pend = list(pending)
        for dep in pend:
            self.dependents.setdefault(dep, []).append(task_pk)
        w = _Waiting(job_pk, len(pend), dict(failed or {}), ignore_failures)
        if not pend and not w.blocked:
            return False
        self.waiting[task_pk] = w
        return True

    def completed(
        self, task_pk: int, satisfy: bool, reason: str
    ) -> tuple[list[tuple[int, int]], list[int]]:
        """A task completed. Its dependents are satisfied — those with nothing else pending
        are returned as (job_pk, task_pk), now ready — or blocked with `reason` (returned as
        the second list, those newly blocked)."""
        ready, blocked = [], []
        for d in self.dependents.pop(task_pk, ()):
            w = self.waiting.get(d)
            if w is None:
                continue
            w.pending -= 1
            if not satisfy:
                was = w.blocked
                w.failed[task_pk] = reason
                if w.blocked and not was:
                    blocked.append(d)
            if w.pending == 0 and not w.blocked:
                del self.waiting[d]
                ready.append((w.job_pk, d))
        return ready, blocked

    def blocked_by(self, task_pk: int) -> list[int]:
        """Waiting tasks that a failure of `task_pk` counts against."""
        return [d for d, w in self.waiting.items() if task_pk in w.failed]

    def reopened_one(self, task_pk: int, dependent: int) -> None:
        """A completed task was reactivated: a dependent its failure counted against waits
        for it again (and is still blocked only by other failed dependencies)."""
        w = self.waiting[dependent]
        del w.failed[task_pk]
        w.pending += 1
        self.dependents.setdefault(task_pk, []).append(dependent)

    def unblock(self, task_pk: int) -> tuple[int, bool] | None:
        """Failed dependencies no longer block the task: (its job, ready now) — ready only
        when none is pending any more — or None when it was not blocked."""
        w = self.waiting.get(task_pk)
        if w is None or not w.blocked:
            return None
        w.ignore_failures = True
        if w.pending == 0:
            del self.waiting[task_pk]
            return w.job_pk, True
        return w.job_pk, False

    def has_dependents(self, task_pk: int) -> bool:
        return bool(self.dependents.get(task_pk)) or bool(self.blocked_by(task_pk))

    def forget(self, task_pk: int) -> bool:
        """The task left ACTIVE without running (terminated, deleted, its job ended); False
        when it was not waiting."""
        if self.waiting.pop(task_pk, None) is None:
            return False
        for deps in self.dependents.values():
            if task_pk in deps:
                deps.remove(task_pk)
        return True

    def forget_job(self, job_pk: int) -> list[int]:
        gone = {pk for pk, w in self.waiting.items() if w.job_pk == job_pk}
        for pk in gone:
            del self.waiting[pk]
        if gone:
            for dep in list(self.dependents):
                left = [w for w in self.dependents[dep] if w not in gone]
                if left:
                    self.dependents[dep] = left
                else:
                    del self.dependents[dep]
        return sorted(gone)

    def reason(self, task_pk: int) -> str:
        w = self.waiting.get(task_pk)
        if w is None:
            return ""
        if w.blocked:
            return f"blocked: {w.blocked}"
        return f"waiting for {w.pending} dependenc{'y' if w.pending == 1 else 'ies'}"
