"""The job-scheduler's engine: everything around the pure core that awaits.

The engine reads what an event needs (rows, the pool from the pool-manager), hands the event
to the core, and applies the plan the core returns, in order: the plan's rows are queued and
group-committed, and only then are its messages sent and its reply returned — so nothing a
client or an agent was told can be lost by a crash. The core is synchronous: a decision and
the queueing of its rows happen with no await between them, by construction.

The engine owns the node streams (one Outbound each), the dispatch and liveness loops, the
relays to the storage-stager (staging grants, stored logs) and file reads from nodes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol

import structlog

from services.common.changes import ChangeLog
from services.common.errors import Code, ShoalError, failed_precondition, invalid, not_found
from services.common.filters import Filter
from services.common.stager_client import StagingClient, StagingUnavailable
from services.common.timeutil import Clock, to_duration
from services.common.watch import Watchers
from services.job_scheduler import convert
from services.job_scheduler.core import Core, Explanation, Plan, Snapshot, Welcome
from services.job_scheduler.core.failures import NOT_UPLOADED
from services.job_scheduler.core.plan import Assign, Event, JobEnded, NodeKey, TaskInfo
from services.job_scheduler.feed import JobFeed
from services.job_scheduler.model import (
    EndedAttempt,
    Job,
    JobChanges,
    JobState,
    TaskChanges,
    TaskDefinition,
    TaskRecord,
    TaskState,
    added_task,
)
from services.job_scheduler.node_reads import NodeReads
from services.job_scheduler.pool_peer import PoolInfo
from services.job_scheduler.sessions import NodeSession, fence_after
from services.job_scheduler.staging_relay import StagingRelay
from services.job_scheduler.store import Store
from services.job_scheduler.task_logs import (
    FOLLOW_POLL,
    MAX_TAIL_LINES,
    TAIL_WINDOW,
    TAIL_WINDOW_MAX,
    LastLines,
)
from services.job_scheduler.watching import JobWatch
from shoal.agent.v1 import agent_pb2
from shoal.cluster_config import Limits, SchedulerTiming, WatchConfig
from shoal.internal.v1 import staging_pb2
from shoal.v1 import job_pb2, pool_pb2

log = structlog.get_logger()

READ_AHEAD_MAX = 50_000
UPDATE_READS = 5
"""Reads of a task's row an update makes while the task keeps changing state, before it gives
up (TASK_CHANGING: the caller retries)."""
COALESCE_MAX = 1000
"""Adds of at most this many plain tasks are inserted together with others waiting."""
Round = list[tuple[list[TaskDefinition], "asyncio.Future[list[int]]"]]
"""Adds of one job inserted together: each add's tasks and the future its caller awaits."""


NODE_COPY_GONE = frozenset({"TASK_FILE_NOT_FOUND", "NODE_NOT_CONNECTED", "NODE_TIMEOUT"})
"""Why a read from a node failed when an ended attempt's stored copy may be read instead."""

class PoolLookup(Protocol):
    async def __call__(self, account: str, pool_id: str) -> PoolInfo:
        """The pool; raises ShoalError(NOT_FOUND) when the account has none of that id."""


