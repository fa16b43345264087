"""Job schedules' use cases: create, read, disable, enable, terminate and delete schedules for
clients, and the loop that creates their jobs when they come due.

Jobs are made through the Scheduler's public use cases (create_job, create_tasks, get_job,
terminate_job, delete_job), exactly as a client's CreateJob and CreateTask would make them.
The rules of when are pure (services.job_scheduler.schedules).

Creating a run is two steps in another store (the job, then its tasks), so the schedule row
records the job only once the job exists, with `pending` set until its tasks are added too. A
crash in between is finished at the next start: a job `{id}-{n}` of this schedule found where
the next job would go is adopted, a pending one gets its tasks. No run is lost or made twice.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from services.common.errors import Code, ShoalError, failed_precondition, not_found
from services.common.timeutil import Clock
from services.job_scheduler import schedule_convert
from services.job_scheduler.engine import Engine
from services.job_scheduler.model import Job, JobState
from services.job_scheduler.schedule_store import ScheduleStore
from services.job_scheduler.schedules import (
    Action,
    JobSchedule,
    ScheduleState,
    decide,
    first_run,
    job_created,
    job_id,
    set_state,
)
from shoal.cluster_config import SchedulerTiming
from shoal.v1 import job_schedule_pb2

log = structlog.get_logger()

TICK = 1.0
"""Seconds between passes of the loop; it is also woken by a create or an enable."""
RETRY_AFTER = 5.0
"""Seconds before a run whose job could not be created is tried again."""
MAX_ID_SKIPS = 100
"""Job ids `{id}-{n}` already taken by other jobs that one run skips before it gives up."""
TERMINATE_REASON = "JobScheduleTerminated"
GONE = {"JOB_NOT_FOUND", "JOB_NOT_ACTIVE", "JOB_COMPLETED", "TASK_ALREADY_EXISTS"}
"""Errors that mean a run's job or tasks need nothing more from us."""


