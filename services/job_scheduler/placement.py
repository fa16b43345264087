"""Which ready task goes to which node slot, pure.

Ready tasks wait in per-pool queues: one FIFO per job, jobs served by priority (higher first),
then age. Nodes are filled `spread` style, Azure Batch's default: each task goes to the node
with the most free slots, so load evens out across the pool.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

from services.job_scheduler.sessions import Session


@dataclass
class JobQueue:
    job_pk: int
    priority: int
    tasks: deque[int] = field(default_factory=deque)
    """task_pk of ACTIVE tasks, oldest first."""


@dataclass
class PoolQueue:
    """The ready tasks of one pool's jobs."""

    jobs: dict[int, JobQueue] = field(default_factory=dict)

    def push(self, job_pk: int, priority: int, task_pk: int, *, front: bool = False) -> None:
        q = self.jobs.get(job_pk)
        if q is None:
            q = self.jobs[job_pk] = JobQueue(job_pk, priority)
        if front:
            q.tasks.appendleft(task_pk)
        else:
            q.tasks.append(task_pk)

    def push_many(self, job_pk: int, priority: int, task_pks: list[int]) -> None:
        q = self.jobs.get(job_pk)
        if q is None:
            q = self.jobs[job_pk] = JobQueue(job_pk, priority)
        q.tasks.extend(task_pks)

    def drop_job(self, job_pk: int) -> list[int]:
        q = self.jobs.pop(job_pk, None)
        return list(q.tasks) if q else []

    def remove(self, job_pk: int, task_pk: int) -> bool:
        q = self.jobs.get(job_pk)
        if q is None:
            return False
        try:
            q.tasks.remove(task_pk)
        except ValueError:
            return False
        return True

    def peek(self, limit: int) -> list[int]:
        """Up to `limit` task keys in the order `plan` would take them, without taking them."""
        out: list[int] = []
        for q in self.ordered():
            for pk in q.tasks:
                if len(out) >= limit:
                    return out
                out.append(pk)
        return out

    def __len__(self) -> int:
        return sum(len(q.tasks) for q in self.jobs.values())

    def ordered(self) -> list[JobQueue]:
        return sorted(
            (q for q in self.jobs.values() if q.tasks), key=lambda q: (-q.priority, q.job_pk)
        )


def plan(queue: PoolQueue, sessions: list[Session], limit: int) -> list[tuple[int, int, Session]]:
    """Take up to `limit` ready tasks off `queue` and pick a node for each.

    Returns (job_pk, task_pk, session) triples; the sessions' used slots are updated so the
    caller's view stays consistent with the plan.
    """
    heap = [(-s.free_slots, i, s) for i, s in enumerate(sessions) if s.schedulable and s.free_slots > 0]
    heapq.heapify(heap)
    out: list[tuple[int, int, Session]] = []
    for jq in queue.ordered():
        while jq.tasks and heap and len(out) < limit:
            neg_free, i, s = heapq.heappop(heap)
            out.append((jq.job_pk, jq.tasks.popleft(), s))
            s.used_slots += 1
            if neg_free + 1 < 0:
                heapq.heappush(heap, (neg_free + 1, i, s))
        if not heap or len(out) >= limit:
            break
    for q in [q for q in queue.jobs.values() if not q.tasks]:
        del queue.jobs[q.job_pk]
    return out