class Outbound:
    """Messages waiting to go down one agent stream. The servicer merges what has piled up
    into one SchedulerMessage, so a burst of assignments or acks costs one write.

    It also echoes the node's heartbeats (SchedulerMessage.heartbeat_seen), the agent's proof
    that it is still heard: on every message, and alone once the stream has been quiet for
    `echo_every` seconds when a heartbeat comes in."""

    def __init__(self, stream_id: int, echo_every: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream_id = stream_id
        self.queue: asyncio.Queue[agent_pb2.SchedulerMessage | None] = asyncio.Queue()
        self.seen = 0
        """The latest heartbeat sequence of this stream taken in."""
        self._echo_every = echo_every
        self._clock = clock
        self._written = clock()

    def send(self, msg: agent_pb2.SchedulerMessage) -> None:
        self.queue.put_nowait(msg)

    def heard(self, sequence: int) -> None:
        """The node's heartbeat `sequence` was taken in (its session's last_seen moved)."""
        if sequence <= self.seen:
            return
        self.seen = sequence
        if self.queue.empty() and self._clock() - self._written >= self._echo_every:
            self.send(agent_pb2.SchedulerMessage())

    def stamp(self, msg: agent_pb2.SchedulerMessage) -> agent_pb2.SchedulerMessage:
        """`msg`, about to be written, with the echo."""
        msg.heartbeat_seen = self.seen
        self._written = self._clock()
        return msg

    def close(self) -> None:
        self.queue.put_nowait(None)


class Engine:
    def __init__(
        self,
        store: Store,
        timing: SchedulerTiming,
        get_pool: PoolLookup,
        clock: Clock,
        storage: StagingClient | None = None,
        on_events: Callable[[list[Event]], None] | None = None,
        limits: Limits | None = None,
        watch: WatchConfig | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        """The stager, for staging grants and stored logs; None where storage is not set up."""
        self.timing = timing
        self._get_pool = get_pool
        self.clock = clock
        self.core = Core(timing, started_at=clock(), rules_of=convert.rules_of, limits=limits)
        self._on_events = on_events
        """Where domain events go once their plan is committed, besides the feed."""
        watch = watch or WatchConfig()
        log = ChangeLog(0, watch.history)
        self.feed = JobFeed(log, Watchers(log, watch.progress_interval))
        """The watch API's change log (its epoch is set in load())."""
        self._watch_job = JobWatch(self.core, store, self.feed, watch.summary_interval)
        self._unpublished: deque[tuple[int, list[Event]]] = deque()
        """Events of plans queued and not yet committed, with their tickets, in order."""
        self._tickets = 0
        self._outbound: dict[NodeKey, Outbound] = {}
        self._kick = asyncio.Event()
        self._node_reads = NodeReads()
        self._relay = StagingRelay(self.core, storage, self._ended_attempts)
        self._add_locks: dict[int, asyncio.Lock] = {}
        self._waiting_adds: dict[int, Round] = {}
        """Small adds of plain tasks waiting to be inserted together, by job."""
        self._unwritten_jobs: set[int] = set()
        """Jobs whose own row is not durable yet: an add to one commits it first."""
        self._ahead: dict[int, TaskInfo] = {}
        """Rows of queued tasks read ahead of the slots that will take them. Task data does
        not change once added but for its constraints: a task updated is dropped from here
        (and from a read in flight, through `_updated`), so its row is read again."""
        self._updated: set[int] = set()
        """Tasks updated while the dispatch round's read-ahead was in flight."""
        self._loops: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()

    # -- start / stop -----------------------------------------------------------------------

    async def load(self) -> None:
        self.feed.begin(await self.store.start_epoch())
        counts = await self.store.count_tasks()
        jobs = await self.store.load_jobs()
        for job in jobs:
            job.counts = counts.get(job.pk, job.counts)
        active = await self.store.active_tasks()
        by_pk = {j.pk: j for j in jobs}
        wanted: dict[int, set[str]] = {}
        for r in active:
            if r.deps and r.job_pk in by_pk:
                wanted.setdefault(r.job_pk, set()).update(r.deps)
        dep_rows = {pk: await self.store.dep_rows(pk, sorted(ids)) for pk, ids in wanted.items()}
        with_commands = [j.pk for j in jobs
                         if (j.prep or j.release) and j.state != JobState.COMPLETED]
        snap = Snapshot(jobs, active, await self.store.live_attempts(), dep_rows,
                        await self.store.job_nodes(with_commands))
        await self._apply(self.core.load(snap, self.clock()))
        c = self.core
        log.info("scheduler state loaded", jobs=len(c.jobs), live_attempts=len(c.attempts),
                 ready=sum(len(q) for q in c.queues.values()))

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="dispatch"),
            asyncio.create_task(self._liveness_loop(), name="liveness"),
        ]
        self._kick.set()

    async def stop(self) -> None:
        for t in (*self._loops, *self._background):
            t.cancel()
        await asyncio.gather(*self._loops, *self._background, return_exceptions=True)
        for out in self._outbound.values():
            out.close()
        self.feed.watchers.close()
        self.feed.sessions.close()
        await self.store.commit()

    # -- applying plans ---------------------------------------------------------------------

    async def _apply(self, plan: Plan) -> Any:
        """Queue the plan's rows, commit, then send its messages and return its reply (or
        raise the error it carries, once its rows are durable)."""
        return await self._deliver(plan, self._queue(plan))

    def _queue(self, plan: Plan) -> int:
        """The part of applying a plan that must follow its decision at once: its rows join
        the next transaction, in the order plans were decided. Returns the ticket of its
        events (0 for none), which `_deliver` publishes once they are durable."""
        ticket = 0
        if plan.events:
            self._tickets += 1
            ticket = self._tickets
            self._unpublished.append((ticket, plan.events))
        if plan.rows:
            self.store.write(plan.rows)
        for key in plan.close_streams:
            out = self._outbound.pop(key, None)
            if out is not None:
                out.close()
        if plan.dispatch:
            self._kick.set()
        return ticket

    async def _deliver(self, plan: Plan, ticket: int) -> Any:
        """The rest, once the plan's rows (and all queued before them) are durable."""
        if plan.rows or plan.sends or ticket:
            # Sends wait for every row queued before them too, so a node never hears of a
            # cancel before the assignment it cancels; events too, so no watcher hears of a
            # change a crash could undo.
            await self.store.commit()
        if ticket:
            self._publish(ticket)
        unsent: list[str] = []
        # A dispatch round assigns thousands of tasks: one message per node for all of them,
        # not one each for the stream writer to merge again.
        assignments: dict[NodeKey, tuple[Outbound, list[agent_pb2.Assignment]]] = {}
        for send in plan.sends:
            out = self._outbound.get(send.node)
            msg = send.message
            if isinstance(msg, Assign):
                a = msg.attempt
                if (out is None or out.stream_id != send.stream_id
                        or self.core.attempts.get(a.attempt_id) is not a or a.cancel):
                    unsent.append(a.attempt_id)  # its node went away, or it was cancelled
                    continue
                assignments.setdefault(send.node, (out, []))[1].append(
                    convert.assignment(a, msg.task, msg.job))
                continue
            if out is None or out.stream_id != send.stream_id:
                continue  # the node reconnected: its hello settled what it should know
            if isinstance(msg, JobEnded):
                self._spawn(self._relay.job_ended(msg.job, self._stream_of(send.node)))
            else:
                out.send(convert.message(msg))
        for out, batch in assignments.values():
            out.send(agent_pb2.SchedulerMessage(assignments=batch))
        if unsent:
            await self._apply(self.core.undelivered(unsent, self.clock()))
        if isinstance(plan.reply, ShoalError):
            raise plan.reply
        return plan.reply

    def _publish(self, ticket: int) -> None:
        """Hand over the events of every plan up to this ticket, in the order the plans were
        decided: the commit just awaited made all of them durable (plans that awaited the
        same commit resume in any order, and a later one publishes the earlier ones too)."""
        while self._unpublished and self._unpublished[0][0] <= ticket:
            _, events = self._unpublished.popleft()
            self.feed.record(events)
            if self._on_events is not None:
                self._on_events(events)

    async def _ended_attempts(self, attempt_ids: list[str]) -> dict[str, EndedAttempt]:
        """Ended attempts among these, as stored (those resolved a moment ago included)."""
        await self.store.commit()
        return await self.store.ended_attempts(attempt_ids)

    def _stream_of(self, key: NodeKey) -> Callable[[], Outbound | None]:
        """The node's stream as it will be when asked (it may reconnect in between)."""
        return lambda: self._outbound.get(key)

    async def commit(self) -> None:
        await self.store.commit()

    async def quiesce(self) -> None:
        """Wait for the work started in the background (staging grants, JobEnded messages
        with their release grants) to be done: what it would send has been sent."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run work that must not hold up its caller; stopped with the scheduler."""
        t = asyncio.create_task(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    def _lock(self, job: Job) -> asyncio.Lock:
        """One add or delete per job at a time, so a batch's rows and the job's counts move
        together and a delete never overtakes an add in flight."""
        return self._add_locks.setdefault(job.pk, asyncio.Lock())

    # -- jobs -------------------------------------------------------------------------------

    async def create_job(self, account: str, req: job_pb2.CreateJobRequest,
                         schedule_id: str = "") -> Job:
        self.store.check_writable()
        job_id, pool_id, priority, on_all = convert.job_fields(req)
        prep, release = convert.job_commands(req.job)
        settings = convert.job_settings(req.job)
        self.core.check_new_job(account, job_id)
        try:
            pool = await self._get_pool(account, pool_id)
        except ShoalError as e:
            if e.code == Code.NOT_FOUND:
                raise ShoalError(Code.NOT_FOUND, "POOL_NOT_FOUND",
                                 f"job.pool: pool {pool_id!r} not found", "job.pool") from None
            raise
        now = self.clock()
        j = req.job
        pk = self.store.next_job_pk
        self.store.next_job_pk += 1
        job = Job(
            pk=pk, account=account, id=job_id,
            pool_id=pool.id, priority=priority, on_all_tasks_complete=on_all,
            state=JobState.ACTIVE, create_time=now, state_time=now, update_time=now,
            display_name=j.display_name, metadata=dict(j.metadata), prep=prep, release=release,
            schedule_id=schedule_id, pack=pool.pack,
            pool_slots=pool.slots_per_node, **settings,  # type: ignore[arg-type]
        )
        # The core checks the id again: another call may have taken it during the await.
        plan = self.core.create_job(job, now)
        self._unwritten_jobs.add(pk)
        try:
            created: Job = await self._apply(plan)
        finally:
            self._unwritten_jobs.discard(pk)
        structlog.contextvars.bind_contextvars(job=job_id)
        log.info("job created", pool=job.pool_id, priority=priority)
        return created

    def get_job(self, account: str, job_id: str) -> Job:
        return self.core.job(account, job_id)

    def list_jobs(self, account: str, states: set[str] | None, after: str | None,
                  limit: int) -> list[Job]:
        return self.core.list_jobs(account, states, after, limit)

    async def update_job(
        self, account: str, job_id: str, changes: JobChanges, if_match: str
    ) -> Job:
        """The core checks the etag and applies the changes in one step; a plan that lets more
        tasks start asks for a dispatch round."""
        self.store.check_writable()
        plan = self.core.update_job(account, job_id, changes, if_match, self.clock())
        job: Job = await self._apply(plan)
        log.info("job updated", job=job.id, fields=sorted(changes.fields), etag=job.etag)
        return job

    async def terminate_job(self, account: str, job_id: str, reason: str) -> Job:
        self.store.check_writable()
        job: Job = await self._apply(self.core.terminate_job(account, job_id, reason, self.clock()))
        return job

    async def disable_job(self, account: str, job_id: str, option: int) -> Job:
        self.store.check_writable()
        job: Job = await self._apply(self.core.disable_job(account, job_id, option, self.clock()))
        return job

    async def enable_job(self, account: str, job_id: str) -> Job:
        self.store.check_writable()
        job: Job = await self._apply(self.core.enable_job(account, job_id, self.clock()))
        return job

    async def delete_job(self, account: str, job_id: str) -> None:
        self.store.check_writable()
        job = self.core.job(account, job_id)
        async with self._lock(job):
            if self.core.jobs.get(job.pk) is not job:
                return  # deleted meanwhile
            await self._apply(self.core.delete_job(job, self.clock()))
            self._add_locks.pop(job.pk, None)
        if self.storage is not None:
            # Logs are kept per incarnation (job pk), so a job created again under this id
            # keeps its own.
            try:
                await self.storage.delete_job_logs(account, job.id, job.pk)
            except StagingUnavailable as e:
                log.warning("job logs not deleted", job=job.id, error=str(e))
        log.info("job deleted", job=job.id, account=account)

    # -- watch ------------------------------------------------------------------------------

    def revision(self, account: str) -> int:
        """The account's change revision: what a List or Get answered now reflects."""
        return self.feed.log.revision(account)

    def watch_job(
        self, account: str, job_id: str, from_revision: int, states: set[str] | None,
        job_only: bool, summary: bool = False,
    ) -> AsyncIterator[job_pb2.WatchJobResponse]:
        st = {TaskState[s] for s in states} if states is not None else None
        return self._watch_job.stream(account, job_id, from_revision, st, job_only, summary)

    # -- tasks ------------------------------------------------------------------------------

    async def create_tasks(
        self, account: str, job_id: str, specs: list[TaskDefinition], *, single: bool = False
    ) -> int:
        """Add tasks; `single` is CreateTask (errors name `task…`, not `requests[i].task…`)."""
        self.store.check_writable()
        self.core.check_batch(specs, single)
        job = self.core.job(account, job_id)
        # A task of its own: once the ids are checked the add runs to its commit even if the
        # caller goes away, so the per-job lock is never released over a half-added batch.
        pks = await asyncio.shield(asyncio.create_task(self._add_tasks(job, specs, single)))
        return len(pks)

    async def create_task(self, account: str, job_id: str, spec: TaskDefinition) -> TaskRecord:
        """CreateTask: the task as created, from what was added (a read back could see an
        older snapshot or a later state)."""
        self.store.check_writable()
        now = self.clock()
        self.core.check_batch([spec], True)
        job = self.core.job(account, job_id)
        (pk,) = await asyncio.shield(asyncio.create_task(self._add_tasks(job, [spec], True)))
        return self.core.with_reason(job, added_task(job.id, spec, pk, now))

    async def _add_tasks(self, job: Job, specs: list[TaskDefinition], single: bool) -> list[int]:
        self.core.reserve_tasks(job.account, len(specs))
        try:
            return await self._add_held(job, specs, single)
        finally:
            self.core.release_tasks(job.account, len(specs))

    async def _add_held(self, job: Job, specs: list[TaskDefinition], single: bool) -> list[int]:
        if len(specs) <= COALESCE_MAX and not any(sp.extra for sp in specs):
            return await self._add_coalesced(job, specs)
        async with self._lock(job):
            core = self.core
            core.check_open(job)
            known = {}
            plain = not any(sp.extra for sp in specs)
            if not plain:
                wanted = core.dependencies_to_read(job, specs, single)
                rows = await self.store.dep_rows(job.pk, wanted) if wanted else {}
                known = core.check_dependencies(job, specs, rows, single)
            first = self.store.next_task_pk
            self.store.next_task_pk += len(specs)
            pks = list(range(first, first + len(specs)))
            if job.pk in self._unwritten_jobs:
                await self.store.commit()  # tasks must never be on disk without their job
            # One time for the rows and the plan: a watcher is sent the tasks as written.
            now = self.clock()
            taken = await self.store.insert_tasks(job.pk, zip(pks, specs, strict=True), now)
            if taken:
                raise _already_exists(job, taken)
            plan = core.tasks_added(job, specs, pks, known, now, plain=plain)
            # Counted and queued under the lock, so a delete after this add comes after it in
            # memory and on disk; the commit of the job's counts need not hold up the next add.
            ticket = self._queue(plan)
        await self._deliver(plan, ticket)
        return pks

    async def _add_coalesced(self, job: Job, specs: list[TaskDefinition]) -> list[int]:
        """Small adds of plain tasks to one job wait together for the job's lock, and the one
        that takes it inserts them all in one transaction: 20 clients adding one task at a
        time cost one insert per round, not twenty in a row."""
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        waiting = self._waiting_adds.setdefault(job.pk, [])
        waiting.append((specs, fut))
        if len(waiting) == 1:
            self._spawn(self._insert_waiting(job))
        return await fut

    async def _insert_waiting(self, job: Job) -> None:
        """Rounds of the job's waiting adds until none is left over. A round takes up to
        COALESCE_MAX tasks, so another job's add — another account's — waits for the store
        behind one round's rows, not behind every add queued here; adds that arrive while
        some are left over join them (they start no rounds of their own)."""
        while True:
            taken: Round = []
            left: Round = []
            try:
                await self._insert_round(job, taken, left)
            except BaseException as e:
                # Nobody may wait forever for a round that failed (or was stopped).
                owned = [*taken, *left]
                if not taken:  # failed before taking them: the waiting adds are still ours
                    owned = self._waiting_adds.pop(job.pk, [])
                elif left and self._waiting_adds.get(job.pk) is left:
                    del self._waiting_adds[job.pk]
                for _, fut in owned:
                    if fut.done():
                        continue
                    if isinstance(e, Exception):
                        fut.set_exception(e)
                    else:
                        fut.cancel()
                raise
            if not left:
                return

    def _take_round(self, job: Job, taken: Round, left: Round) -> None:
        """Under the job's lock: move this round's adds into `taken`; those left over stay
        waiting, as the list `left`."""
        waiting = self._waiting_adds.pop(job.pk, [])  # later adds start the next round
        size = count = 0
        for specs, _ in waiting:
            if count and size + len(specs) > COALESCE_MAX:
                break
            size += len(specs)
            count += 1
        taken.extend(waiting[:count])
        if count < len(waiting):
            left.extend(waiting[count:])
            self._waiting_adds[job.pk] = left

    async def _insert_round(self, job: Job, batch: Round, left: Round) -> None:
        async with self._lock(job):
            self._take_round(job, batch, left)
            try:
                self.core.check_open(job)
                if job.pk in self._unwritten_jobs:
                    await self.store.commit()  # tasks must never be on disk without their job
                now = self.clock()  # of the rows and the plan, as in _add_tasks
                done = await self._insert_batch(job, batch, now)
            except ShoalError as e:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                return
            added = [(specs, pks) for specs, pks in done if isinstance(pks, list)]
            plan = self.core.tasks_added(
                job, [sp for specs, _ in added for sp in specs],
                [pk for _, pks in added for pk in pks], {}, now, plain=True)
            ticket = self._queue(plan)  # under the lock, as any add
        try:
            await self._deliver(plan, ticket)
        except ShoalError as e:
            done = [(specs, e if isinstance(got, list) else got) for specs, got in done]
        for (_, fut), (_, got) in zip(batch, done, strict=True):
            if fut.done():
                continue
            if isinstance(got, ShoalError):
                fut.set_exception(got)
            else:
                fut.set_result(got)

    async def _insert_batch(
        self, job: Job, batch: Round, now: float
    ) -> list[tuple[list[TaskDefinition], list[int] | ShoalError]]:
        """Insert the waiting adds in one transaction; if an id is taken (by an existing task
        or by another add of the round), each add on its own, so only the add that names
        it is refused."""
        def pks_for(n: int) -> list[int]:
            first = self.store.next_task_pk
            self.store.next_task_pk += n
            return list(range(first, first + n))

        specs = [sp for sps, _ in batch for sp in sps]
        pks = pks_for(len(specs))
        if not await self.store.insert_tasks(job.pk, zip(pks, specs, strict=True), now):
            out: list[tuple[list[TaskDefinition], list[int] | ShoalError]] = []
            for sps, _ in batch:
                out.append((sps, pks[: len(sps)]))
                pks = pks[len(sps):]
            return out
        out = []
        for sps, _ in batch:
            mine = pks_for(len(sps))
            taken = await self.store.insert_tasks(job.pk, zip(mine, sps, strict=True), now)
            out.append((sps, _already_exists(job, taken) if taken else mine))
        return out

    async def _read_task(self, job: Job, task_id: str) -> TaskRecord:
        t = await self.store.get_task(job.pk, task_id)
        if t is None or self.core.jobs.get(job.pk) is not job:
            # (After the read the job may have been deleted, and made again under its id.)
            raise not_found("task", f"jobs/{job.id}/tasks/{task_id}")
        return t

    async def get_task(self, account: str, job_id: str, task_id: str) -> TaskRecord:
        job = self.core.job(account, job_id)
        return self.core.with_reason(job, await self._read_task(job, task_id))

    async def list_tasks(
        self, account: str, job_id: str, where: Filter | None, after: str | None, limit: int
    ) -> list[TaskRecord]:
        """`where`: task_filter's conditions (None or empty: every task)."""
        job = self.core.job(account, job_id)
        rows = await self.store.list_tasks(job.pk, where or [], after, limit)
        why = self.core.job_wait_reason(job)
        return [self.core.with_reason(job, t, why) for t in rows]

    async def _task_event(
        self, account: str, job_id: str, task_id: str,
        decide: Callable[[Job, TaskRecord, float], Plan],
    ) -> TaskRecord:
        """A task operation: the row is read once everything queued is committed (so it is
        not behind what memory knows), the core decides on it, and the task is read again."""
        self.store.check_writable()
        job = self.core.job(account, job_id)
        await self.store.commit()
        t = await self._read_task(job, task_id)
        await self._apply(decide(job, t, self.clock()))
        return await self.get_task(account, job_id, task_id)

    async def update_task(
        self, account: str, job_id: str, task_id: str, changes: TaskChanges, if_match: str
    ) -> TaskRecord:
        """The core decides on the task's row, read while the core watches the task: a
        state change during the read (the row would be behind memory) makes it read again.
        One update per job at a time (its lock), so an etag checked is never overtaken."""
        self.store.check_writable()
        job = self.core.job(account, job_id)
        async with self._lock(job):
            pk = (await self._read_task(job, task_id)).pk
            try:
                for tries in range(1, UPDATE_READS + 1):
                    self.core.watch(pk)
                    await self.store.commit()  # what memory knows is in the row read
                    t = await self._read_task(job, task_id)
                    try:
                        plan = self.core.update_task(job, t, changes, if_match, self.clock())
                        break
                    except ShoalError as e:
                        if e.reason != "TASK_CHANGING" or tries == UPDATE_READS:
                            raise
            finally:
                self.core.unwatch(pk)
            if plan.rows:
                self._ahead.pop(pk, None)  # its next attempt reads the new constraints
                self._updated.add(pk)
            await self._apply(plan)
        log.info("task updated", job=job.id, task=t.spec.id, fields=sorted(changes.fields))
        return await self.get_task(account, job_id, task_id)

    async def terminate_task(self, account: str, job_id: str, task_id: str) -> TaskRecord:
        return await self._task_event(account, job_id, task_id, self.core.terminate_task)

    async def reactivate_task(self, account: str, job_id: str, task_id: str) -> TaskRecord:
        return await self._task_event(account, job_id, task_id, self.core.reactivate_task)

    async def unblock_task(self, account: str, job_id: str, task_id: str) -> TaskRecord:
        return await self._task_event(account, job_id, task_id, self.core.unblock_task)

    async def delete_task(self, account: str, job_id: str, task_id: str) -> None:
        self.store.check_writable()
        job = self.core.job(account, job_id)
        async with self._lock(job):
            await self.store.commit()
            t = await self._read_task(job, task_id)
            await self._apply(self.core.delete_task(job, t, self.clock()))

    async def explain_task(self, account: str, job_id: str, task_id: str) -> Explanation:
        """Why a task is where it is. Beyond Azure Batch."""
        job = self.core.job(account, job_id)
        t = await self.get_task(account, job_id, task_id)
        pool_exists = True
        if t.state == TaskState.ACTIVE:
            try:
                pool_exists = not (await self._get_pool(account, job.pool_id)).deleting
            except ShoalError as e:
                # Only a pool-manager that answers "no such pool" says so; one that does not
                # answer says nothing about the pool.
                pool_exists = e.code != Code.NOT_FOUND
        return self.core.explain(job, t, pool_exists)

    # -- task files -------------------------------------------------------------------------

    async def read_task_file(
        self, account: str, job_id: str, task_id: str, path: str, offset: int,
        *, follow: bool = False, tail_lines: int = 0,
    ) -> AsyncIterator[tuple[int, bytes]]:
        """(offset, data) of a task's stdout.txt or stderr.txt: from `offset`, or from its last
        `tail_lines` lines; with `follow`, on while the attempt runs (see task_logs)."""
        if path not in ("stdout.txt", "stderr.txt"):
            raise invalid("path", f"{path!r} is not readable: use stdout.txt or stderr.txt")
        if offset < 0:
            raise invalid("offset", f"must not be negative, got {offset}")
        if not 0 <= tail_lines <= MAX_TAIL_LINES:
            raise invalid("tail_lines", f"must be 0 to {MAX_TAIL_LINES:,}, got {tail_lines}")
        if tail_lines and offset:
            raise invalid("offset", "must be 0 when tail_lines is set (the tail says where to start)")
        t = await self.get_task(account, job_id, task_id)
        while not t.attempt_id or not t.node:
            if not follow or t.state == TaskState.COMPLETED:
                raise failed_precondition("TASK_NOT_STARTED", f"task {task_id!r} has not run"
                                          + (" (it ended without running)" if follow else " yet"))
            await asyncio.sleep(FOLLOW_POLL)  # the caller's deadline bounds the wait
            t = await self.get_task(account, job_id, task_id)
        if tail_lines:
            offset = await self._tail_start(account, t, path, tail_lines)
        while True:
            # Whether the attempt had ended is read before the file: a read that begins
            # after the end sees everything the task wrote.
            ended = t.attempt_id not in self.core.attempts
            async for at, data in self._read_attempt_file(account, t, path, offset):
                offset = at + len(data)
                yield at, data
            if ended or not follow:
                return
            await asyncio.sleep(FOLLOW_POLL)

    async def _tail_start(self, account: str, t: TaskRecord, path: str, lines: int) -> int:
        """Where the file's last `lines` lines begin: read from the end (the node's copy), a
        bigger window each time, until the window holds them."""
        window = TAIL_WINDOW
        while True:
            keep = LastLines(lines)
            async for at, data in self._read_attempt_file(account, t, path, 0, from_end=window):
                keep.add(at, data)
            if keep.complete or window >= TAIL_WINDOW_MAX:
                return keep.start
            window *= 8

    async def _read_attempt_file(
        self, account: str, t: TaskRecord, path: str, offset: int, *, from_end: int = 0
    ) -> AsyncIterator[tuple[int, bytes]]:
        """One read of the attempt's file, to the size it has now: from its node while that is
        connected, else (once the attempt ended) the copy in storage, read from `offset`
        whatever `from_end` asks (a tail of it then reads it through)."""
        _, pool_id, _, node_id = (t.node or "").split("/")
        key = (account, pool_id.lower(), node_id)
        ended = t.attempt_id not in self.core.attempts
        if key in self._outbound:
            sent = False
            try:
                async for item in self._node_reads.read(self._outbound[key].send, key, t, path,
                                                        offset, from_end):
                    sent = True
                    yield item
                return
            except ShoalError as e:
                # A node that no longer has an ended attempt's files (cleaned up, or a new
                # disk), or that leaves while asked (a pool shrinking): the copy in storage
                # is as good.
                if e.reason not in NODE_COPY_GONE or not ended or sent or self.storage is None:
                    raise
        if self.storage is None or not ended:
            raise ShoalError(
                Code.UNAVAILABLE, "NODE_NOT_CONNECTED",
                f"{t.node}, which runs the task, is not connected: its files cannot be read now",
            )
        async for item in self._read_stored_log(account, t, path, offset):
            yield item

    async def _read_stored_log(
        self, account: str, t: TaskRecord, path: str, offset: int
    ) -> AsyncIterator[tuple[int, bytes]]:
        """The copy the agent uploaded when the attempt ended."""
        assert self.storage is not None
        job = self.core.job(account, t.job_id)
        req = staging_pb2.ReadTaskLogRequest(
            job_id=t.job_id, job_uid=str(job.pk), task_id=t.spec.id,
            attempt_id=t.attempt_id or "", file=path, offset=offset)
        try:
            async for chunk in self.storage.read_log(account, req):
                yield chunk.offset, chunk.data
        except ShoalError as e:
            if e.reason != "LOG_NOT_FOUND":
                raise
            last = next((a for a in t.attempts if a.attempt_id == t.attempt_id), None)
            if last is None or last.failure is None or last.failure.code not in NOT_UPLOADED:
                return  # the agent reported the end and uploads non-empty logs: it printed nothing
            raise ShoalError(
                Code.NOT_FOUND, "LOG_NOT_STORED",
                f"{path} of task {t.spec.id!r} was not stored: its last attempt did not end by "
                f"itself ({last.failure.code}: {last.failure.message})",
            ) from None

    # -- dispatch ---------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            try:
                await self.dispatch_once()
            except Exception:
                log.exception("dispatch failed")
                await asyncio.sleep(0.5)
                self._kick.set()

    async def dispatch_once(self) -> None:
        """One round: read the rows of the tasks that can be placed now and of those next in
        line (the read-ahead), then let the core place them (it checks again what moved
        during the read)."""
        core = self.core
        candidates = core.candidates()
        need = [pk for pk in dict.fromkeys([*candidates, *core.lookahead()])
                if pk not in self._ahead]
        if need:
            # Updates decided from here on may miss the read; those before are in the commit.
            self._updated.clear()
            # Rows of tasks added moments ago must be committed before they can be read.
            await self.store.commit()
            if len(self._ahead) > READ_AHEAD_MAX:
                self._ahead.clear()  # entries of tasks that left the queues another way
            rows = await self.store.dispatch_info(need)
            for pk in self._updated:
                rows.pop(pk, None)  # read before its update was committed
            self._ahead.update(rows)
        if candidates:
            await self._apply(self._placed(core.dispatch(self._ahead, self.clock())))

    def _placed(self, plan: Plan) -> Plan:
        """Forget the read-ahead rows of the tasks the plan assigns."""
        for send in plan.sends:
            if isinstance(send.message, Assign):
                self._ahead.pop(send.message.attempt.task_pk, None)
        return plan

    # -- agent streams ----------------------------------------------------------------------

    async def connect(
        self, key: NodeKey, pool_id: str, node_id: str, slots: int, hello: agent_pb2.Hello
    ) -> tuple[NodeSession, int, Outbound, agent_pb2.SchedulerMessage]:
        plan = self.core.hello(key, convert.hello(hello, pool_id, node_id, slots), self.clock())
        w = plan.reply
        assert isinstance(w, Welcome)
        old = self._outbound.pop(key, None)
        if old is not None:
            old.close()
            # The old stream may end after this one began: its reads end now, not at their
            # timeout (disconnect() skips a stream that is not the session's any more).
            self._node_reads.fail(key, "the node reconnected")
        t = self.timing
        out = self._outbound[key] = Outbound(w.stream_id, t.heartbeat_interval)
        s = w.session
        if s.setup_failure is not None:
            log.warning("node setup failed: it takes no tasks", node=s.name,
                        code=s.setup_failure.code, message=s.setup_failure.message)
        welcome = agent_pb2.SchedulerMessage(welcome=agent_pb2.Welcome(
            heartbeat_interval=to_duration(t.heartbeat_interval),
            cancel_attempts=w.cancel_attempts, upload_logs=self.storage is not None,
            fence_after=to_duration(
                fence_after(t.heartbeat_interval, t.lost_after, t.reconnect_grace)),
            staging_outage_timeout=to_duration(t.staging_outage_timeout),
            min_free_bytes=t.node_min_free_bytes))
        if w.drain:
            welcome.drain.leave = False
        await self._apply(plan)
        log.info("node connected", node=s.name, account=key[0], slots=slots,
                 running=len(s.attempts), cancelled=len(w.cancel_attempts))
        return s, w.stream_id, out, welcome

    async def on_agent_message(self, s: NodeSession, stream_id: int,
                               msg: agent_pb2.AgentMessage) -> None:
        if s.stream_id != stream_id:
            return
        if msg.file_chunks:
            self._node_reads.received(s.key, msg.file_chunks)
        if msg.staging_requests:
            # Off the message path: the stager's answer must not hold up results and acks.
            self._spawn(self._relay.grant(s.key, list(msg.staging_requests),
                                          self._stream_of(s.key)))
        now = self.clock()
        if not (msg.results or msg.started or msg.node_errors or msg.storage_waits
                or msg.HasField("start_task_info")):
            beat = self.core.heartbeat(
                s.key, stream_id, now,
                msg.heartbeat.disk_free_bytes if msg.HasField("heartbeat") else None)
            if beat is not None:
                await self._apply(beat)
            return
        plan = self.core.agent_message(s.key, stream_id, convert.agent_report(msg, now), now)
        if plan.dispatch and self._ahead:
            # Slots freed by these results take the next tasks whose rows were read ahead,
            # in the same commit and the same message as the acks: a 1-slot node does not
            # wait a dispatch round between tasks.
            plan = plan.then(self._placed(self.core.dispatch(self._ahead, now, s.key)))
        await self._apply(plan)

    async def disconnect(self, s: NodeSession, stream_id: int) -> None:
        if s.stream_id != stream_id:
            return
        out = self._outbound.get(s.key)
        if out is not None and out.stream_id == stream_id:
            del self._outbound[s.key]
        self._node_reads.fail(s.key, "the node disconnected")
        await self._apply(self.core.disconnect(s.key, stream_id, self.clock()))
        log.info("node disconnected", node=s.name, account=s.key[0])

    # -- node control (for the pool-manager) ------------------------------------------------

    def node_sessions(self, account: str, pool_id: str) -> list[NodeSession]:
        return self.core.node_sessions(account, pool_id)

    async def set_node_scheduling(
        self, account: str, pool_id: str, node_id: str, enabled: bool, option: int
    ) -> None:
        key = (account, pool_id.lower(), node_id)
        await self._apply(self.core.set_node_scheduling(key, enabled, option, self.clock()))
        log.info("node scheduling " + ("enabled" if enabled else "disabled"),
                 node=f"pools/{pool_id}/nodes/{node_id}", account=account,
                 option=pool_pb2.NodeDeallocationOption.Name(option))

    async def remove_nodes(self, account: str, pool_id: str, node_ids: list[str], option: int) -> None:
        keys = [(account, pool_id.lower(), n) for n in node_ids]
        await self._apply(self.core.remove_nodes(keys, option, self.clock()))
        log.info("nodes removing", pool=pool_id, nodes=node_ids, account=account,
                 option=pool_pb2.NodeDeallocationOption.Name(option))

    # -- liveness ---------------------------------------------------------------------------

    async def _liveness_loop(self) -> None:
        period = max(0.05, min(1.0, self.timing.heartbeat_interval / 2))
        while True:
            await asyncio.sleep(period)
            try:
                await self.check_liveness()
            except Exception:
                log.exception("liveness check failed")

    async def check_liveness(self) -> None:
        plan = self.core.tick(self.clock())
        for key in plan.close_streams:
            self._node_reads.fail(key, "the node was lost")
        await self._apply(plan)


def _already_exists(job: Job, taken: list[str]) -> ShoalError:
    return ShoalError(
        Code.ALREADY_EXISTS, "TASK_ALREADY_EXISTS",
        f"task {taken[0]!r} already exists in job {job.id!r}"
        + (f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""))
