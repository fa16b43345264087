"""The job-scheduler's side of the watch API: committed domain events into the change log.

The engine hands every plan's events here once the plan's rows are durable, in the order
the plans were decided (services/job_scheduler/engine.py). Task and job events go into the
account's history as they are (one entry each; a batch of added tasks is one entry of as
many changes), keyed by the job's lower-cased id; WatchJob streams read them from there
(services/job_scheduler/watching.py). Node events only mark their pools for the
pool-manager, which owns the node watch. Nothing is converted here: with nobody watching, a
change costs an append.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from services.common.changes import ChangeLog
from services.common.watch import Watchers
from services.job_scheduler.core.plan import (
    Event,
    JobAdded,
    JobRemoved,
    JobUpdated,
    NodeChanged,
    TaskChanged,
    TaskRemoved,
    TasksAdded,
)
from services.job_scheduler.model import TaskState
from services.job_scheduler.sessions import NodeKey

TASK_EVENTS = (TaskChanged, TasksAdded, TaskRemoved)


class JobFeed:
    def __init__(self, log: ChangeLog, watchers: Watchers) -> None:
        self.log = log
        self.watchers = watchers
        self.sessions = SessionFollowers()

    def begin(self, epoch: int) -> None:
        """Start this process's epoch: revisions from before it are compacted for good."""
        self.log = self.watchers.log = ChangeLog(epoch, self.log.history)

    def record(self, events: Iterable[Event]) -> None:
        accounts: set[str] = set()
        append = self.log.append
        for e in events:
            t = type(e)
            if t is TaskChanged or t is TaskRemoved:
                append(e.account, e.job_id.lower(), e)  # type: ignore[union-attr]
                accounts.add(e.account)  # type: ignore[union-attr]
            elif t is JobUpdated or t is JobAdded or t is JobRemoved:
                job = e.job  # type: ignore[union-attr]
                append(job.account, job.id.lower(), e)
                accounts.add(job.account)
            elif t is TasksAdded:
                job = e.job  # type: ignore[union-attr]
                append(job.account, job.id.lower(), e, len(e.pks))  # type: ignore[union-attr]
                accounts.add(job.account)
            elif t is NodeChanged:
                self.sessions.changed(e.node)  # type: ignore[union-attr]
        if accounts:
            self.watchers.notify(accounts)


def selector(states: set[TaskState] | None, job_only: bool) -> Callable[[object], bool]:
    """Which recorded changes a WatchJob request wants: the job's own always; a task's when
    its state after the change is one of `states`; a task's deletion always (a client that
    waits for a task must hear that it is gone, whatever state it was in)."""
    if job_only:
        return lambda e: type(e) not in TASK_EVENTS
    if states is None:
        return lambda e: True

    def select(e: object) -> bool:
        t = type(e)
        if t is TaskChanged:
            return e.state in states  # type: ignore[attr-defined]
        if t is TasksAdded:
            return TaskState.ACTIVE in states
        return True

    return select


class SessionFollowers:
    """The pool-manager's WatchNodeSessions streams: each is told which pools' node
    sessions changed. A stream that is not reading keeps a set of pools, not a backlog."""

    def __init__(self) -> None:
        self._followers: list[tuple[set[tuple[str, str]], asyncio.Event]] = []
        self._closed = False

    def changed(self, node: NodeKey) -> None:
        for pools, wake in self._followers:
            pools.add((node[0], node[1]))
            wake.set()

    def close(self) -> None:
        self._closed = True
        for _, wake in self._followers:
            wake.set()

    async def stream(self) -> AsyncIterator[list[tuple[str, str]] | None]:
        """None first (everything may have changed before the stream began), then the
        (account, lower-cased pool id) pairs changed since the last answer."""
        pools: set[tuple[str, str]] = set()
        wake = asyncio.Event()
        self._followers.append((pools, wake))
        try:
            yield None
            while not self._closed:
                await wake.wait()
                wake.clear()
                if pools:
                    batch = sorted(pools)
                    pools.clear()
                    yield batch
        finally:
            self._followers = [f for f in self._followers if f[0] is not pools]
