"""Which ready task goes to which node slot, pure.

Ready tasks wait in per-pool queues: one queue per job, jobs served by priority (higher first),
then age. Inside a job, tasks go by their own priority (higher first — beyond Azure Batch),
then in the order they were added; retries and requeues go first among equals. Nodes are
filled `spread` (each task to the node with the most free slots, Azure Batch's default) or
`pack` (fill one node before the next). A task takes `required_slots` slots on one node; a
job runs at most `max_parallel_tasks` at once.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Container
from dataclasses import dataclass, field

from services.job_scheduler.sessions import NodeSession

_seq = itertools.count()


@dataclass
class JobQueue:
    job_pk: int
    priority: int
    tasks: deque[int] = field(default_factory=deque)
    """task_pk of ACTIVE tasks of priority 0, oldest first (the common case: no heap)."""
    ranked: list[tuple[int, int, int]] = field(default_factory=list)
    """Heap of (-priority, order, task_pk) for tasks with a priority of their own."""

    def __len__(self) -> int:
        return len(self.tasks) + len(self.ranked)

    def __bool__(self) -> bool:
        return bool(self.tasks) or bool(self.ranked)

    def add(self, task_pk: int, priority: int = 0, *, front: bool = False) -> None:
        if priority:
            order = -next(_seq) if front else next(_seq)
            heapq.heappush(self.ranked, (-priority, order, task_pk))
        elif front:
            self.tasks.appendleft(task_pk)
        else:
            self.tasks.append(task_pk)

    def order(self) -> list[int]:
        """Every queued task in the order they are taken."""
        ranked = sorted(self.ranked)
        high = [pk for p, _, pk in ranked if p < 0]
        low = [pk for p, _, pk in ranked if p > 0]
        return [*high, *self.tasks, *low]

    def discard(self, pks: set[int]) -> None:
        """Drop many tasks at once: one pass, not one per task."""
        self.tasks = deque(pk for pk in self.tasks if pk not in pks)
        self.ranked = [e for e in self.ranked if e[2] not in pks]
        heapq.heapify(self.ranked)

    def take(self, pk: int) -> None:
        try:
            self.tasks.remove(pk)
        except ValueError:
            self.ranked = [e for e in self.ranked if e[2] != pk]
            heapq.heapify(self.ranked)

    def contains(self, pk: int) -> bool:
        return pk in self.tasks or any(e[2] == pk for e in self.ranked)


@dataclass
class PoolQueue:
    """The ready tasks of one pool's jobs."""

    jobs: dict[int, JobQueue] = field(default_factory=dict)
    slots: dict[int, int] = field(default_factory=dict)
    """task_pk -> required slots, for tasks that need more than one."""
    pack: bool = False
    """Node fill type PACK (else SPREAD)."""

    def _job(self, job_pk: int, priority: int) -> JobQueue:
        q = self.jobs.get(job_pk)
        if q is None:
            q = self.jobs[job_pk] = JobQueue(job_pk, priority)
        return q

    def push(self, job_pk: int, priority: int, task_pk: int, *, front: bool = False,
             task_priority: int = 0) -> None:
        self._job(job_pk, priority).add(task_pk, task_priority, front=front)

    def push_many(self, job_pk: int, priority: int, task_pks: list[int]) -> None:
        self._job(job_pk, priority).tasks.extend(task_pks)

    def reprioritize(self, job_pk: int, priority: int) -> None:
        """The job's priority changed: its place among the pool's jobs follows at once."""
        q = self.jobs.get(job_pk)
        if q is not None:
            q.priority = priority

    def drop_job(self, job_pk: int) -> list[int]:
        q = self.jobs.pop(job_pk, None)
        if q is None:
            return []
        for pk in q.order():
            self.slots.pop(pk, None)
        return q.order()

    def contains(self, job_pk: int, task_pk: int) -> bool:
        q = self.jobs.get(job_pk)
        return q is not None and q.contains(task_pk)

    def remove(self, job_pk: int, task_pk: int) -> bool:
        q = self.jobs.get(job_pk)
        if q is None or not q.contains(task_pk):
            return False
        q.take(task_pk)
        self.slots.pop(task_pk, None)
        return True

    def peek(
        self, limit: int, room: dict[int, int] | None = None, max_free: int | None = None
    ) -> list[int]:
        """Up to `limit` task keys in the order `plan` would take them, without taking them:
        jobs with no `room` left are skipped, and tasks needing more than `max_free` slots
        (the most any node has free) too, so what is read is what can be placed."""
        out: list[int] = []
        for q in self.ordered():
            cap = room.get(q.job_pk) if room else None
            n = 0
            for pk in q.order() if q.ranked else q.tasks:
                if len(out) >= limit or (cap is not None and n >= cap):
                    break
                if max_free is not None and self.slots.get(pk, 1) > max_free:
                    continue
                out.append(pk)
                n += 1
            if len(out) >= limit:
                break
        return out

    def __len__(self) -> int:
        return sum(len(q) for q in self.jobs.values())

    def ordered(self) -> list[JobQueue]:
        return sorted((q for q in self.jobs.values() if q), key=lambda q: (-q.priority, q.job_pk))


