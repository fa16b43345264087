"""Why a task is where it is (`shoal task why`; beyond Azure Batch), read from the core's
state. Pure: it changes nothing."""

from __future__ import annotations

from typing import NamedTuple

from services.job_scheduler.core.state import CoreState, is_open
from services.job_scheduler.model import (
    CancelIntent,
    Job,
    JobState,
    StorageWait,
    TaskRecord,
    TaskState,
)


class Explanation(NamedTuple):
    task: TaskRecord
    summary: str
    reasons: list[str]
    """UPPER_SNAKE codes, most important first."""
    details: list[str]


class Explain(CoreState):
    def explain(self, job: Job, t: TaskRecord, pool_exists: bool = True) -> Explanation:
        """`pool_exists` is False when the pool-manager says the job's pool is gone (or being
        deleted): as in
        Azure Batch the job stays active and keeps its tasks, which wait for a pool of that
        id."""
        details: list[str] = []
        if t.state == TaskState.COMPLETED:
            result = t.result.name.lower() if t.result else "?"
            why = f": {t.failure.code} — {t.failure.message}" if t.failure else (
                f" with exit code {t.exit_code}" if t.exit_code is not None else "")
            return Explanation(t, f"completed ({result}){why}", ["COMPLETED"], details)
        if t.state in (TaskState.PREPARING, TaskState.RUNNING):
            return self._explain_assigned(job, t)
        if not is_open(job):
            return Explanation(t, f"the job is {job.state.name.lower()}", ["JOB_NOT_ACTIVE"], details)
        reasons: list[str] = []
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
        if not pool_exists:
            reasons.append("POOL_NOT_FOUND")
            details.append(f"pool {job.pool_id!r} does not exist (it was deleted): the job's "
                           "tasks wait until a pool of that id is created, or terminate the job")
        else:
            self._explain_nodes(job, t, reasons, details)
        queue = self.queues.get(job.pool_key)
        if queue is not None and not reasons:
            order = queue.peek(len(queue))
            ahead = order.index(t.pk) if t.pk in order else -1
            if ahead > 0:
                reasons.append("QUEUED_BEHIND")
                details.append(f"{ahead} ready task(s) go before it (job priority, task "
                               "priority, then age)")
        if not reasons:
            reasons.append("QUEUED")
            details.append("ready: it goes to the next free slot")
        summary = details[0].split(";")[0] if details else "waiting"
        return Explanation(t, summary, reasons, details)

    def _explain_assigned(self, job: Job, t: TaskRecord) -> Explanation:
        where = t.node or "a node"
        a = self.attempts.get(t.attempt_id or "")
        wait = a.storage_wait if a is not None else None
        if t.state == TaskState.RUNNING:
            if wait is not None and wait.uploads:
                return Explanation(
                    t, f"its process ended on {where}; {wait.describe()}",
                    ["RUNNING", "STORAGE_UNAVAILABLE"], _waiting(wait, "its output files"))
            return Explanation(t, f"running on {where}", ["RUNNING"], [])
        reasons, details = ["PREPARING"], []
        if wait is not None and not wait.uploads:
            reasons.append("STORAGE_UNAVAILABLE")
            details += _waiting(wait, "the task's files")
        if job.prep:
            reasons.append("JOB_PREPARATION_RUNNING")
            details.append("the job has a preparation task, which runs on the node before "
                           "the job's first task there")
        if t.spec.files and wait is None:
            details.append("the node stages the task's resource files and packages")
        if a is not None and a.cancel != CancelIntent.NONE:
            details.append("it is being stopped")
        summary = f"assigned to {where}, preparing to start"
        return Explanation(t, f"{summary}; {wait.describe()}" if wait else summary, reasons,
                           details)

    def _explain_nodes(self, job: Job, t: TaskRecord, reasons: list[str], details: list[str]) -> None:
        nodes = [x for x in self.sessions.values() if (x.key[0], x.key[1]) == job.pool_key]
        usable = [x for x in nodes if x.schedulable]
        short = [x for x in nodes if x.short_of_disk and x.connected]
        if short:
            # Said even when other nodes take tasks: it is why the pool runs fewer than it could.
            reasons.append("NODE_DISK_FULL")
            details.extend(
                f"node {x.node_id} is short of disk space ({x.disk_free} bytes free, below "
                f"{self.timing.node_min_free_bytes}): it takes no tasks until space is freed"
                for x in short[:5])
        if not nodes:
            reasons.append("NO_NODES")
            details.append(f"pool {job.pool_id!r} has no connected nodes (resize it, or wait for "
                           "its nodes to start)")
        elif not usable:
            reasons.append("NO_NODES")
            details.append(f"none of pool {job.pool_id!r}'s {len(nodes)} nodes takes tasks "
                           "(unreachable, disabled, leaving, short of disk space, or their setup "
                           "failed)")
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


def _waiting(wait: StorageWait, what: str) -> list[str]:
    return [f"{wait.describe()}; the node keeps {what} and tries again with backoff",
            f"last error: {wait.error}"]
