"""The job-scheduler's use cases: jobs and tasks for clients, sessions for agents, node control
for the pool-manager — and the two loops that move work: dispatch and liveness.

State that the hot path needs lives in memory (jobs with their task counts, per-pool ready
queues of task keys, live attempts, node sessions) and is rebuilt from SQLite at start. Every
change is queued to the store and group-committed; replies, assignments and acks go out only
after the commit, so nothing a client or agent was told can be lost by a crash.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace

import structlog

from services.common.config import SchedulerTiming
from services.common.errors import Code, ShoalError, failed_precondition, invalid, not_found
from services.common.stager_client import StagingClient, StagingUnavailable
from services.common.timeutil import Clock, to_duration
from services.job_scheduler import convert, staging
from services.job_scheduler.dependencies import DependencyTracker, find_cycle
from services.job_scheduler.model import (
    CANCELLED_CODE,
    OPEN_JOB_STATES,
    STORAGE_UNAVAILABLE,
    Attempt,
    CancelIntent,
    Category,
    DisableOption,
    Failure,
    Job,
    JobState,
    Outcome,
    Report,
    Result,
    TaskCounts,
    TaskRecord,
    TaskSpec,
    TaskState,
    cancelled,
    job_should_complete,
    judge,
)
from services.job_scheduler.outcomes import JobAction, names_job_action, respond
from services.job_scheduler.placement import PoolQueue, plan
from services.job_scheduler.sessions import Liveness, NodeKey, Session, check_liveness
from services.job_scheduler.store import Store
from shoal.agent.v1 import agent_pb2
from shoal.internal.v1 import staging_pb2
from shoal.v1 import pool_pb2, task_pb2

log = structlog.get_logger()

DISPATCH_BATCH = 5000
MAX_BATCH_TASKS = 100_000
FILE_READ_TIMEOUT = 30.0
NODE_GONE = -1
"""FileChunk.offset that marks a read ended by the node going away, not by the file."""
JOB_TERMINATED = Failure(
    Category.USER_ERROR, "JOB_TERMINATED", "the job was terminated before the task completed"
)
NODE_REMOVED = Failure(
    Category.SERVER_ERROR, "NODE_REMOVED", "the task's node was removed with option TERMINATE"
)
NODE_REMOVED_REQUEUE = Failure(
    Category.SERVER_ERROR, "NODE_REMOVED", "the task's node was removed; the task was requeued"
)
NODE_DISABLED_REQUEUE = Failure(
    Category.SERVER_ERROR, "NODE_SCHEDULING_DISABLED",
    "the task's node had its scheduling disabled; the task was requeued",
)
NODE_UNAVAILABLE = Failure(
    Category.SERVER_ERROR, "NODE_UNAVAILABLE",
    "the node could not take the task when it was to be sent; the task was requeued",
)
JOB_DISABLED_RETURN = Failure(
    Category.USER_ERROR, "REQUEUED", "its job was disabled; the task was requeued"
)
NODE_LOST = Failure(Category.SERVER_ERROR, "NODE_LOST", "the node was lost while the task ran")
TASK_TERMINATED = Failure(Category.USER_ERROR, "TASK_TERMINATED", "the task was terminated")
JOB_DISABLED = Failure(
    Category.USER_ERROR, "JOB_DISABLED", "the job was disabled with option TERMINATE"
)
NODE_DISABLED_TERMINATE = Failure(
    Category.SERVER_ERROR, "NODE_SCHEDULING_DISABLED",
    "the task's node had its scheduling disabled with option TERMINATE",
)
MAX_NODE_ERRORS = 20
NOT_UPLOADED = frozenset({CANCELLED_CODE} | {f.code for f in (
    NODE_LOST, NODE_REMOVED, NODE_DISABLED_TERMINATE, NODE_UNAVAILABLE, JOB_DISABLED_RETURN,
    JOB_DISABLED, JOB_TERMINATED, TASK_TERMINATED)})
"""Codes an attempt's record carries when it did not end by itself — lost with its node, or
stopped by us (the agent uploads no logs for an attempt it was told to stop)."""

def _intend(a: Attempt, intent: CancelIntent, failure: Failure) -> None:
    """Set what a cancelled attempt becomes; a terminate is never downgraded to a requeue."""
    if a.cancel != CancelIntent.TERMINATE:
        a.cancel, a.cancel_failure = intent, failure


class Outbound:
    """Messages waiting to go down one agent stream. The servicer merges what has piled up
    into one SchedulerMessage, so a burst of assignments or acks costs one write."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[agent_pb2.SchedulerMessage | None] = asyncio.Queue()

    def send(self, msg: agent_pb2.SchedulerMessage) -> None:
        self.queue.put_nowait(msg)

    def close(self) -> None:
        self.queue.put_nowait(None)


@dataclass
class _Read:
    key: NodeKey
    chunks: asyncio.Queue[agent_pb2.FileChunk] = field(default_factory=asyncio.Queue)