def plan(
    queue: PoolQueue, sessions: list[NodeSession], limit: int,
    room: dict[int, int] | None = None, only: Container[int] | None = None,
) -> list[tuple[int, int, NodeSession, int]]:
    """Take up to `limit` ready tasks off `queue` and pick a node for each.

    `room` caps how many more tasks a job may start (max_parallel_tasks), job_pk -> count;
    `only` limits the choice to these tasks (those whose rows were read). Returns
    (job_pk, task_pk, session, slots) tuples; the sessions' used slots are updated so the
    caller's view stays consistent with the plan. A task that fits no node now stays queued,
    in its place, and smaller tasks behind it may go first.
    """
    nodes = [s for s in sessions if s.schedulable and s.free_slots > 0]
    if queue.pack:
        nodes.sort(key=lambda s: s.node_id)
    heap = [(-s.free_slots, i, s) for i, s in enumerate(nodes)]
    heapq.heapify(heap)
    out: list[tuple[int, int, NodeSession, int]] = []
    for jq in queue.ordered():
        cap = room.get(jq.job_pk) if room else None
        if cap is not None and cap <= 0:
            continue
        if not jq.ranked and not queue.slots and not queue.pack:
            _spread_simple(jq, heap, out, limit, cap, only)
        else:
            _place_general(queue, jq, nodes, heap, out, limit, cap, only)
        if not heap or len(out) >= limit:
            break
    for q in [q for q in queue.jobs.values() if not q]:
        del queue.jobs[q.job_pk]
    return out


def _spread_simple(
    jq: JobQueue, heap: list[tuple[int, int, NodeSession]], out: list[tuple[int, int, NodeSession, int]],
    limit: int, cap: int | None, only: Container[int] | None,
) -> None:
    """One slot per task, spread: the hot path of a plain job, one heap step per task."""
    taken = 0
    while jq.tasks and heap and len(out) < limit and (cap is None or taken < cap):
        if only is not None and jq.tasks[0] not in only:
            break  # pushed to the front while its rows were read: next round
        neg_free, i, s = heapq.heappop(heap)
        out.append((jq.job_pk, jq.tasks.popleft(), s, 1))
        s.used_slots += 1
        taken += 1
        if neg_free + 1 < 0:
            heapq.heappush(heap, (neg_free + 1, i, s))


def _place_general(
    queue: PoolQueue, jq: JobQueue, nodes: list[NodeSession], heap: list[tuple[int, int, NodeSession]],
    out: list[tuple[int, int, NodeSession, int]], limit: int, cap: int | None,
    only: Container[int] | None,
) -> None:
    taken: set[int] = set()
    most_free = max((s.free_slots for s in nodes), default=0)
    for pk in jq.order():
        if len(out) >= limit or (cap is not None and len(taken) >= cap) or most_free <= 0:
            break
        need = queue.slots.get(pk, 1)
        if need > most_free or (only is not None and pk not in only):
            continue  # fits no node now, or not read this round: it keeps its place
        s = _pick(nodes, need, queue.pack)
        if s is None:
            continue
        s.used_slots += need
        out.append((jq.job_pk, pk, s, need))
        taken.add(pk)
        queue.slots.pop(pk, None)
        most_free = max(x.free_slots for x in nodes)
    if taken:
        jq.discard(taken)
    # The heap of the simple path must reflect what was used here.
    heap[:] = [(-s.free_slots, i, s) for i, s in enumerate(nodes) if s.free_slots > 0]
    heapq.heapify(heap)


def _pick(nodes: list[NodeSession], need: int, pack: bool) -> NodeSession | None:
    if pack:
        # The first node (by id) with room: fill it before the next.
        return next((s for s in nodes if s.free_slots >= need), None)
    best = max(nodes, key=lambda s: s.free_slots, default=None)
    return best if best is not None and best.free_slots >= need else None
