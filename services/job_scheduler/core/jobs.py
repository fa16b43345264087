"""Job events: create, terminate, disable, enable, delete (Azure Batch's job operations)."""

from __future__ import annotations

from services.common.errors import Code, ShoalError, failed_precondition, invalid
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
)
from services.job_scheduler.core.state import CoreState
from services.job_scheduler.model import CancelIntent, DisableOption, Job, JobState

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
