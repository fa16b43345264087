"""Attempts: which ready task goes to which node slot (dispatch), and what an attempt's end
does to its task, its dependents and its job."""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from services.job_scheduler.core.failures import NOT_DELIVERED
from services.job_scheduler.core.plan import (
    Assign,
    AssignTask,
    NodeKey,
    Plan,
    TaskChanged,
    TaskInfo,
)
from services.job_scheduler.core.state import CoreState
from services.job_scheduler.model import (
    Attempt,
    CancelIntent,
    Job,
    Pending,
    TaskState,
)
from services.job_scheduler.placement import PoolQueue, plan
from services.job_scheduler.sessions import NodeSession

log = structlog.get_logger()

DISPATCH_BATCH = 5000
LOOKAHEAD_MAX = 1024
"""Most tasks of one pool whose rows are read ahead: the cost of looking is per round."""


class AttemptEvents(CoreState):
    # -- dispatch ---------------------------------------------------------------------------

    def _pool_sessions(self) -> dict[tuple[str, str], list[NodeSession]]:
        by_pool: dict[tuple[str, str], list[NodeSession]] = {}
        for s in self.sessions.values():
            if s.schedulable and s.free_slots > 0:
                by_pool.setdefault((s.key[0], s.key[1]), []).append(s)
        return by_pool

    def _room(self, queue: PoolQueue) -> dict[int, int] | None:
        """How many more tasks each capped job of a pool may start (max_parallel_tasks)."""
        room = {pk: max(0, j.max_parallel - j.counts.running) for pk in queue.jobs
                if (j := self.jobs[pk]).max_parallel}
        return room or None

    def candidates(self) -> list[int]:
        """The tasks the next dispatch round would place, in order, so their rows can be read
        first. Changes nothing."""
        out: list[int] = []
        for pool_key, sessions in self._pool_sessions().items():
            queue = self.queues.get(pool_key)
            if queue and queue.jobs:
                free = sum(s.free_slots for s in sessions)
                out.extend(queue.peek(min(free, DISPATCH_BATCH - len(out)), self._room(queue),
                                      max(s.free_slots for s in sessions)))
        return out

    def lookahead(self) -> list[int]:
        """The tasks next in line in each pool, about two rounds of its slots deep (at most
        LOOKAHEAD_MAX), whether
        or not a slot is free now: the engine reads their rows ahead, so a slot that frees
        up can be given its next task at once, in the plan that freed it. Changes nothing."""
        slots: dict[tuple[str, str], int] = {}
        for s in self.sessions.values():
            if s.schedulable:
                key = (s.key[0], s.key[1])
                slots[key] = slots.get(key, 0) + s.total_slots
        out: list[int] = []
        for pool_key, total in slots.items():
            queue = self.queues.get(pool_key)
            if queue and queue.jobs:
                out.extend(queue.peek(min(2 * total, LOOKAHEAD_MAX)))
        return out

    def dispatch(
        self, info: Mapping[int, TaskInfo], now: float, node: NodeKey | None = None
    ) -> Plan:
        """Place ready tasks whose rows were read (`info`) on free slots — of one `node`
        only, when given (the slots its results just freed: a round over every node of a
        thousand-node pool per agent message would cost more than it saves)."""
        self._begin()
        placed = 0
        if node is None:
            pools = self._pool_sessions()
        else:
            s = self.sessions.get(node)
            pools = ({(node[0], node[1]): [s]}
                     if s is not None and s.schedulable and s.free_slots > 0 else {})
        for pool_key, sessions in pools.items():
            queue = self.queues.get(pool_key)
            if not queue or not queue.jobs:
                continue
            picks = plan(queue, sessions, DISPATCH_BATCH - placed, self._room(queue), info)
            late = [p for p in picks if p[1] not in info]  # added during the read
            for job_pk, task_pk, s, slots in reversed(late):  # back in front, in their order
                s.used_slots -= slots
                p = self.pending.get(task_pk)
                queue.push(job_pk, self.jobs[job_pk].priority, task_pk, front=True,
                           task_priority=p.priority if p else 0)
            if late:
                self._kick()
            for job_pk, task_pk, s, slots in picks:
                if task_pk in info:
                    self._assign(self.jobs[job_pk], task_pk, s, info[task_pk], now, slots)
                    placed += 1
        if placed >= DISPATCH_BATCH:
            self._kick()
        return self._finish(now)

    def _assign(
        self, job: Job, task_pk: int, s: NodeSession, info: TaskInfo, now: float, slots: int
    ) -> None:
        p = self.pending.pop(task_pk, None) or Pending()
        a = Attempt(
            attempt_id=self.new_id(), task_pk=task_pk, job_pk=job.pk, number=p.attempts + 1,
            node_key=s.key, node_name=s.name, slots=slots, assign_time=now,
            retry_count=p.retry_count, requeue_count=p.requeue_count,
            max_retries=job.default_retries if info.max_retries is None else info.max_retries,
            task_id=info.id, files=info.files, exits=info.exits, priority=info.priority,
            retries_of_job=info.max_retries is None, max_wall_clock=info.max_wall_clock,
            retention=info.retention,
        )
        self.attempts[a.attempt_id] = a
        s.attempts.add(a.attempt_id)  # its slot was taken by plan()
        t = self.tally(job.account, job.pool_id)
        t.attempts += 1
        t.dispatch_wait.observe(now - info.ready_time)
        row = AssignTask(task_pk, a.attempt_id, a.number, s.name, now)
        self._row(row)
        job.counts.move(TaskState.ACTIVE, TaskState.PREPARING)
        self._touch(job)
        if job.prep or job.release:
            job.nodes.add(s.key)
        self._plan.send(s.key, s.stream_id, Assign(a, info, job))
        self._plan.events.append(TaskChanged(job.account, job.id, task_pk, TaskState.PREPARING,
                                             task_id=info.id, row=row))

    def undelivered(self, attempt_ids: list[str], now: float) -> Plan:
        """Assignments that could not be sent (the node's stream ended or was replaced while
        they were committed): back to the queue, charged as neither a retry nor a requeue,
        since they never reached a node. One cancelled before it was sent ends as its cancel
        says (a terminated task completes; a returned or requeued one waits again)."""
        self._begin()
        for aid in attempt_ids:
            a = self.attempts.get(aid)
            if a is None:
                continue  # resolved meanwhile
            if a.cancel == CancelIntent.NONE:
                a.cancel, a.cancel_failure = CancelIntent.RETURN, NOT_DELIVERED
            elif a.cancel == CancelIntent.REQUEUE:
                a.cancel = CancelIntent.RETURN  # stopped before it ever ran: not a requeue
            self._resolve(a, None, now)
        return self._finish(now)
