"""WatchJob: a job's and its tasks' changes, streamed from the change log (feed.py).

A stream reads the account's history after its revision, takes the changes of its job that
its filter selects, and turns them into JobEvents: a task's change carries the fields its
row wrote (convert.task_change), a batch of added tasks one ADDED event per task. The one
read it may need is the ids of tasks the core does not hold (the queued tasks of a job that
ended); a task deleted since has no id left and its change is skipped — its deletion, or its
job's, follows in the same stream.

A summary stream (`job_summary`) reads the same history, at most once per `summary_every`
seconds, and keeps of what it read only what a progress bar needs (`summarize`): a busy
job's dozens of changes in that time cost one conversion and one message, not dozens, in
the scheduler and in everything that relays the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import NamedTuple

from services.common.changes import Piece
from services.job_scheduler import convert
from services.job_scheduler.core import Core
from services.job_scheduler.core.plan import (
    JobAdded,
    JobRemoved,
    JobUpdated,
    TaskChanged,
    TaskRemoved,
    TasksAdded,
)
from services.job_scheduler.feed import JobFeed, selector
from services.job_scheduler.model import TaskState, added_task
from services.job_scheduler.store import Store
from shoal.v1 import job_pb2, task_pb2

CONVERT_CHUNK = 100
MESSAGE_BYTES = 1 << 20
"""A message holds events up to about this size (tasks with long command lines are big):
well below the 4 MiB most gRPC clients accept by default."""
JobEvent = job_pb2.JobEvent


def summarize(pieces: list[Piece]) -> list[Piece]:
    """A job's own changes reduced to what its latest state needs: every deletion, in order,
    then the last change after the last deletion (a job added since is reported as added,
    with its state as of that last change)."""
    out: list[Piece] = []
    last: Piece | None = None
    added = False
    for p in pieces:
        if type(p.change) is JobRemoved:
            out.append(p)
            last, added = None, False
        else:
            last = p
            added = added or type(p.change) is JobAdded
    if last is not None:
        if added and type(last.change) is JobUpdated:
            last = last._replace(change=AddedAs(last.change))
        out.append(last)
    return out


class AddedAs(NamedTuple):
    """A job added since the last summary, as its latest change left it."""

    updated: JobUpdated


class JobWatch:
    def __init__(self, core: Core, store: Store, feed: JobFeed,
                 summary_every: float = 0.5) -> None:
        self._core = core
        self._store = store
        self._feed = feed
        self._summary_every = summary_every

    async def stream(
        self, account: str, job_id: str, from_revision: int, states: set[TaskState] | None,
        job_only: bool, summary: bool = False,
    ) -> AsyncIterator[job_pb2.WatchJobResponse]:
        """Every selected change in order; with `summary`, the job's latest state at most
        once per `summary_every` seconds (the pause after a message lets the changes of that
        time gather in the history, to be read as one)."""
        log = self._feed.log
        if from_revision == 0:
            job = self._core.job(account, job_id)
            after = log.revision(account)
            current = convert.job(job)
            current.revision = after
            yield job_pb2.WatchJobResponse(
                events=[JobEvent(revision=after, type=JobEvent.CURRENT, job=current)],
                revision=after)
            if summary:
                await asyncio.sleep(self._summary_every)
        else:
            log.check(account, from_revision)
            after = from_revision
        async for pieces, upto in self._feed.watchers.follow(
                account, job_id.lower(), after, selector(states, job_only or summary)):
            if summary:
                yield job_pb2.WatchJobResponse(events=await self._events(summarize(pieces)),
                                               revision=upto)
                if pieces:
                    await asyncio.sleep(self._summary_every)
                continue
            events = await self._events(pieces)
            # Split where the size says: each part's revision is its last event's (all
            # selected changes up to it are in it or before), the last part's `upto`.
            start, size = 0, 0
            for i, e in enumerate(events):
                size += e.ByteSize()
                if size > MESSAGE_BYTES and i > start:
                    yield job_pb2.WatchJobResponse(events=events[start:i],
                                                   revision=events[i - 1].revision)
                    start, size = i, e.ByteSize()
            yield job_pb2.WatchJobResponse(events=events[start:], revision=upto)

    async def _events(self, pieces: list[Piece]) -> list[job_pb2.JobEvent]:
        unnamed = [p.change.task_pk for p in pieces
                   if type(p.change) is TaskChanged and not p.change.task_id]
        ids = await self._store.task_ids(unnamed) if unnamed else {}
        out: list[job_pb2.JobEvent] = []
        for i, p in enumerate(pieces):
            if i and i % CONVERT_CHUNK == 0:
                await asyncio.sleep(0)  # a big batch must not hold up the scheduler's calls
            e = p.change
            rev = p.first + p.start
            if isinstance(e, TaskChanged):
                task_id = e.task_id or ids.get(e.task_pk)
                if task_id is None:
                    continue  # deleted since; its deletion follows
                task, paths = convert.task_change(e, task_id)
                task.revision = rev
                ev = JobEvent(revision=rev, type=JobEvent.MODIFIED, task=task)
                ev.update_mask.paths.extend(paths)
                out.append(ev)
            elif isinstance(e, TasksAdded):
                for k in range(p.start, p.stop):
                    if k % CONVERT_CHUNK == 0:
                        await asyncio.sleep(0)
                    task = convert.task(added_task(e.job.id, e.specs[k], e.pks[k], e.time))
                    # Read-time fields, as state_reason: later events do not carry them.
                    task.ClearField("etag")
                    task.ClearField("update_time")
                    task.revision = p.first + k
                    out.append(JobEvent(revision=task.revision, type=JobEvent.ADDED, task=task))
            elif isinstance(e, TaskRemoved):
                out.append(JobEvent(revision=rev, type=JobEvent.DELETED, task=task_pb2.Task(
                    name=f"jobs/{e.job_id}/tasks/{e.task_id}", revision=rev)))
            elif isinstance(e, JobUpdated):
                job = convert.job_as_written(e.job, e.row)
                job.revision = rev
                out.append(JobEvent(revision=rev, type=JobEvent.MODIFIED, job=job))
            elif isinstance(e, AddedAs):
                job = convert.job_as_written(e.updated.job, e.updated.row)
                job.revision = rev
                out.append(JobEvent(revision=rev, type=JobEvent.ADDED, job=job))
            elif isinstance(e, JobAdded):
                job = convert.job_as_created(e.job)
                job.revision = rev
                out.append(JobEvent(revision=rev, type=JobEvent.ADDED, job=job))
            elif isinstance(e, JobRemoved):
                out.append(JobEvent(revision=rev, type=JobEvent.DELETED, job=job_pb2.Job(
                    name=f"jobs/{e.job.id}", revision=rev)))
        return out