class JobSchedules:
    def __init__(
        self, store: ScheduleStore, jobs: Engine, timing: SchedulerTiming, clock: Clock,
        tick: float = TICK,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.min_interval = timing.min_recurrence_interval
        self.now = clock
        self.tick_seconds = tick
        self.schedules: dict[tuple[str, str], JobSchedule] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._retry_at: dict[tuple[str, str], tuple[float, str]] = {}
        """Schedules whose last run failed: when to try again, and the error (logged once)."""
        self._kick = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    # -- start / stop -----------------------------------------------------------------------

    async def load(self) -> None:
        for s in await self.store.load():
            self.schedules[s.key] = s
        log.info("job schedules loaded", schedules=len(self.schedules))

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="job-schedules")
        self._kick.set()

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)

    def _lock(self, s: JobSchedule) -> asyncio.Lock:
        return self._locks.setdefault(s.key, asyncio.Lock())

    # -- use cases --------------------------------------------------------------------------

    async def create(
        self, account: str, req: job_schedule_pb2.CreateJobScheduleRequest
    ) -> JobSchedule:
        sid, display, rule, spec = schedule_convert.create_request(req, self.min_interval)
        key = (account, sid.lower())
        old = self.schedules.get(key)
        if old is not None:
            if old.deleting:
                raise ShoalError(Code.FAILED_PRECONDITION, "JOB_SCHEDULE_BEING_DELETED",
                                 f"job schedule {old.id!r} is being deleted; try again shortly")
            raise ShoalError(Code.ALREADY_EXISTS, "JOB_SCHEDULE_ALREADY_EXISTS",
                             f"job schedule {sid!r} already exists")
        now = self.now()
        s = JobSchedule(
            account=account, id=sid, rule=rule, spec=spec, state=ScheduleState.ACTIVE,
            create_time=now, state_time=now, next_run=first_run(rule, now), display_name=display,
        )
        self.schedules[key] = s  # at once: the id is taken
        async with self._lock(s):  # the loop takes it up once its row is written
            try:
                await self.store.insert(s)
            except BaseException:
                self.schedules.pop(key, None)
                raise
        log.info("job schedule created", job_schedule=sid, account=account,
                 interval=rule.interval, cron=rule.cron or None, next_run=s.next_run)
        self._kick.set()
        return s

    def get(self, account: str, schedule_id: str) -> JobSchedule:
        s = self.schedules.get((account, schedule_id.lower()))
        if s is None or s.deleting:
            raise not_found("job_schedule", f"jobSchedules/{schedule_id}")
        return s

    def list(self, account: str, after: str | None, limit: int) -> list[JobSchedule]:
        found = sorted(
            (s for s in self.schedules.values()
             if s.account == account and not s.deleting and (after is None or s.id > after)),
            key=lambda s: s.id,
        )
        return found[:limit]

    async def disable(self, account: str, schedule_id: str) -> JobSchedule:
        s = self.get(account, schedule_id)
        async with self._lock(s):
            self._check_open(s)
            set_state(s, ScheduleState.DISABLED, self.now())
            await self.store.save(s)
        log.info("job schedule disabled", job_schedule=s.id, account=account)
        return s

    async def enable(self, account: str, schedule_id: str) -> JobSchedule:
        s = self.get(account, schedule_id)
        async with self._lock(s):
            self._check_open(s)
            set_state(s, ScheduleState.ACTIVE, self.now())
            await self.store.save(s)
        log.info("job schedule enabled", job_schedule=s.id, account=account)
        self._kick.set()
        return s

    async def terminate(self, account: str, schedule_id: str) -> JobSchedule:
        s = self.get(account, schedule_id)
        async with self._lock(s):
            self._check_open(s)
            set_state(s, ScheduleState.COMPLETED, self.now())
            s.pending = False
            await self.store.save(s)
            if self._job_active(s):
                with contextlib.suppress(ShoalError):  # it ended or went meanwhile
                    await self.jobs.terminate_job(account, s.recent_job, TERMINATE_REASON)
        log.info("job schedule terminated", job_schedule=s.id, account=account,
                 job=s.recent_job or None)
        return s

    async def delete(self, account: str, schedule_id: str) -> None:
        s = self.get(account, schedule_id)
        async with self._lock(s):
            if self.schedules.get(s.key) is not s:
                return  # deleted while this call waited
            s.deleting = True
            await self.store.save(s)
            await self._finish_delete(s)

    def _check_open(self, s: JobSchedule) -> None:
        """Under the schedule's lock: it may have been deleted while the caller waited for
        it (and created again: its row is another schedule's now)."""
        if s.deleting or self.schedules.get(s.key) is not s:
            raise not_found("job_schedule", f"jobSchedules/{s.id}")
        if s.state == ScheduleState.COMPLETED:
            raise failed_precondition("JOB_SCHEDULE_COMPLETED",
                                      f"job schedule {s.id!r} is completed")

    # -- the loop ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout: on 3.11 wait_for can swallow the stop's cancellation when
                # it arrives as the event is set.
                async with asyncio.timeout(self.tick_seconds):
                    await self._kick.wait()
            self._kick.clear()
            await self.tick()

    async def tick(self) -> None:
        """One pass over every schedule: finish deletes and runs, create due jobs, complete
        schedules that are done."""
        for s in list(self.schedules.values()):
            try:
                async with self._lock(s):
                    if self.schedules.get(s.key) is s:
                        await self._step(s)
            except Exception:
                log.exception("job schedule step failed", job_schedule=s.id, account=s.account)

    async def _step(self, s: JobSchedule) -> None:
        if s.deleting:
            await self._finish_delete(s)
            return
        if s.pending:
            await self._add_tasks(s)
        if s.state == ScheduleState.COMPLETED:
            return
        now = self.now()
        action = decide(s, now, self._job_active(s))
        if action == Action.COMPLETE:
            set_state(s, ScheduleState.COMPLETED, now)
            await self.store.save(s)
            log.info("job schedule completed", job_schedule=s.id, account=s.account,
                     jobs_created=s.jobs_created)
        elif action == Action.CREATE_JOB:
            retry = self._retry_at.get(s.key)
            if retry is None or now >= retry[0]:
                await self._run(s, now)

    def _job_active(self, s: JobSchedule) -> bool:
        """Whether the schedule's most recent job exists and has not completed."""
        job = self._own_job(s, s.recent_job)
        return job is not None and job.state not in (JobState.COMPLETED, JobState.DELETING)

    def _own_job(self, s: JobSchedule, jid: str) -> Job | None:
        """The job `jid` if it exists and this schedule made it."""
        if not jid:
            return None
        try:
            job = self.jobs.get_job(s.account, jid)
        except ShoalError as e:
            if e.code == Code.NOT_FOUND:
                return None
            raise
        return job if job.schedule_id.lower() == s.id.lower() else None

    async def _run(self, s: JobSchedule, now: float) -> None:
        """Create the job of the run that is due, then its tasks."""
        number = s.job_number + 1
        for _ in range(MAX_ID_SKIPS):
            jid = job_id(s.id, number)
            if self._own_job(s, jid) is not None:
                # Made by an earlier life of this process that stopped before recording it.
                log.info("job schedule adopts its job", job_schedule=s.id, job=jid)
                break
            try:
                self.jobs.get_job(s.account, jid)
            except ShoalError as e:
                if e.code != Code.NOT_FOUND:
                    raise
                if not await self._create_job(s, jid, now):
                    return
                break
            number += 1  # a job of someone else's has this id: the schedule skips it
        else:
            self._failed(s, now, f"job ids {s.id}-{s.job_number + 1}.. are all taken")
            return
        self._retry_at.pop(s.key, None)
        job_created(s, now, jid, number)
        await self.store.save(s)
        log.info("job schedule created a job", job_schedule=s.id, account=s.account, job=jid,
                 next_run=s.next_run)
        await self._add_tasks(s)

    async def _create_job(self, s: JobSchedule, jid: str, now: float) -> bool:
        req, _ = schedule_convert.job_request(s, jid)
        try:
            await self.jobs.create_job(s.account, req, schedule_id=s.id)
        except ShoalError as e:
            # The job waits for a better moment (the pool may come back; a job of that id
            # may have been taken meanwhile): the run stays due and is tried again.
            self._failed(s, now, f"{e.reason}: {e.message}")
            return False
        return True

    def _failed(self, s: JobSchedule, now: float, error: str) -> None:
        last = self._retry_at.get(s.key)
        if last is None or last[1] != error:
            log.warning("job schedule cannot create its job; will retry", job_schedule=s.id,
                        account=s.account, error=error)
        self._retry_at[s.key] = (now + RETRY_AFTER, error)

    async def _add_tasks(self, s: JobSchedule) -> None:
        _, specs = schedule_convert.job_request(s, s.recent_job)
        if specs and self._own_job(s, s.recent_job) is not None:
            try:
                await self.jobs.create_tasks(s.account, s.recent_job, specs)
            except ShoalError as e:
                # GONE: added before a restart, or the job ended or went. Anything else is
                # not going to change by trying again: the job stays, without them.
                if e.reason not in GONE:
                    log.warning("job schedule could not add its tasks", job_schedule=s.id,
                                account=s.account, job=s.recent_job, error=e.message)
        s.pending = False
        await self.store.save(s)

    async def _finish_delete(self, s: JobSchedule) -> None:
        low = s.id.lower()
        mine = [j.id for j in self.jobs.list_jobs(s.account, None, None, 1 << 62)
                if j.schedule_id.lower() == low]
        for jid in mine:
            try:
                await self.jobs.delete_job(s.account, jid)
            except ShoalError as e:
                if e.code != Code.NOT_FOUND:
                    raise
        await self.store.delete(s)
        self.schedules.pop(s.key, None)
        self._retry_at.pop(s.key, None)
        self._locks.pop(s.key, None)
        log.info("job schedule deleted", job_schedule=s.id, account=s.account, jobs=len(mine))