class Scheduler:
    def __init__(
        self,
        store: Store,
        timing: SchedulerTiming,
        get_pool: Callable[[str, str], object],
        clock: Clock,
        storage: StagingClient | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        """The stager, for staging grants and stored logs; None where storage is not set up."""
        self.timing = timing
        self._get_pool = get_pool
        """async (account, pool_id) -> pool_pb2.Pool; raises ShoalError(NOT_FOUND)."""
        self.now = clock
        self.jobs: dict[int, Job] = {}
        self._job_keys: dict[tuple[str, str], int] = {}
        self.queues: dict[tuple[str, str], PoolQueue] = {}
        self.attempts: dict[str, Attempt] = {}
        self.sessions: dict[NodeKey, Session] = {}
        self._outbound: dict[NodeKey, Outbound] = {}
        self._ended_away: dict[NodeKey, list[Job]] = {}
        """Jobs that ended while a node that ran them was away: told when it is back."""
        self._counters: dict[int, tuple[int, int, int]] = {}
        """task_pk -> (retry_count, requeue_count, attempts so far) of ACTIVE tasks that ran."""
        self._dirty: set[int] = set()
        self._kick = asyncio.Event()
        self._streams = itertools.count(1)
        self._reads: dict[int, _Read] = {}
        self._add_locks: dict[int, asyncio.Lock] = {}
        self._read_ids = itertools.count(1)
        self._started_at = clock()
        self._loops: list[asyncio.Task[None]] = []
        self._grants: set[asyncio.Task[None]] = set()
        self.deps = DependencyTracker()
        """ACTIVE tasks waiting for (or blocked by) other tasks."""
        self._unfinished: dict[int, set[int]] = {}
        """job_pk -> its tasks not yet COMPLETED, for jobs that use dependencies."""
        self._outcomes: dict[int, tuple[bool, str]] = {}
        """task_pk -> (satisfies its dependents, why not) of completed tasks of such jobs."""
        self._prio: dict[int, int] = {}
        """task_pk -> its own priority, for ACTIVE tasks that have one."""
        self._slots: dict[int, int] = {}
        """task_pk -> required slots, for ACTIVE tasks that need more than one (the queue
        holds them only while the task is queued)."""
        self._parked: dict[int, list[int]] = {}
        """job_pk -> ready tasks of a disabled job, in order, until it is enabled."""
        self._deleted_attempts: set[str] = set()
        """Attempts whose task was deleted while they ran: their end frees the slot only."""

    # -- start / stop -----------------------------------------------------------------------

    async def load(self) -> None:
        counts = await self.store.count_tasks()
        for job in await self.store.load_jobs():
            job.counts = counts.get(job.pk, TaskCounts())
            self.jobs[job.pk] = job
            self._job_keys[(job.account, job.id.lower())] = job.pk
        now = self.now()
        waiting: list[tuple[Job, int, list[str], bool]] = []
        for r in await self.store.active_tasks():
            job_pk, task_pk = r["job_pk"], r["task_pk"]
            owner = self.jobs.get(job_pk)
            if owner is None:
                continue  # a row without its job: never scheduled, never counted
            job = owner
            if job.state not in OPEN_JOB_STATES:
                # Only a crash between a job's end and its tasks' can leave these.
                self.store.fail_tasks([task_pk], JOB_TERMINATED, now)
                job.counts.leave(TaskState.ACTIVE)
                job.counts.enter(TaskState.COMPLETED, Result.FAILURE)
                self._dirty.add(job_pk)
                continue
            if r["attempt_number"]:
                self._counters[task_pk] = (r["retry_count"], r["requeue_count"], r["attempt_number"])
            if r["priority"]:
                self._prio[task_pk] = r["priority"]
            if r["slots"] != 1:
                self._slots[task_pk] = r["slots"]
            if job.uses_deps:
                self._unfinished.setdefault(job.pk, set()).add(task_pk)
            if r["deps"]:
                waiting.append((job, task_pk, json.loads(r["deps"]), bool(r["unblocked"])))
            else:
                self._ready(job, task_pk)
        for job in self.jobs.values():
            if job.uses_deps:
                self._unfinished.setdefault(job.pk, set())
        live = await self.store.live_attempts()
        for row in live:
            owning = self.jobs.get(row["job_pk"])
            if owning is not None and owning.uses_deps:
                self._unfinished[owning.pk].add(row["task_pk"])
        await self._load_waiting(waiting)
        # A COMPLETED job's nodes were told when it ended; telling them again would rerun
        # its release task.
        with_commands = [j.pk for j in self.jobs.values()
                         if (j.prep or j.release) and j.state != JobState.COMPLETED]
        for job_pk, node in await self.store.job_nodes(with_commands):
            job = self.jobs[job_pk]
            _, pool_id, _, node_id = node.split("/")
            job.nodes.add((job.account, pool_id.lower(), node_id))
        for r in live:  # type: ignore[assignment]
            owner = self.jobs.get(r["job_pk"])
            if owner is None:
                continue
            job = owner
            _, pool_id, _, node_id = r["node"].split("/")
            ended = job.state not in OPEN_JOB_STATES
            self.attempts[r["attempt_id"]] = Attempt(
                attempt_id=r["attempt_id"], task_pk=r["task_pk"], job_pk=r["job_pk"],
                number=r["attempt_number"], node_key=(job.account, pool_id.lower(), node_id),
                node_name=r["node"], slots=r["slots"], assign_time=r["assign_time"],
                retry_count=r["retry_count"], requeue_count=r["requeue_count"],
                max_retries=job.default_retries if r["max_retries"] is None else r["max_retries"],
                start_time=r["start_time"], task_id=r["id"], files=r["files"],
                exits=r["exits"], priority=r["priority"],
                cancel=CancelIntent.TERMINATE if ended else CancelIntent.NONE,
                cancel_failure=JOB_TERMINATED if ended else None,
            )
        await self._commit()
        self._started_at = self.now()
        log.info("scheduler state loaded", jobs=len(self.jobs), live_attempts=len(self.attempts),
                 ready=sum(len(q) for q in self.queues.values()))

    async def _load_waiting(self, waiting: list[tuple[Job, int, list[str], bool]]) -> None:
        """Tasks that waited for others when the scheduler stopped: what they still wait for,
        and what blocks them, from the rows of what they depend on."""
        by_job: dict[int, list[tuple[Job, int, list[str], bool]]] = {}
        for w in waiting:
            by_job.setdefault(w[0].pk, []).append(w)
        for items in by_job.values():
            job = items[0][0]
            ids = sorted({d for _, _, deps, _ in items for d in deps})
            rows = await self.store.dep_rows(job.pk, ids)
            unfinished = self._unfinished.get(job.pk, set())
            for _, task_pk, deps, unblocked in items:
                pending: list[int] = []
                failed: dict[int, str] = {}
                for d in deps:
                    r = rows.get(d)
                    if r is None:
                        continue  # deleted after it completed: nothing to wait for
                    if r["task_pk"] in unfinished:
                        pending.append(r["task_pk"])
                    else:
                        satisfy, why = _dep_outcome(r)
                        if not satisfy:
                            failed[r["task_pk"]] = why
                if not self.deps.add(task_pk, job.pk, pending, failed, unblocked):
                    self._ready(job, task_pk)

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="dispatch"),
            asyncio.create_task(self._liveness_loop(), name="liveness"),
        ]
        self._kick.set()

    async def stop(self) -> None:
        for t in (*self._loops, *self._grants):
            t.cancel()
        await asyncio.gather(*self._loops, *self._grants, return_exceptions=True)
        for out in self._outbound.values():
            out.close()
        await self.store.commit()

    # -- helpers ----------------------------------------------------------------------------

    def _ready(self, job: Job, task_pk: int, *, front: bool = False) -> None:
        """A task may run now: into its pool's queue, or parked while its job is disabled."""
        if job.state == JobState.ACTIVE:
            queue = self._queue(job)
            queue.push(job.pk, job.priority, task_pk, front=front,
                       task_priority=self._prio.get(task_pk, 0))
            if task_pk in self._slots:
                queue.slots[task_pk] = self._slots[task_pk]
            self._kick.set()
        else:
            parked = self._parked.setdefault(job.pk, [])
            if front:
                parked.insert(0, task_pk)
            else:
                parked.append(task_pk)

    def _queue(self, job: Job) -> PoolQueue:
        q = self.queues.get(job.pool_key)
        if q is None:
            q = self.queues[job.pool_key] = PoolQueue(pack=job.pack)
        return q

    def _job(self, account: str, job_id: str) -> Job:
        pk = self._job_keys.get((account, job_id.lower()))
        if pk is None:
            raise not_found("job", f"jobs/{job_id}")
        return self.jobs[pk]

    def _same_job(self, job: Job, job_id: str) -> None:
        """After an await: the job may have been deleted (and created again under its id, so
        that a read by id finds the new one's task)."""
        if self.jobs.get(job.pk) is not job:
            raise not_found("job", f"jobs/{job_id}")

    def _persist_jobs(self) -> None:
        """Queue the rows of jobs whose counts or state changed, ending those now complete."""
        now = self.now()
        for pk in self._dirty:
            job = self.jobs.get(pk)
            if job is None:
                continue
            if job_should_complete(job):
                self._set_job_state(job, JobState.COMPLETED, now, "AllTasksComplete")
            elif job.state == JobState.TERMINATING and job.counts.running == 0:
                self._set_job_state(job, JobState.COMPLETED, now)
            elif job.state == JobState.DISABLING and job.counts.running == 0:
                self._set_job_state(job, JobState.DISABLED, now)
            self.store.update_job(job)
        self._dirty.clear()

    def _set_job_state(self, job: Job, state: JobState, now: float, reason: str = "") -> None:
        job.state = state
        job.state_time = now
        if reason and not job.terminate_reason:
            job.terminate_reason = reason
        if state == JobState.COMPLETED:
            job.end_time = now
            self._queue(job).drop_job(job.pk)
            self._job_ended(job)
        log.info("job state", job=job.id, account=job.account, state=state.name)

    def _job_ended(self, job: Job) -> None:
        """Tell the nodes that ran the job: they run its release task (Azure Batch runs it on
        every node that ran the job's preparation or tasks) and drop its preparation state."""
        keys = [k for k in job.nodes if k in self._outbound]
        since_start = self.now() - self._started_at
        for k in job.nodes:
            if k in self._outbound:
                continue
            s = self.sessions.get(k)
            if (s is not None and not s.removing) or (
                    s is None and since_start < self.timing.reconnect_grace):
                # Away (reconnecting, or not back since our restart): told when it says hello.
                self._ended_away.setdefault(k, []).append(job)
        job.nodes = set()
        if keys:
            self._spawn(self._send_job_ended(job, keys))

    async def _send_job_ended(self, job: Job, keys: list[NodeKey]) -> None:
        account, release = job.account, job.release
        msg = agent_pb2.JobEnded(job_id=job.id, job_uid=job.pk)
        if release:
            msg.release.ParseFromString(release)
        if msg.release.resource_files:
            try:
                if self.storage is None:
                    raise StagingUnavailable("storage is not configured")
                (g,) = await self.storage.grant_downloads(
                    account, [staging_pb2.DownloadSpec(resource_files=msg.release.resource_files)])
                if g.HasField("failure"):
                    msg.failure.CopyFrom(g.failure)
                msg.downloads.extend(g.downloads)
            except StagingUnavailable as e:
                msg.failure.CopyFrom(staging.failure(staging.DOWNLOAD_FAILED, str(e)))
        for key in keys:
            out = self._outbound.get(key)
            if out is not None:
                out.send(agent_pb2.SchedulerMessage(jobs_ended=[msg]))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run work that must not hold up its caller; stopped with the scheduler."""
        t = asyncio.create_task(coro)
        self._grants.add(t)
        t.add_done_callback(self._grants.discard)

    async def _commit(self) -> None:
        self._persist_jobs()
        await self.store.commit()

    # -- jobs -------------------------------------------------------------------------------

    async def create_job(self, account: str, req: object, schedule_id: str = "") -> Job:
        job_id, pool_id, priority, on_all = convert.job_fields(req)  # type: ignore[arg-type]
        prep, release = convert.job_commands(req.job)  # type: ignore[attr-defined]
        settings = convert.job_settings(req.job)  # type: ignore[attr-defined]
        if (account, job_id.lower()) in self._job_keys:
            raise ShoalError(Code.ALREADY_EXISTS, "JOB_ALREADY_EXISTS", f"job {job_id!r} already exists")
        try:
            pool = await self._get_pool(account, pool_id)  # type: ignore[misc]
        except ShoalError as e:
            if e.code == Code.NOT_FOUND:
                raise ShoalError(
                    Code.NOT_FOUND, "POOL_NOT_FOUND", f"job.pool: pool {pool_id!r} not found", "job.pool"
                ) from None
            raise
        # Checked again after the await: another call may have taken the id meanwhile.
        if (account, job_id.lower()) in self._job_keys:
            raise ShoalError(Code.ALREADY_EXISTS, "JOB_ALREADY_EXISTS", f"job {job_id!r} already exists")
        now = self.now()
        j = req.job  # type: ignore[attr-defined]
        job = Job(
            pk=self.store.next_job_pk, account=account, id=job_id,
            pool_id=pool.name.split("/")[1], priority=priority, on_all_tasks_complete=on_all,
            state=JobState.ACTIVE, create_time=now, state_time=now,
            display_name=j.display_name, metadata=dict(j.metadata), prep=prep, release=release,
            schedule_id=schedule_id, pack=pool.node_fill_type == pool_pb2.PACK,
            pool_slots=pool.task_slots_per_node, **settings,  # type: ignore[arg-type]
        )
        if job.uses_deps:
            self._unfinished[job.pk] = set()
        self.store.next_job_pk += 1
        self.jobs[job.pk] = job
        self._job_keys[(account, job_id.lower())] = job.pk
        self.store.insert_job(job)
        await self._commit()
        structlog.contextvars.bind_contextvars(job=job_id)
        log.info("job created", pool=job.pool_id, priority=priority)
        return job

    def get_job(self, account: str, job_id: str) -> Job:
        return self._job(account, job_id)

    def list_jobs(
        self, account: str, states: set[str] | None, after: str | None, limit: int
    ) -> list[Job]:
        jobs = sorted(
            (j for j in self.jobs.values() if j.account == account
             and (states is None or j.state.name in states) and (after is None or j.id > after)),
            key=lambda j: j.id,
        )
        return jobs[:limit]

    async def terminate_job(self, account: str, job_id: str, reason: str) -> Job:
        if len(reason) > 256:
            raise invalid("reason", "must be at most 256 characters")
        job = self._job(account, job_id)
        if job.state in (JobState.COMPLETED, JobState.TERMINATING):
            raise failed_precondition("JOB_COMPLETED", f"job {job.id!r} is already {job.state.name.lower()}")
        self._end_job_tasks(job, reason or "UserTerminate")
        await self._commit()
        return job

    def _end_job_tasks(self, job: Job, reason: str) -> None:
        """Complete the job's ACTIVE tasks (ready, parked, waiting) as failed and cancel its
        running ones."""
        now = self.now()
        ready = [*self._drop_active(job)]
        for task_pk in ready:
            self._counters.pop(task_pk, None)
        if ready:
            self.store.fail_tasks(ready, JOB_TERMINATED, now)
        job.counts.completed += len(ready)
        job.counts.failed += len(ready)
        job.counts.active -= len(ready)
        running = [a for a in self.attempts.values() if a.job_pk == job.pk]
        self._cancel(running, CancelIntent.TERMINATE, JOB_TERMINATED)
        job.terminate_reason = reason
        self._set_job_state(job, JobState.TERMINATING if running else JobState.COMPLETED, now)
        self._dirty.add(job.pk)

    def _drop_active(self, job: Job) -> list[int]:
        """Take all the job's ACTIVE tasks out of the queue, the parked list and the
        dependency tracker; returns them."""
        out = self._queue(job).drop_job(job.pk)
        out += self._parked.pop(job.pk, [])
        out += self.deps.forget_job(job.pk)
        for pk in out:
            self._prio.pop(pk, None)
            self._slots.pop(pk, None)
        if job.uses_deps:
            self._unfinished.get(job.pk, set()).difference_update(out)
        return out

    # -- disable / enable -------------------------------------------------------------------

    async def disable_job(self, account: str, job_id: str, option: int) -> Job:
        job = self._job(account, job_id)
        if job.state != JobState.ACTIVE:
            raise failed_precondition("JOB_NOT_ACTIVE", f"job {job.id!r} is {job.state.name.lower()}: "
                                      "only an active job can be disabled")
        try:
            opt = DisableOption(option or DisableOption.REQUEUE)
        except ValueError:
            raise invalid("disable_tasks", f"unknown option {option}") from None
        self._disable(job, opt)
        await self._commit()
        return job

    def _disable(self, job: Job, option: DisableOption) -> None:
        """No task of the job starts until it is enabled; its ready tasks are parked."""
        parked = self._parked.setdefault(job.pk, [])
        parked.extend(self._queue(job).drop_job(job.pk))
        running = [a for a in self.attempts.values() if a.job_pk == job.pk]
        if option == DisableOption.REQUEUE:
            self._cancel(running, CancelIntent.RETURN, JOB_DISABLED_RETURN)
        elif option == DisableOption.TERMINATE:
            self._cancel(running, CancelIntent.TERMINATE, JOB_DISABLED)
        self._set_job_state(job, JobState.DISABLING if running else JobState.DISABLED, self.now())
        self._dirty.add(job.pk)

    async def enable_job(self, account: str, job_id: str) -> Job:
        job = self._job(account, job_id)
        if job.state not in (JobState.DISABLED, JobState.DISABLING):
            raise failed_precondition("JOB_NOT_DISABLED", f"job {job.id!r} is {job.state.name.lower()}, "
                                      "not disabled")
        self._set_job_state(job, JobState.ACTIVE, self.now())
        for pk in self._parked.pop(job.pk, []):
            self._ready(job, pk)
        self._dirty.add(job.pk)
        await self._commit()
        return job

    async def delete_job(self, account: str, job_id: str) -> None:
        job = self._job(account, job_id)
        # An add in flight commits its rows first: a batch deletes before it inserts.
        async with self._add_locks.setdefault(job.pk, asyncio.Lock()):
            await self._delete_job(account, job)

    async def _delete_job(self, account: str, job: Job) -> None:
        if self.jobs.get(job.pk) is not job:
            return  # deleted meanwhile
        job.state = JobState.DELETING
        for task_pk in self._drop_active(job):
            self._counters.pop(task_pk, None)
        self._unfinished.pop(job.pk, None)
        running = [a for a in self.attempts.values() if a.job_pk == job.pk]
        # Their results will find no job and only free their slots.
        self._cancel(running, CancelIntent.TERMINATE, JOB_TERMINATED)
        self._job_ended(job)
        del self.jobs[job.pk]
        del self._job_keys[(account, job.id.lower())]
        self._add_locks.pop(job.pk, None)
        self._dirty.discard(job.pk)
        self.store.delete_job(job.pk)
        await self._commit()
        if self.storage is not None:
            # Logs are kept per incarnation (job pk), so a job created again under this id
            # keeps its own.
            try:
                await self.storage.delete_job_logs(account, job.id, job.pk)
            except StagingUnavailable as e:
                log.warning("job logs not deleted", job=job.id, error=str(e))
        log.info("job deleted", job=job.id, account=account)

    # -- tasks ------------------------------------------------------------------------------

    async def create_tasks(self, account: str, job_id: str, specs: list[TaskSpec]) -> int:
        if not specs:
            raise invalid("requests", "at least one task is required")
        if len(specs) > MAX_BATCH_TASKS:
            raise invalid("requests", f"at most {MAX_BATCH_TASKS} tasks per call, got {len(specs)}")
        job = self._job(account, job_id)
        seen: dict[str, int] = {}
        for i, s in enumerate(specs):
            low = s.id.lower()
            if low in seen:
                raise ShoalError(
                    Code.INVALID_ARGUMENT, "DUPLICATE_TASK_ID",
                    f"requests[{i}].task_id: {s.id!r} appears twice in this call "
                    f"(also requests[{seen[low]}])", f"requests[{i}].task_id",
                )
            seen[low] = i
        # A task of its own: once the ids are checked the add runs to its commit even if the
        # caller goes away, so the per-job lock is never released over a half-added batch.
        return await asyncio.shield(asyncio.create_task(self._add_tasks(job, specs)))

    async def _add_tasks(self, job: Job, specs: list[TaskSpec]) -> int:
        # One add per job at a time, so its rows and the job's counts move together.
        lock = self._add_locks.setdefault(job.pk, asyncio.Lock())
        async with lock:
            if self.jobs.get(job.pk) is not job:
                raise not_found("job", f"jobs/{job.id}")  # deleted while this add waited
            if job.state not in OPEN_JOB_STATES:
                raise failed_precondition(
                    "JOB_NOT_ACTIVE", f"job {job.id!r} is {job.state.name.lower()}: it takes no new tasks"
                )
            extras = [i for i, sp in enumerate(specs) if sp.extra]
            known = await self._check_extras(job, specs, extras) if extras else {}
            first = self.store.next_task_pk
            self.store.next_task_pk += len(specs)
            pks = list(range(first, first + len(specs)))
            # The job's own row first: tasks must never be on disk without their job.
            await self.store.commit()
            taken = await self.store.insert_tasks(job.pk, zip(pks, specs, strict=True), self.now())
            if taken:
                raise ShoalError(
                    Code.ALREADY_EXISTS, "TASK_ALREADY_EXISTS",
                    f"task {taken[0]!r} already exists in job {job.id!r}"
                    + (f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""),
                )
            job.counts.active += len(specs)
            self._dirty.add(job.pk)
            if job.state not in OPEN_JOB_STATES or self.jobs.get(job.pk) is not job:
                # Terminated while the rows were written: they end with the job.
                self.store.fail_tasks(pks, JOB_TERMINATED, self.now())
                job.counts.active -= len(specs)
                job.counts.completed += len(specs)
                job.counts.failed += len(specs)
                await self._commit()
                raise failed_precondition("JOB_NOT_ACTIVE", f"job {job.id!r} ended while its tasks were added")
            # Queued at once (no await from here), so a terminate or delete that comes during
            # the commit sees them.
            if job.uses_deps:
                self._unfinished.setdefault(job.pk, set()).update(pks)
            if not extras and job.state == JobState.ACTIVE:
                self._queue(job).push_many(job.pk, job.priority, pks)
                self._kick.set()
            else:
                self._enqueue_new(job, specs, pks, known)
            await self._commit()
        return len(specs)

    async def _check_extras(
        self, job: Job, specs: list[TaskSpec], extras: list[int]
    ) -> dict[str, tuple[int, bool, str]]:
        """Refuse what the job cannot take: dependencies in a job that does not use them,
        unknown ids, cycles, job actions the job would ignore, more slots than its nodes
        have. Returns the existing tasks depended on: id_lower -> (task_pk, unfinished,
        block reason when completed without satisfying)."""
        wanted: set[str] = set()
        batch = {sp.id.lower(): i for i, sp in enumerate(specs)}
        for i in extras:
            sp = specs[i]
            at = f"requests[{i}].task"
            if sp.deps and not job.uses_deps:
                raise invalid(f"{at}.depends_on", f"job {job.id!r} does not use task dependencies "
                              "(set uses_task_dependencies when creating it)")
            if sp.exits and not job.exit_job_actions and names_job_action(
                    convert.exit_rules(task_pb2.ExitConditions.FromString(sp.exits), at)):
                raise invalid(f"{at}.exit_conditions", "a job action needs the job's on_task_failure "
                              "to be PERFORM_EXIT_OPTIONS_JOB_ACTION")
            if job.pool_slots and sp.slots > job.pool_slots:
                raise invalid(f"{at}.required_slots", f"{sp.slots} slots, but the pool's nodes have "
                              f"{job.pool_slots}")
            wanted.update(d for d in sp.deps if d not in batch)
        rows = await self.store.dep_rows(job.pk, sorted(wanted)) if wanted else {}
        for i in extras:
            for d in specs[i].deps:
                if d not in batch and d not in rows:
                    raise ShoalError(
                        Code.INVALID_ARGUMENT, "UNKNOWN_DEPENDENCY",
                        f"requests[{i}].task.depends_on: task {d!r} does not exist in job {job.id!r}",
                        f"requests[{i}].task.depends_on")
        cycle = find_cycle({sp.id.lower(): [d for d in sp.deps if d in batch]
                            for sp in specs if sp.deps})
        if cycle:
            i = batch[cycle[0]]
            raise ShoalError(Code.INVALID_ARGUMENT, "DEPENDENCY_CYCLE",
                             f"requests[{i}].task.depends_on: a cycle: {' -> '.join(cycle)}",
                             f"requests[{i}].task.depends_on")
        unfinished = self._unfinished.get(job.pk, set())
        out = {}
        for d, r in rows.items():
            pk = r["task_pk"]
            if pk in unfinished:
                out[d] = (pk, True, "")
            else:
                satisfy, why = self._outcomes.get(pk) or _dep_outcome(r)
                out[d] = (pk, False, "" if satisfy else why)
        return out

    def _enqueue_new(
        self, job: Job, specs: list[TaskSpec], pks: list[int], known: dict[str, tuple[int, bool, str]]
    ) -> None:
        """Queue new tasks that have priorities, slots or dependencies (no await: see caller).
        An existing dependency is looked at again here: it may have completed since it was
        read, and the in-memory sets are the truth."""
        batch = {sp.id.lower(): pk for sp, pk in zip(specs, pks, strict=True)}
        unfinished = self._unfinished.get(job.pk, set())
        for sp, pk in zip(specs, pks, strict=True):
            if sp.priority:
                self._prio[pk] = sp.priority
            if sp.slots != 1:
                self._slots[pk] = sp.slots
            pending: list[int] = []
            failed: dict[int, str] = {}
            for d in sp.deps:
                dpk = batch.get(d)
                if dpk is None:
                    dpk, _, why = known[d]
                    if dpk not in unfinished:
                        satisfy, why = self._outcomes.get(dpk, (not why, why))
                        if not satisfy:
                            failed[dpk] = why
                        continue
                pending.append(dpk)
            if sp.deps and self.deps.add(pk, job.pk, pending, failed):
                if failed:
                    self.store.set_blocked(pk, next(iter(failed.values())))
                continue
            self._ready(job, pk)

    async def get_task(self, account: str, job_id: str, task_id: str) -> TaskRecord:
        job = self._job(account, job_id)
        t = await self.store.get_task(job.pk, task_id)
        if t is None:
            raise not_found("task", f"jobs/{job.id}/tasks/{task_id}")
        return self._with_reason(job, t)

    async def list_tasks(
        self, account: str, job_id: str, states: set[str] | None, after: str | None, limit: int
    ) -> list[TaskRecord]:
        job = self._job(account, job_id)
        st = {TaskState[s] for s in states} if states is not None else None
        return [self._with_reason(job, t) for t in await self.store.list_tasks(job.pk, st, after, limit)]

    def _with_reason(self, job: Job, t: TaskRecord) -> TaskRecord:
        if t.state != TaskState.ACTIVE:
            return t
        why = self.deps.reason(t.pk)
        if not why and job.state in (JobState.DISABLED, JobState.DISABLING):
            why = "the job is disabled"
        return replace(t, state_reason=why) if why else t

    # -- task operations --------------------------------------------------------------------

    def _attempt_of(self, task_pk: int) -> Attempt | None:
        return next((a for a in self.attempts.values() if a.task_pk == task_pk), None)

    def _take_active(self, job: Job, task_pk: int) -> bool:
        """Take an ACTIVE task out of wherever it waits; False if it was not found there."""
        self._prio.pop(task_pk, None)
        self._slots.pop(task_pk, None)
        self._counters.pop(task_pk, None)
        if self._queue(job).remove(job.pk, task_pk):
            return True
        parked = self._parked.get(job.pk, [])
        if task_pk in parked:
            parked.remove(task_pk)
            return True
        if task_pk in self.deps.waiting:
            self.deps.forget(task_pk)
            return True
        return False

    async def terminate_task(self, account: str, job_id: str, task_id: str) -> TaskRecord:
        """Azure Batch's terminate: a running task is killed, an active one never runs; both
        complete as failed (TASK_TERMINATED). A completed task is left as it is."""
        job = self._job(account, job_id)
        await self._commit()  # so the row below is not behind what memory knows
        t = await self.get_task(account, job_id, task_id)
        self._same_job(job, job_id)
        if t.state == TaskState.COMPLETED and not self._is_live(job, t.pk):
            return t
        a = self._attempt_of(t.pk)
        if a is not None:
            self._cancel([a], CancelIntent.TERMINATE, TASK_TERMINATED)
        elif self._take_active(job, t.pk):
            now = self.now()
            self.store.fail_tasks([t.pk], TASK_TERMINATED, now)
            job.counts.leave(TaskState.ACTIVE)
            job.counts.enter(TaskState.COMPLETED, Result.FAILURE)
            self._dirty.add(job.pk)
            if job.uses_deps or job.exit_job_actions or t.spec.exits:
                self._completed(job, t.pk, t.spec.id, t.spec.exits, False, None,
                                TASK_TERMINATED.code, job_action=False)
        await self._commit()
        return await self.get_task(account, job_id, task_id)

    def _is_live(self, job: Job, task_pk: int) -> bool:
        """Whether the task is ACTIVE or running in memory (its row may lag a commit)."""
        return (self._attempt_of(task_pk) is not None
                or self._queue(job).contains(job.pk, task_pk)
                or task_pk in self._parked.get(job.pk, ())
                or task_pk in self.deps.waiting)

    async def reactivate_task(self, account: str, job_id: str, task_id: str) -> TaskRecord:
        """A failed task runs again, its retry count reset; dependents its failure blocked
        wait for it again."""
        job = self._job(account, job_id)
        await self._commit()  # so the row below is not behind what memory knows
        t = await self.get_task(account, job_id, task_id)
        self._same_job(job, job_id)
        # No await from here to the commit: the task is ACTIVE again in one step.
        if (t.state != TaskState.COMPLETED or t.result != Result.FAILURE
                or self._is_live(job, t.pk)):
            raise failed_precondition("TASK_NOT_FAILED", f"task {t.spec.id!r} is not a failed, "
                                      "completed task: only those can be reactivated")
        if job.state not in OPEN_JOB_STATES:
            raise failed_precondition("JOB_NOT_ACTIVE", f"job {job.id!r} is {job.state.name.lower()}")
        self.store.reactivate(t.pk, self.now())
        job.counts.completed -= 1
        job.counts.failed -= 1
        job.counts.active += 1
        self._dirty.add(job.pk)
        if job.uses_deps:
            self._outcomes.pop(t.pk, None)
            self._unfinished.setdefault(job.pk, set()).add(t.pk)
            for d in self.deps.blocked_by(t.pk):
                self.deps.reopened_one(t.pk, d)
                self.store.set_blocked(d, self.deps.waiting[d].blocked or None)
        if t.spec.priority:
            self._prio[t.pk] = t.spec.priority
        if t.spec.slots != 1:
            self._slots[t.pk] = t.spec.slots
        self._ready(job, t.pk)
        await self._commit()
        return await self.get_task(account, job_id, task_id)

    async def unblock_task(self, account: str, job_id: str, task_id: str) -> TaskRecord:
        """Run a task blocked by a failed dependency anyway."""
        job = self._job(account, job_id)
        t = await self.get_task(account, job_id, task_id)
        res = self.deps.unblock(t.pk)
        if res is None:
            raise failed_precondition("TASK_NOT_BLOCKED", f"task {t.spec.id!r} is not blocked by "
                                      "a failed dependency")
        self.store.unblock(t.pk)
        if res[1]:
            self._ready(job, t.pk)  # else it still waits for dependencies that have not ended
        await self._commit()
        return await self.get_task(account, job_id, task_id)

    async def explain_task(self, account: str, job_id: str, task_id: str) -> tuple[TaskRecord, str, list[str], list[str]]:
        """Why a task is where it is: (task, summary, reasons, details). Beyond Azure Batch."""
        job = self._job(account, job_id)
        t = await self.get_task(account, job_id, task_id)
        reasons: list[str] = []
        details: list[str] = []
        if t.state == TaskState.COMPLETED:
            result = t.result.name.lower() if t.result else "?"
            why = f": {t.failure.code} — {t.failure.message}" if t.failure else (
                f" with exit code {t.exit_code}" if t.exit_code is not None else "")
            return t, f"completed ({result}){why}", ["COMPLETED"], details
        if t.state in (TaskState.PREPARING, TaskState.RUNNING):
            a = self._attempt_of(t.pk)
            where = t.node or "a node"
            if t.state == TaskState.RUNNING:
                return t, f"running on {where}", ["RUNNING"], details
            reasons.append("PREPARING")
            if job.prep:
                reasons.append("JOB_PREPARATION_RUNNING")
                details.append("the job has a preparation task, which runs on the node before "
                               "the job's first task there")
            if t.spec.files:
                details.append("the node stages the task's resource files and packages")
            if a is not None and a.cancel != CancelIntent.NONE:
                details.append("it is being stopped")
            return t, f"assigned to {where}, preparing to start", reasons, details
        # ACTIVE: what holds it, most important first.
        if job.state not in OPEN_JOB_STATES:
            return t, f"the job is {job.state.name.lower()}", ["JOB_NOT_ACTIVE"], details
        w = self.deps.waiting.get(t.pk)
        if w is not None and w.blocked:
            reasons.append("DEPENDENCY_FAILED")
            details.append(f"blocked: {w.blocked}; `shoal task unblock` runs it anyway, "
                           "`shoal task terminate` gives up on it")
        elif w is not None:
            reasons.append("DEPENDENCIES_PENDING")
            details.append(f"waiting for {w.pending} task(s) it depends on to complete")
        if job.state in (JobState.DISABLED, JobState.DISABLING):
            reasons.append("JOB_DISABLED")
            details.append("the job is disabled: `shoal job enable` lets its tasks run")
        if job.max_parallel and job.counts.running >= job.max_parallel:
            reasons.append("MAX_PARALLEL_TASKS")
            details.append(f"the job already runs {job.counts.running} tasks, its "
                           f"max_parallel_tasks")
        nodes = [x for x in self.sessions.values() if (x.key[0], x.key[1]) == job.pool_key]
        usable = [x for x in nodes if x.schedulable]
        if not nodes:
            reasons.append("NO_NODES")
            details.append(f"pool {job.pool_id!r} has no connected nodes (resize it, or wait for "
                           "its nodes to start)")
        elif not usable:
            reasons.append("NO_NODES")
            details.append(f"none of pool {job.pool_id!r}'s {len(nodes)} nodes takes tasks "
                           "(unreachable, disabled, leaving, or their setup failed)")
        elif max(x.total_slots for x in usable) < t.spec.slots:
            reasons.append("NO_NODE_FITS")
            details.append(f"it needs {t.spec.slots} slots; the pool's nodes have "
                           f"{max(x.total_slots for x in usable)}")
        elif all(x.free_slots < t.spec.slots for x in usable):
            reasons.append("NO_FREE_SLOT")
            busy = sum(x.used_slots for x in usable)
            total = sum(x.total_slots for x in usable)
            details.append(f"no node has {t.spec.slots} free slot(s): {busy} of {total} slots "
                           f"busy on {len(usable)} nodes")
        queue = self.queues.get(job.pool_key)
        if queue is not None and not reasons:
            ahead = queue.peek(len(queue)).index(t.pk) if t.pk in queue.peek(len(queue)) else -1
            if ahead > 0:
                reasons.append("QUEUED_BEHIND")
                details.append(f"{ahead} ready task(s) go before it (job priority, task "
                               "priority, then age)")
        if not reasons:
            reasons.append("QUEUED")
            details.append("ready: it goes to the next free slot")
        summary = details[0].split(";")[0] if details else "waiting"
        return t, summary, reasons, details

    async def delete_task(self, account: str, job_id: str, task_id: str) -> None:
        """Delete a task (a running one is killed). Refused while tasks that depend on it
        have not completed: their dependency would vanish."""
        job = self._job(account, job_id)
        async with self._add_locks.setdefault(job.pk, asyncio.Lock()):
            await self._commit()  # so the row below is not behind what memory knows
            t = await self.get_task(account, job_id, task_id)
            self._same_job(job, job_id)
            # No await from here to the commit; memory decides what the task is now.
            if self.deps.has_dependents(t.pk):
                raise failed_precondition(
                    "TASK_HAS_DEPENDENTS",
                    f"task {t.spec.id!r} has dependent tasks that have not completed; "
                    "terminate or delete them first")
            a = self._attempt_of(t.pk)
            if a is not None:
                self._cancel([a], CancelIntent.TERMINATE, TASK_TERMINATED)
                self._deleted_attempts.add(a.attempt_id)
            elif self._take_active(job, t.pk):
                job.counts.active -= 1
            elif t.state == TaskState.COMPLETED:
                job.counts.completed -= 1
                if t.result == Result.SUCCESS:
                    job.counts.succeeded -= 1
                else:
                    job.counts.failed -= 1
            else:
                raise ShoalError(Code.UNAVAILABLE, "TASK_CHANGING",
                                 f"task {t.spec.id!r} is changing state; try again")
            if job.uses_deps:
                self._unfinished.get(job.pk, set()).discard(t.pk)
                self._outcomes.pop(t.pk, None)
            self.store.delete_task(t.pk)
            self._dirty.add(job.pk)
            if t.node:
                _, pool_id, _, node_id = t.node.split("/")
                out = self._outbound.get((account, pool_id.lower(), node_id))
                if out is not None:
                    out.send(agent_pb2.SchedulerMessage(deleted_tasks=[
                        agent_pb2.TaskRef(job_id=job.id, task_id=t.spec.id)]))
            await self._commit()

    async def read_task_file(
        self, account: str, job_id: str, task_id: str, path: str, offset: int
    ) -> AsyncIterator[tuple[int, bytes]]:
        if path not in ("stdout.txt", "stderr.txt"):
            raise invalid("path", f"{path!r} is not readable: use stdout.txt or stderr.txt")
        if offset < 0:
            raise invalid("offset", f"must not be negative, got {offset}")
        t = await self.get_task(account, job_id, task_id)
        if not t.attempt_id or not t.node:
            raise failed_precondition("TASK_NOT_STARTED", f"task {task_id!r} has not run yet")
        _, pool_id, _, node_id = t.node.split("/")
        key = (account, pool_id.lower(), node_id)
        ended = t.attempt_id not in self.attempts
        if key in self._outbound:
            sent = False
            try:
                async for item in self._read_from_node(key, t, path, offset):
                    sent = True
                    yield item
                return
            except ShoalError as e:
                # A node that no longer has an ended attempt's files (cleaned up, or a new
                # disk): the copy in storage is as good.
                if e.reason != "TASK_FILE_NOT_FOUND" or not ended or sent or self.storage is None:
                    raise
        if self.storage is None or not ended:
            raise ShoalError(
                Code.UNAVAILABLE, "NODE_NOT_CONNECTED",
                f"{t.node}, which runs the task, is not connected: its files cannot be read now",
            )
        async for item in self._read_stored_log(account, t, path, offset):
            yield item

    async def _read_from_node(
        self, key: NodeKey, t: TaskRecord, path: str, offset: int
    ) -> AsyncIterator[tuple[int, bytes]]:
        rid = next(self._read_ids)
        read = self._reads[rid] = _Read(key)
        self._outbound[key].send(agent_pb2.SchedulerMessage(file_reads=[agent_pb2.FileRead(
            request_id=rid, attempt_id=t.attempt_id or "", job_id=t.job_id, task_id=t.spec.id,
            path=path, offset=offset)]))
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(read.chunks.get(), FILE_READ_TIMEOUT)
                except TimeoutError:
                    raise ShoalError(Code.UNAVAILABLE, "NODE_TIMEOUT",
                                     f"{t.node} did not answer the file read") from None
                if chunk.error and chunk.offset == NODE_GONE:
                    raise ShoalError(Code.UNAVAILABLE, "NODE_NOT_CONNECTED",
                                     f"{t.node} went away during the read; try again")
                if chunk.error:
                    raise ShoalError(Code.NOT_FOUND, "TASK_FILE_NOT_FOUND",
                                     f"{path} of task {t.spec.id!r}: {chunk.error}")
                if chunk.data:
                    yield chunk.offset, chunk.data
                if chunk.eof:
                    return
        finally:
            self._reads.pop(rid, None)

    async def _read_stored_log(
        self, account: str, t: TaskRecord, path: str, offset: int
    ) -> AsyncIterator[tuple[int, bytes]]:
        """The copy the agent uploaded when the attempt ended."""
        assert self.storage is not None
        job = self._job(account, t.job_id)
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
                await self._dispatch_once()
            except Exception:
                log.exception("dispatch failed")
                await asyncio.sleep(0.5)
                self._kick.set()

    def _pool_sessions(self) -> dict[tuple[str, str], list[Session]]:
        by_pool: dict[tuple[str, str], list[Session]] = {}
        for s in self.sessions.values():
            if s.schedulable and s.free_slots > 0:
                by_pool.setdefault((s.key[0], s.key[1]), []).append(s)
        return by_pool

    async def _dispatch_once(self) -> None:
        if not self._dispatchable():
            return
        # Rows of tasks added moments ago must be committed before they can be read.
        await self.store.commit()
        by_pool = self._pool_sessions()
        candidates: list[int] = []
        for pool_key, sessions in by_pool.items():
            queue = self.queues.get(pool_key)
            if queue and queue.jobs:
                free = sum(s.free_slots for s in sessions)
                candidates.extend(queue.peek(
                    min(free, DISPATCH_BATCH - len(candidates)), self._room(queue),
                    max(s.free_slots for s in sessions)))
        if not candidates:
            return
        info = await self.store.dispatch_info(candidates)
        # From here to the commit nothing awaits: what is chosen is recorded and counted in
        # one step, so a terminate, a reconnect or a removal sees either all of it or none.
        now = self.now()
        chosen: list[tuple[Attempt, int, agent_pb2.Assignment]] = []
        for pool_key, sessions in self._pool_sessions().items():
            queue = self.queues.get(pool_key)
            if not queue or not queue.jobs:
                continue
            picks = plan(queue, sessions, DISPATCH_BATCH - len(chosen), self._room(queue),
                         set(info))
            late = [p for p in picks if p[1] not in info]  # added during the read
            for job_pk, task_pk, s, slots in reversed(late):  # back in front, in their order
                s.used_slots -= slots
                queue.push(job_pk, self.jobs[job_pk].priority, task_pk, front=True,
                           task_priority=self._prio.get(task_pk, 0))
            if late:
                self._kick.set()
            for job_pk, task_pk, s, slots in picks:
                if task_pk in info:
                    chosen.append(self._assign(job_pk, task_pk, s, info[task_pk], now, slots))
        if len(chosen) >= DISPATCH_BATCH:
            self._kick.set()
        if not chosen:
            return
        await self._commit()
        # Send what is still wanted where it is still wanted: the world may have moved
        # during the commit.
        sends: dict[NodeKey, list[agent_pb2.Assignment]] = {}
        unsent = False
        for a, stream_id, msg in chosen:
            if self.attempts.get(a.attempt_id) is not a:
                continue  # resolved already (its node reconnected without it, or was lost)
            node = self.sessions.get(a.node_key)
            if (node is None or node.stream_id != stream_id or not node.connected or node.removing
                    or node.scheduling_disabled):
                if a.cancel == CancelIntent.NONE:
                    a.cancel, a.cancel_failure = CancelIntent.REQUEUE, NODE_UNAVAILABLE
                self._resolve(a, None, now)
                unsent = True
            elif a.cancel != CancelIntent.NONE:
                self._resolve(a, None, now)  # terminated before it was sent: never runs
                unsent = True
            else:
                sends.setdefault(a.node_key, []).append(msg)
        for key, assignments in sends.items():
            self._outbound[key].send(agent_pb2.SchedulerMessage(assignments=assignments))
        if unsent:
            await self._commit()

    def _room(self, queue: PoolQueue) -> dict[int, int] | None:
        """How many more tasks each capped job of a pool may start (max_parallel_tasks)."""
        room = {pk: max(0, j.max_parallel - j.counts.running) for pk in queue.jobs
                if (j := self.jobs[pk]).max_parallel}
        return room or None

    def _dispatchable(self) -> bool:
        return any(
            (q := self.queues.get((s.key[0], s.key[1]))) is not None and q.jobs
            for s in self.sessions.values() if s.schedulable and s.free_slots > 0
        )

    def _assign(
        self, job_pk: int, task_pk: int, s: Session, info: dict[str, object], now: float,
        slots: int = 1,
    ) -> tuple[Attempt, int, agent_pb2.Assignment]:
        job = self.jobs[job_pk]
        retries, requeues, number = self._counters.pop(task_pk, (0, 0, 0))
        max_retries = info["max_retries"]
        a = Attempt(
            attempt_id=secrets.token_hex(8), task_pk=task_pk, job_pk=job_pk,
            number=number + 1, node_key=s.key, node_name=s.name, slots=slots, assign_time=now,
            retry_count=retries, requeue_count=requeues,
            max_retries=job.default_retries if max_retries is None else int(max_retries),  # type: ignore[call-overload]
            task_id=str(info["id"]), files=info["files"],  # type: ignore[arg-type]
            exits=info["exits"], priority=int(info["priority"]),  # type: ignore[arg-type, call-overload]
        )
        if slots != 1:
            self._slots.pop(task_pk, None)
        if a.priority:
            self._prio.pop(task_pk, None)
        self.attempts[a.attempt_id] = a
        s.attempts.add(a.attempt_id)  # its slot was taken by plan()
        self.store.assign(task_pk, a.attempt_id, a.number, s.name, now)
        job.counts.active -= 1
        job.counts.running += 1
        self._dirty.add(job_pk)
        if job.prep or job.release:
            job.nodes.add(s.key)
        return a, s.stream_id, convert.assignment(a, info, job)

    # -- attempts ---------------------------------------------------------------------------

    def _resolve(self, a: Attempt, rep: Report | None, now: float) -> None:
        """An attempt has ended (rep) or its node is gone (None): move its task on."""
        self.attempts.pop(a.attempt_id, None)
        s = self.sessions.get(a.node_key)
        if s is not None and a.attempt_id in s.attempts:
            s.attempts.discard(a.attempt_id)
            s.used_slots -= a.slots
            if rep is not None:
                s.completed_tasks += 1
            self._kick.set()
        job = self.jobs.get(a.job_pk)
        if job is None:
            return
        # Why we cancelled it, if we did: the attempt's record says that rather than the
        # agent's bare "cancelled" (or, with no report, rather than "lost").
        why = a.cancel_failure if a.cancel != CancelIntent.NONE else None
        lost = why or NODE_LOST
        if a.attempt_id in self._deleted_attempts:
            # Its task was deleted while it ran: only the slot and the count are left to free.
            self._deleted_attempts.discard(a.attempt_id)
            job.counts.running -= 1
            self._dirty.add(job.pk)
            return
        if rep is None:
            self.store.end_attempt(a.attempt_id, None, now, None, lost)
        else:
            recorded = why if why is not None and cancelled(rep) else rep.failure
            self.store.end_attempt(a.attempt_id, rep.start_time, rep.end_time, rep.exit_code, recorded)
        out = judge(rep, a, self.timing.max_requeue_count)
        if out.state == TaskState.ACTIVE and job.state not in OPEN_JOB_STATES:
            out = Outcome(TaskState.COMPLETED, Result.FAILURE, failure=JOB_TERMINATED)
        retries = a.retry_count + out.retried
        requeues = a.requeue_count + out.requeued
        job.counts.running -= 1
        job.counts.enter(out.state, out.result)
        self._dirty.add(job.pk)
        failure = out.failure if out.state == TaskState.COMPLETED else None
        exit_code = rep.exit_code if rep else None
        self.store.set_task_outcome(
            a.task_pk, out.state, now, result=out.result, retry_count=retries,
            requeue_count=requeues, start_time=rep.start_time if rep else a.start_time,
            end_time=(rep.end_time if rep else now) if out.state == TaskState.COMPLETED else None,
            exit_code=exit_code, failure=failure,
        )
        if out.state == TaskState.ACTIVE:
            self._counters[a.task_pk] = (retries, requeues, a.number)
            if a.priority:
                self._prio[a.task_pk] = a.priority
            if a.slots != 1:
                self._slots[a.task_pk] = a.slots
            # Retries and requeues go first: the job's oldest work should finish first.
            self._ready(job, a.task_pk, front=True)
        elif a.exits is not None or job.uses_deps or job.exit_job_actions:
            self._completed(job, a.task_pk, a.task_id, a.exits, out.result == Result.SUCCESS,
                            exit_code, failure.code if failure else None,
                            job_action=not out.by_cancel)
        log.debug("attempt resolved", job=job.id, attempt=a.attempt_id, node=a.node_name,
                 state=out.state.name, result=out.result.name if out.result else None,
                 exit_code=exit_code, retried=out.retried, requeued=out.requeued)

    def _completed(
        self, job: Job, task_pk: int, task_id: str, exits: bytes | None, succeeded: bool,
        exit_code: int | None, failure_code: str | None, *, job_action: bool = True,
    ) -> None:
        """A task of a job with dependencies or exit conditions completed: satisfy or block
        its dependents, and take the job action its exit conditions name."""
        rules = convert.exit_rules(task_pb2.ExitConditions.FromString(exits), "exits") if exits else None
        if job.uses_deps:
            satisfy, why = _satisfies(rules, succeeded, exit_code, failure_code, task_id)
            self._unfinished.get(job.pk, set()).discard(task_pk)
            self._outcomes[task_pk] = (satisfy, why)
            ready, blocked = self.deps.completed(task_pk, satisfy, why)
            for _, pk in ready:
                self._ready(job, pk)
            for pk in blocked:
                self.store.set_blocked(pk, why)
        # Only for ends the task produced itself: a task stopped by a user or by the service
        # (terminated, disabled, its node lost) does not take its job down with it.
        if job_action and job.exit_job_actions and job.state in OPEN_JOB_STATES:
            action = respond(rules, succeeded, exit_code, failure_code).job_action
            if action == JobAction.TERMINATE:
                self._end_job_tasks(job, "TaskFailed")
            elif action == JobAction.DISABLE and job.state == JobState.ACTIVE:
                self._disable(job, DisableOption.REQUEUE)

    def _cancel(self, attempts: list[Attempt], intent: CancelIntent, failure: Failure) -> None:
        by_node: dict[NodeKey, list[str]] = {}
        for a in attempts:
            _intend(a, intent, failure)
            by_node.setdefault(a.node_key, []).append(a.attempt_id)
        for key, ids in by_node.items():
            out = self._outbound.get(key)
            if out is not None:
                out.send(agent_pb2.SchedulerMessage(cancel_attempts=ids))

    # -- agent sessions ---------------------------------------------------------------------

    async def connect(
        self, key: NodeKey, pool_id: str, node_id: str, slots: int, hello: agent_pb2.Hello
    ) -> tuple[Session, int, Outbound, agent_pb2.SchedulerMessage]:
        now = self.now()
        old_out = self._outbound.pop(key, None)
        if old_out is not None:
            old_out.close()
            # The old stream may end after this one began: its reads end now, not at their
            # timeout (disconnect() skips a stream that is not the session's any more).
            self._fail_reads(key, "the node reconnected")
        s = self.sessions.get(key)
        if s is None:
            s = self.sessions[key] = Session(key, pool_id, node_id, slots, now)
        s.stream_id = next(self._streams)
        s.connected, s.liveness, s.last_seen = True, Liveness.CONNECTED, now
        s.total_slots, s.hostname = slots, hello.hostname
        s.setup_failure = convert.failure(hello.setup_failure) if hello.HasField("setup_failure") else None
        s.start_task_info = hello.start_task_info.SerializeToString() \
            if hello.HasField("start_task_info") else None
        if s.setup_failure is not None:
            log.warning("node setup failed: it takes no tasks", node=s.name,
                        code=s.setup_failure.code, message=s.setup_failure.message)
        reported = set(hello.running_attempts) | set(hello.finished_attempts)
        mine = [a for a in self.attempts.values() if a.node_key == key]
        for a in mine:
            if a.attempt_id not in reported:
                # Assigned but never received, or lost with an earlier life of the agent.
                self._resolve(a, None, now)
        s.attempts = {a.attempt_id for a in mine if a.attempt_id in reported}
        s.used_slots = sum(self.attempts[i].slots for i in s.attempts)
        unwanted = [
            i for i in hello.running_attempts
            if i not in self.attempts or self.attempts[i].node_key != key
            or self.attempts[i].cancel != CancelIntent.NONE
        ]
        out = self._outbound[key] = Outbound()
        welcome = agent_pb2.SchedulerMessage(welcome=agent_pb2.Welcome(
            heartbeat_interval=to_duration(self.timing.heartbeat_interval),
            cancel_attempts=unwanted, upload_logs=self.storage is not None))
        if s.removing:
            welcome.drain.leave = False
        for job in self._ended_away.pop(key, []):
            self._spawn(self._send_job_ended(job, [key]))
        await self._commit()
        self._kick.set()
        log.info("node connected", node=s.name, account=key[0], slots=slots,
                 running=len(s.attempts), cancelled=len(unwanted))
        return s, s.stream_id, out, welcome

    async def on_agent_message(self, s: Session, stream_id: int, msg: agent_pb2.AgentMessage) -> None:
        if s.stream_id != stream_id:
            return
        now = self.now()
        s.last_seen = now
        if s.liveness == Liveness.UNREACHABLE:
            s.liveness = Liveness.CONNECTED
            self._kick.set()
        for chunk in msg.file_chunks:
            read = self._reads.get(chunk.request_id)
            if read is not None and read.key == s.key:
                read.chunks.put_nowait(chunk)
        if msg.staging_requests:
            # Off the message path: the stager's answer must not hold up results and acks.
            self._spawn(self._grant(s.key, list(msg.staging_requests)))
        if msg.HasField("start_task_info"):
            s.start_task_info = msg.start_task_info.SerializeToString()
        if msg.node_errors:
            s.errors = (s.errors + [e.SerializeToString() for e in msg.node_errors])[-MAX_NODE_ERRORS:]
        for st in msg.started:
            a = self.attempts.get(st.attempt_id)
            if a is not None and a.node_key == s.key and a.start_time is None:
                a.start_time = st.start_time.ToNanoseconds() / 1e9
                self.store.started(a.task_pk, a.attempt_id, a.start_time, now)
        if not msg.results:
            if msg.started:
                await self._commit()
            return
        acks = []
        for r in msg.results:
            a = self.attempts.get(r.attempt_id)
            if a is not None and a.node_key == s.key:
                self._resolve(a, convert.report(r, now), now)
            # else: stale (requeued, or its job is gone) — acknowledged and ignored: fencing.
            acks.append(r.attempt_id)
        await self._commit()
        out = self._outbound.get(s.key)
        if out is not None and s.stream_id == stream_id:
            out.send(agent_pb2.SchedulerMessage(ack_attempts=acks))

    async def _grant(self, key: NodeKey, reqs: list[agent_pb2.StagingRequest]) -> None:
        """Answer an agent's staging requests with the stager's URLs, for attempts that are
        still assigned to that node — a grant is scoped to exactly one live attempt."""
        grants: list[agent_pb2.StagingGrant] = []
        downloads: list[tuple[agent_pb2.StagingRequest, Attempt]] = []
        uploads: list[tuple[agent_pb2.StagingRequest, Attempt, Job]] = []
        for r in reqs:
            a = self.attempts.get(r.attempt_id)
            job = self.jobs.get(a.job_pk) if a is not None else None
            if a is None or a.node_key != key or job is None:
                grants.append(staging.failed_grant(
                    r, "the attempt is no longer assigned to this node", "ATTEMPT_NOT_ASSIGNED"))
            elif self.storage is None:
                grants.append(staging.failed_grant(r, "storage is not configured"))
            elif r.kind == agent_pb2.DOWNLOADS and r.job_task == agent_pb2.JOB_PREPARATION:
                if not job.prep:
                    grants.append(staging.failed_grant(r, "the job has no preparation task"))
                else:
                    downloads.append((r, a))
            elif r.kind == agent_pb2.DOWNLOADS:
                downloads.append((r, a))
            elif r.kind == agent_pb2.UPLOADS:
                uploads.append((r, a, job))
            else:
                grants.append(staging.failed_grant(
                    r, f"unknown staging kind {r.kind}", "INVALID_STAGING_REQUEST"))
        account = key[0]
        if downloads and self.storage is not None:
            try:
                got = await self.storage.grant_downloads(account, [
                    staging.prep_download_spec(self.jobs[a.job_pk].prep)
                    if r.job_task == agent_pb2.JOB_PREPARATION else staging.download_spec(a.files)
                    for r, a in downloads])
                grants += [staging.download_grant(r, g) for (r, _), g in zip(downloads, got, strict=True)]
            except StagingUnavailable as e:
                # Nothing ran yet: put the task back rather than charge the user for our outage.
                grants += [staging.failed_grant(r, str(e), STORAGE_UNAVAILABLE) for r, _ in downloads]
        if uploads and self.storage is not None:
            try:
                ups = await self.storage.grant_uploads(account, [
                    staging.upload_spec(job.id, job.pk, a.task_id, a.files, r)
                    for r, a, job in uploads])
                grants += [staging.upload_grant(r, g) for (r, _, _), g in zip(uploads, ups, strict=True)]
            except StagingUnavailable as e:
                grants += [staging.failed_grant(r, str(e)) for r, _, _ in uploads]
        # The awaits above let the world move: URLs go only to attempts still on this node.
        grants = [g for g in grants if g.HasField("failure") or (
            (a := self.attempts.get(g.attempt_id)) is not None and a.node_key == key)]
        out = self._outbound.get(key)
        if out is not None and grants:
            out.send(agent_pb2.SchedulerMessage(staging_grants=grants))

    async def disconnect(self, s: Session, stream_id: int) -> None:
        """The stream ended. The session stays (with its attempts and its `removing` flag): the
        agent may reconnect, and if it does not, liveness declares it lost."""
        if s.stream_id != stream_id:
            return
        s.connected = False
        self._outbound.pop(s.key, None)
        self._fail_reads(s.key, "the node disconnected")
        log.info("node disconnected", node=s.name, account=s.key[0])

    def _fail_reads(self, key: NodeKey, why: str) -> None:
        for rid, read in list(self._reads.items()):
            if read.key == key:
                read.chunks.put_nowait(agent_pb2.FileChunk(
                    request_id=rid, eof=True, offset=NODE_GONE, error=why))

    async def set_node_scheduling(
        self, account: str, pool_id: str, node_id: str, enabled: bool, option: int
    ) -> None:
        """SetNodeScheduling from the pool-manager. Disabling keeps new work off the node and
        requeues (REQUEUE: not a retry), fails (TERMINATE) or lets finish (TASK_COMPLETION)
        what runs there; a node not connected now has its attempts marked, to be cancelled
        when it says hello or resolved when it is lost. The flag lives on the session, so it
        survives reconnects; a node with no session yet is told again by the pool-manager
        once its session shows up without the flag."""
        key = (account, pool_id.lower(), node_id)
        s = self.sessions.get(key)
        if s is None or (enabled and not s.scheduling_disabled):
            return
        s.scheduling_disabled = not enabled
        if enabled:
            log.info("node scheduling enabled", node=s.name, account=account)
            self._kick.set()
            return
        attempts = [a for a in self.attempts.values() if a.node_key == key]
        if option == pool_pb2.TERMINATE:
            self._cancel(attempts, CancelIntent.TERMINATE, NODE_DISABLED_TERMINATE)
        elif option != pool_pb2.TASK_COMPLETION:
            # Because of its node, like a removal: counted as a requeue.
            self._cancel(attempts, CancelIntent.REQUEUE, NODE_DISABLED_REQUEUE)
        log.info("node scheduling disabled", node=s.name, account=account, attempts=len(attempts),
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
        now = self.now()
        expired = [j for j in self.jobs.values() if j.max_wall_clock is not None
                   and j.state in OPEN_JOB_STATES and now - j.create_time >= j.max_wall_clock]
        for job in expired:
            log.info("job ran out of wall clock time", job=job.id, account=job.account)
            self._end_job_tasks(job, "MaxWallClockTimeExpiry")
        if expired:
            await self._commit()
        t = self.timing
        unreachable, lost = check_liveness(
            list(self.sessions.values()), now, t.unreachable_after, t.lost_after
        )
        for s in unreachable:
            log.warning("node unreachable", node=s.name, account=s.key[0], silent=now - s.last_seen)
        changed = False
        for s in lost:
            log.warning("node lost; requeueing its tasks", node=s.name, account=s.key[0],
                        attempts=len(s.attempts))
            for aid in list(s.attempts):
                a = self.attempts.get(aid)
                if a is not None:
                    self._resolve(a, None, now)
                    changed = True
            out = self._outbound.pop(s.key, None)
            if out is not None:
                # A silent node that wakes up must say hello again, so what it still runs is
                # reconciled (and cancelled) rather than trusted.
                out.close()
            s.connected = False
            if s.removing:
                del self.sessions[s.key]  # the pool-manager is taking it away: forget it
                self._ended_away.pop(s.key, None)
        if now - self._started_at >= t.reconnect_grace:
            # Attempts recorded before a restart on nodes that never came back.
            for a in [a for a in self.attempts.values() if a.node_key not in self.sessions]:
                self._resolve(a, None, now)
                changed = True
            for k in [k for k in self._ended_away if k not in self.sessions]:
                del self._ended_away[k]  # not back: nothing left there to release
        if changed:
            await self._commit()

    # -- node control (for the pool-manager) -------------------------------------------------

    def node_sessions(self, account: str, pool_id: str) -> list[Session]:
        p = pool_id.lower()
        return [s for k, s in self.sessions.items() if k[0] == account and k[1] == p]

    async def remove_nodes(self, account: str, pool_id: str, node_ids: list[str], option: int) -> None:
        """Take nodes out of scheduling. Running tasks finish (TASK_COMPLETION), or are
        cancelled and requeued (REQUEUE) or failed (TERMINATE). A node that is not connected
        is taken to be gone: its attempts are resolved now."""
        now = self.now()
        p = pool_id.lower()
        for node_id in node_ids:
            key = (account, p, node_id)
            s = self.sessions.get(key)
            attempts = [a for a in self.attempts.values() if a.node_key == key]
            if s is not None:
                s.removing = True
            if key not in self._outbound:
                self._ended_away.pop(key, None)  # leaving while away: it will not be back
            out = self._outbound.get(key)
            if out is not None:
                out.send(agent_pb2.SchedulerMessage(drain=agent_pb2.Drain(leave=False)))
            if option == pool_pb2.TASK_COMPLETION:
                pass  # they finish; if the node is lost meanwhile, liveness requeues them
            else:
                intent, why = ((CancelIntent.TERMINATE, NODE_REMOVED) if option == pool_pb2.TERMINATE
                               else (CancelIntent.REQUEUE, NODE_REMOVED_REQUEUE))
                if out is not None:
                    self._cancel(attempts, intent, why)
                else:
                    for a in attempts:
                        _intend(a, intent, why)
                        self._resolve(a, None, now)
            log.info("node removing", node=f"pools/{pool_id}/nodes/{node_id}", account=account,
                     option=pool_pb2.NodeDeallocationOption.Name(option), attempts=len(attempts))
        await self._commit()


def _dep_outcome(row: object) -> tuple[bool, str]:
    """(satisfies its dependents, why not) of a task that completed before this process
    started, from its row."""
    r = row  # an aiosqlite.Row of Store.dep_rows
    exits = r["exits"]  # type: ignore[index]
    rules = convert.exit_rules(task_pb2.ExitConditions.FromString(exits), "exits") if exits else None
    return _satisfies(rules, r["result"] == Result.SUCCESS, r["exit_code"], r["failure_code"],  # type: ignore[index]
                      r["id"])  # type: ignore[index]


def _satisfies(
    rules: object, succeeded: bool, exit_code: int | None, failure_code: str | None, task_id: str
) -> tuple[bool, str]:
    resp = respond(rules, succeeded, exit_code, failure_code)  # type: ignore[arg-type]
    if resp.dependency_action == resp.dependency_action.SATISFY:
        return True, ""
    how = (f"exit code {exit_code}" if exit_code is not None
           else failure_code or "no exit code")
    return False, f"dependency {task_id} {'succeeded' if succeeded else 'failed'} ({how})"
