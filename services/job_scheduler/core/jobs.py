"""Job events: create, update, terminate, disable, enable, delete (Azure Batch's job
operations)."""

from __future__ import annotations

from services.common.errors import Code, ShoalError, failed_precondition, invalid
from services.common.updates import require
from services.job_scheduler.core.failures import (
    JOB_TERMINATED,
)
from services.job_scheduler.core.plan import (
    DeleteJob,
    InsertJob,
    JobAdded,
    JobChanged,
    JobRemoved,
    Plan,
    UpdateJobSettings,
)
from services.job_scheduler.core.state import CoreState, is_open
from services.job_scheduler.model import (
    CancelIntent,
    DisableOption,
    Job,
    JobChanges,
    JobState,
    OnAllTasksComplete,
)

MAX_REASON = 256


class JobEvents(CoreState):
    def check_new_job(self, account: str, job_id: str) -> None:
        if (account, job_id.lower()) in self.job_keys:
            raise ShoalError(Code.ALREADY_EXISTS, "JOB_ALREADY_EXISTS",
                             f"job {job_id!r} already exists")

    def create_job(self, job: Job, now: float) -> Plan:
        """A job the engine built from a checked request and its pool."""
        self.check_new_job(job.account, job.id)
        self._begin()
        if job.uses_deps:
            self.deps.unfinished[job.pk] = set()
        self.jobs[job.pk] = job
        self.job_keys[(job.account, job.id.lower())] = job.pk
        self._row(InsertJob(job))
        self._plan.events.append(JobAdded(job))
        self._plan.reply = job
        return self._finish(now)

    def list_jobs(
        self, account: str, states: set[str] | None, after: str | None, limit: int
    ) -> list[Job]:
        jobs = sorted(
            (j for j in self.jobs.values() if j.account == account
             and (states is None or j.state.name in states) and (after is None or j.id > after)),
            key=lambda j: j.id,
        )
        return jobs[:limit]

    def update_job(
        self, account: str, job_id: str, changes: JobChanges, if_match: str, now: float
    ) -> Plan:
        """Azure Batch's Job - Patch: only `changes.fields` change, and they act at once."""
        job = self.job(account, job_id)
        require(f"job {job.id!r}", job.etag, if_match)
        if job.state == JobState.COMPLETED:
            raise failed_precondition("JOB_COMPLETED",
                                      f"job {job.id!r} is completed: it cannot be updated")
        if job.state == JobState.TERMINATING:
            raise failed_precondition("JOB_BEING_TERMINATED",
                                      f"job {job.id!r} is being terminated: it cannot be updated")
        if ("on_all_tasks_complete" in changes.fields
                and job.on_all_tasks_complete == OnAllTasksComplete.TERMINATE_JOB
                and changes.on_all_tasks_complete == OnAllTasksComplete.NO_ACTION):
            raise invalid("job.on_all_tasks_complete",
                          "cannot go back from TERMINATE_JOB to NO_ACTION (as in Azure Batch)")
        self._begin()
        changed = changes.changed(job)
        for name in changed:
            setattr(job, name, getattr(changes, name))
        if changed:
            self._revise(job, now)
            self._row(UpdateJobSettings(job))
            self._plan.events.append(JobChanged(job.account, job.id, job.state))
        if "priority" in changed:
            self._queue(job).reprioritize(job.pk, job.priority)
        if changed & {"priority", "max_parallel"}:
            self._kick()  # more of its tasks may start now, or before another job's
        if "default_retries" in changed:
            for a in self._attempts_of_job(job):
                if a.retries_of_job:
                    a.max_retries = job.default_retries
        if (job.max_wall_clock is not None and is_open(job)
                and now - job.create_time >= job.max_wall_clock):
            self._end_job_tasks(job, "MaxWallClockTimeExpiry", now)
        # A job now set to end when its tasks are done, whose tasks are all done, ends in
        # _finish, as one whose last task just completed does.
        self._plan.reply = job
        return self._finish(now)

    def terminate_job(self, account: str, job_id: str, reason: str, now: float) -> Plan:
        if len(reason) > MAX_REASON:
            raise invalid("reason", f"must be at most {MAX_REASON} characters")
        job = self.job(account, job_id)
        if job.state in (JobState.COMPLETED, JobState.TERMINATING):
            raise failed_precondition("JOB_COMPLETED",
                                      f"job {job.id!r} is already {job.state.name.lower()}")
        self._begin()
        self._end_job_tasks(job, reason or "UserTerminate", now)
        self._plan.reply = job
        return self._finish(now)

    def disable_job(self, account: str, job_id: str, option: int, now: float) -> Plan:
        job = self.job(account, job_id)
        if job.state != JobState.ACTIVE:
            raise failed_precondition("JOB_NOT_ACTIVE", f"job {job.id!r} is {job.state.name.lower()}: "
                                      "only an active job can be disabled")
        try:
            opt = DisableOption(option or DisableOption.REQUEUE)
        except ValueError:
            raise invalid("disable_tasks", f"unknown option {option}") from None
        self._begin()
        self._disable(job, opt, now)
        self._plan.reply = job
        return self._finish(now)

    def enable_job(self, account: str, job_id: str, now: float) -> Plan:
        job = self.job(account, job_id)
        if job.state not in (JobState.DISABLED, JobState.DISABLING):
            raise failed_precondition("JOB_NOT_DISABLED", f"job {job.id!r} is {job.state.name.lower()}, "
                                      "not disabled")
        self._begin()
        self._set_job_state(job, JobState.ACTIVE, now)
        for pk in self.parked.pop(job.pk, []):
            self._ready(job, pk)
        self._plan.reply = job
        return self._finish(now)

    def delete_job(self, job: Job, now: float) -> Plan:
        """Forget the job and its tasks; its running attempts are stopped and their results,
        when they come, find no job and only free their slots."""
        self._begin()
        if self.jobs.get(job.pk) is not job:
            return self._finish(now)  # deleted meanwhile
        job.state = JobState.DELETING
        self._plan.events.append(JobChanged(job.account, job.id, JobState.DELETING))
        self._drop_active(job)
        self.deps.unfinished.pop(job.pk, None)
        self._cancel(self._attempts_of_job(job), CancelIntent.TERMINATE, JOB_TERMINATED)
        self._job_ended(job, now)
        del self.jobs[job.pk]
        del self.job_keys[(job.account, job.id.lower())]
        self._touched.discard(job.pk)
        self._row(DeleteJob(job.pk))
        self._plan.events.append(JobRemoved(job))
        return self._finish(now)
