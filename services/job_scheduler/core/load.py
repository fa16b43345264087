"""Rebuilding the core's state from what the store holds, at start."""

from __future__ import annotations

from typing import NamedTuple

from services.job_scheduler.core.failures import JOB_TERMINATED
from services.job_scheduler.core.plan import Plan
from services.job_scheduler.core.state import CoreState, is_open
from services.job_scheduler.model import (
    ActiveRow,
    Attempt,
    CancelIntent,
    DepRow,
    Job,
    LiveRow,
    Pending,
)


class Snapshot(NamedTuple):
    jobs: list[Job]
    """Every job, its counts counted from the task rows."""
    active: list[ActiveRow]
    """Every ACTIVE task, oldest first."""
    live: list[LiveRow]
    """Every attempt of a PREPARING or RUNNING task."""
    dep_rows: dict[int, dict[str, DepRow]]
    """job_pk -> id_lower -> the tasks that its waiting tasks name."""
    job_nodes: list[tuple[int, str]]
    """(job, node name) of nodes given tasks of jobs with a preparation or release task."""


def node_key(account: str, node_name: str) -> tuple[str, str, str]:
    _, pool_id, _, node_id = node_name.split("/")
    return (account, pool_id.lower(), node_id)


class Load(CoreState):
    def load(self, snap: Snapshot, now: float) -> Plan:
        self._begin()
        self.started_at = now
        for job in snap.jobs:
            self.jobs[job.pk] = job
            self.job_keys[(job.account, job.id.lower())] = job.pk
            if job.uses_deps:
                self.deps.unfinished[job.pk] = set()
        waiting: list[tuple[Job, ActiveRow]] = []
        ended: dict[int, list[int]] = {}
        for r in snap.active:
            owner = self.jobs.get(r.job_pk)
            if owner is None:
                continue  # a row without its job: never scheduled, never counted
            job = owner
            if not is_open(job):
                # Only a crash between a job's end and its tasks' can leave these.
                ended.setdefault(job.pk, []).append(r.task_pk)
                continue
            p = Pending(r.priority, r.slots, r.retry_count, r.requeue_count, r.attempt_number)
            if not p.plain:
                self.pending[r.task_pk] = p
            if job.uses_deps:
                self.deps.unfinished[job.pk].add(r.task_pk)
            if r.deps:
                waiting.append((job, r))
            else:
                self._ready(job, r.task_pk)
        for job_pk, pks in ended.items():
            self._fail_active(self.jobs[job_pk], pks, JOB_TERMINATED, now)
        for row in snap.live:
            owning = self.jobs.get(row.job_pk)
            if owning is not None and owning.uses_deps:
                self.deps.unfinished[owning.pk].add(row.task_pk)
        self._load_waiting(waiting, snap.dep_rows)
        # A COMPLETED job's nodes were told when it ended; telling them again would rerun
        # its release task.
        for job_pk, node in snap.job_nodes:
            job = self.jobs[job_pk]
            job.nodes.add(node_key(job.account, node))
        for row in snap.live:
            live_job = self.jobs.get(row.job_pk)
            if live_job is None:
                continue
            job = live_job
            ended_job = not is_open(job)
            self.attempts[row.attempt_id] = Attempt(
                attempt_id=row.attempt_id, task_pk=row.task_pk, job_pk=row.job_pk,
                number=row.attempt_number, node_key=node_key(job.account, row.node),
                node_name=row.node, slots=row.slots, assign_time=row.assign_time,
                retry_count=row.retry_count, requeue_count=row.requeue_count,
                max_retries=job.default_retries if row.max_retries is None else row.max_retries,
                start_time=row.start_time, task_id=row.id, files=row.files,
                exits=row.exits, priority=row.priority, retries_of_job=row.max_retries is None,
                max_wall_clock=row.max_wall_clock, retention=row.retention,
                # Updated since it was assigned: whether its node heard is not known.
                constraints_changed=(row.settings_time is not None
                                     and row.settings_time >= row.assign_time),
                cancel=CancelIntent.TERMINATE if ended_job else CancelIntent.NONE,
                cancel_failure=JOB_TERMINATED if ended_job else None,
            )
        return self._finish(now)

    def _load_waiting(
        self, waiting: list[tuple[Job, ActiveRow]], dep_rows: dict[int, dict[str, DepRow]]
    ) -> None:
        """Tasks that waited for others when the scheduler stopped: what they still wait for,
        and what blocks them, from the rows of what they depend on."""
        for job, r in waiting:
            rows = dep_rows.get(job.pk, {})
            unfinished = self.deps.unfinished.get(job.pk, set())
            pending: list[int] = []
            failed: dict[int, str] = {}
            for d in r.deps:
                dep = rows.get(d)
                if dep is None:
                    continue  # deleted after it completed: nothing to wait for
                if dep.task_pk in unfinished:
                    pending.append(dep.task_pk)
                else:
                    satisfy, why = self.dep_outcome(dep)
                    if not satisfy:
                        failed[dep.task_pk] = why
            if not self.deps.add(r.task_pk, job.pk, pending, failed, r.unblocked):
                self._ready(job, r.task_pk)
