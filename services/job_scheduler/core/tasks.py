"""Task events: add (one or a batch), update, terminate, reactivate, unblock, delete."""

from __future__ import annotations

from services.common.errors import Code, ShoalError, failed_precondition, invalid, quota_exceeded
from services.common.updates import require
from services.job_scheduler.core.failures import JOB_TERMINATED, TASK_TERMINATED
from services.job_scheduler.core.plan import (
    DeleteTask,
    NewConstraints,
    Plan,
    Reactivate,
    SetBlocked,
    TaskChanged,
    TaskDeleted,
    TaskRemoved,
    TasksAdded,
    Unblock,
    UpdateTaskSettings,
)
from services.job_scheduler.core.state import CoreState, is_open
from services.job_scheduler.dependencies import find_cycle
from services.job_scheduler.model import (
    CancelIntent,
    DepRow,
    Job,
    JobState,
    Pending,
    Result,
    TaskChanges,
    TaskDefinition,
    TaskRecord,
    TaskState,
)
from services.job_scheduler.outcomes import names_job_action

MAX_BATCH_TASKS = 100_000

Known = dict[str, tuple[int, bool, str]]
"""Existing tasks a batch depends on: id_lower -> (task_pk, unfinished, block reason when it
completed without satisfying its dependents)."""


def at(i: int, single: bool) -> str:
    """How a request names the task at index i: `task` in CreateTask, `requests[i].task` in a
    batch."""
    return "" if single else f"requests[{i}]."


class TaskEvents(CoreState):
    # -- add --------------------------------------------------------------------------------

    def check_batch(self, specs: list[TaskDefinition], single: bool) -> None:
        if not specs:
            raise invalid("requests", "at least one task is required")
        if len(specs) > MAX_BATCH_TASKS:
            raise invalid("requests", f"at most {MAX_BATCH_TASKS} tasks per call, got {len(specs)}")
        if single:
            return
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

    def reserve_tasks(self, account: str, n: int) -> None:
        """Hold `n` tasks of the account's quota for an add about to be written; refused
        (TASK_QUOTA_EXCEEDED) if they do not fit. Adds to different jobs run side by side, so
        what they hold counts until `release_tasks`, when the add is counted or failed."""
        limit = self.limits.active_tasks_per_account
        tally = self.quota_use.get(account)
        used = (tally.unfinished if tally else 0) + self.reserved[account]
        if used + n > limit:
            raise quota_exceeded("TASK_QUOTA_EXCEEDED", "active_tasks_per_account",
                                 "tasks not yet completed in the account's jobs", limit, used, n)
        self.reserved[account] += n

    def release_tasks(self, account: str, n: int) -> None:
        self.reserved[account] -= n
        if self.reserved[account] <= 0:
            del self.reserved[account]

    def check_open(self, job: Job) -> None:
        if self.jobs.get(job.pk) is not job:
            raise ShoalError(Code.NOT_FOUND, "JOB_NOT_FOUND", f"job 'jobs/{job.id}' not found")
        if not is_open(job):
            why = ""
            if job.terminate_reason == "AllTasksComplete":
                # The trap of Azure's onAllTasksComplete: tasks added one call at a time can
                # all be done before the next call comes.
                why = (" (it completed when all the tasks it had were done, as its "
                       "on_all_tasks_complete says: add all of a job's tasks in one call, or "
                       "create it without that)")
            raise failed_precondition(
                "JOB_NOT_ACTIVE",
                f"job {job.id!r} is {job.state.name.lower()}: it takes no new tasks{why}")

    def dependencies_to_read(self, job: Job, specs: list[TaskDefinition], single: bool) -> list[str]:
        """Refuse what the job cannot take whatever exists (dependencies in a job that does
        not use them, job actions the job would ignore, more slots than its nodes have);
        returns the ids of existing tasks the batch depends on, to be read."""
        wanted: set[str] = set()
        batch = {sp.id.lower() for sp in specs}
        for i, sp in enumerate(specs):
            if not sp.extra:
                continue
            field = f"{at(i, single)}task"
            if sp.deps and not job.uses_deps:
                raise invalid(f"{field}.depends_on", f"job {job.id!r} does not use task "
                              "dependencies (set uses_task_dependencies when creating it)")
            rules = self.rules_of(sp.exits)
            if rules is not None and not job.exit_job_actions and names_job_action(rules):
                raise invalid(f"{field}.exit_conditions", "a job action needs the job's "
                              "on_task_failure to be PERFORM_EXIT_OPTIONS_JOB_ACTION")
            if job.pool_slots and sp.slots > job.pool_slots:
                raise invalid(f"{field}.required_slots", f"{sp.slots} slots, but the pool's "
                              f"nodes have {job.pool_slots}")
            wanted.update(d for d in sp.dep_keys if d not in batch)
        return sorted(wanted)

    def check_dependencies(
        self, job: Job, specs: list[TaskDefinition], rows: dict[str, DepRow], single: bool
    ) -> Known:
        """Refuse unknown ids and cycles; returns what the batch's existing dependencies are."""
        batch = {sp.id.lower(): i for i, sp in enumerate(specs)}
        for i, sp in enumerate(specs):
            for d, key in zip(sp.deps, sp.dep_keys, strict=True):
                if key not in batch and key not in rows:
                    field = f"{at(i, single)}task.depends_on"
                    raise ShoalError(
                        Code.INVALID_ARGUMENT, "UNKNOWN_DEPENDENCY",
                        f"{field}: task {d!r} does not exist in job {job.id!r}", field)
        cycle = find_cycle({sp.id.lower(): [d for d in sp.dep_keys if d in batch]
                            for sp in specs if sp.deps})
        if cycle:
            field = f"{at(batch[cycle[0]], single)}task.depends_on"
            names = " -> ".join(specs[batch[c]].id for c in cycle)
            raise ShoalError(Code.INVALID_ARGUMENT, "DEPENDENCY_CYCLE",
                             f"{field}: a cycle: {names}", field)
        unfinished = self.deps.unfinished.get(job.pk, set())
        out: Known = {}
        for d, r in rows.items():
            if r.task_pk in unfinished:
                out[d] = (r.task_pk, True, "")
            else:
                satisfy, why = self.deps.outcomes.get(r.task_pk) or self.dep_outcome(r)
                out[d] = (r.task_pk, False, "" if satisfy else why)
        return out

    def tasks_added(
        self, job: Job, specs: list[TaskDefinition], pks: list[int], known: Known, now: float,
        *, plain: bool = False,
    ) -> Plan:
        """The batch's rows are written (in their own transaction): count and queue them.
        `plain`: no task of the batch has dependencies, slots, a priority or exit conditions
        (the caller knows; a 100,000-task batch is not scanned twice)."""
        self._begin()
        job.counts.move(None, TaskState.ACTIVE, n=len(specs))
        self._touch(job)
        if self.jobs.get(job.pk) is job:
            self._plan.events.append(TasksAdded(job, pks, specs, now))
        if not is_open(job) or self.jobs.get(job.pk) is not job:
            # Terminated while the rows were written: they end with the job.
            self._fail_active(job, pks, JOB_TERMINATED, now, [sp.id for sp in specs])
            self._plan.reply = failed_precondition(
                "JOB_NOT_ACTIVE", f"job {job.id!r} ended while its tasks were added")
            return self._finish(now)
        if job.uses_deps:
            self.deps.unfinished.setdefault(job.pk, set()).update(pks)
        if job.state == JobState.ACTIVE and plain:
            self._queue(job).push_many(job.pk, job.priority, pks)
            self._kick()
        else:
            self._enqueue_new(job, specs, pks, known)
        self._plan.reply = len(specs)
        return self._finish(now)

    def _enqueue_new(self, job: Job, specs: list[TaskDefinition], pks: list[int], known: Known) -> None:
        """New tasks with priorities, slots or dependencies. An existing dependency is looked
        at again here: it may have completed since it was read; memory is the truth."""
        batch = {sp.id.lower(): pk for sp, pk in zip(specs, pks, strict=True)}
        unfinished = self.deps.unfinished.get(job.pk, set())
        for sp, pk in zip(specs, pks, strict=True):
            if sp.priority or sp.slots != 1:
                self.pending[pk] = Pending(priority=sp.priority, slots=sp.slots)
            pending: list[int] = []
            failed: dict[int, str] = {}
            for d in sp.dep_keys:
                dpk = batch.get(d)
                if dpk is None:
                    dpk, _, why = known[d]
                    if dpk not in unfinished:
                        satisfy, why = self.deps.outcomes.get(dpk, (not why, why))
                        if not satisfy:
                            failed[dpk] = why
                        continue
                pending.append(dpk)
            if sp.deps and self.deps.add(pk, job.pk, pending, failed):
                if failed:
                    self._row(SetBlocked(pk, next(iter(failed.values()))))
                continue
            self._ready(job, pk)

    # -- reading ----------------------------------------------------------------------------

    def with_reason(self, job: Job, t: TaskRecord, job_reason: str | None = None) -> TaskRecord:
        """A task as read, with why it waits: ACTIVE, its dependencies, else what holds all
        of the job's tasks (`job_reason`, `job_wait_reason(job)` when not given: a page of
        tasks asks once); PREPARING or RUNNING, whether its node waits for storage to stage
        its files."""
        if t.state in (TaskState.PREPARING, TaskState.RUNNING):
            a = self.attempts.get(t.attempt_id or "")
            if a is not None and a.storage_wait is not None:
                return t._replace(state_reason=a.storage_wait.describe())
            return t
        if t.state != TaskState.ACTIVE:
            return t
        why = self.deps.reason(t.pk)
        if not why:
            why = self.job_wait_reason(job) if job_reason is None else job_reason
        return t._replace(state_reason=why) if why else t

    def job_wait_reason(self, job: Job) -> str:
        """What keeps every ready task of the job waiting, in a few words; "" when a ready
        task can go to the next free slot (`task why` says more about one task)."""
        if job.state in (JobState.DISABLED, JobState.DISABLING):
            return "the job is disabled"
        if job.max_parallel and job.counts.running >= job.max_parallel:
            return f"the job's max_parallel_tasks are running ({job.counts.running})"
        nodes = [x for x in self.sessions.values() if (x.key[0], x.key[1]) == job.pool_key]
        if not nodes:
            return f"pool {job.pool_id!r} has no connected nodes"
        usable = [x for x in nodes if x.schedulable]
        if not usable:
            return f"no node of pool {job.pool_id!r} takes tasks"
        if all(x.free_slots == 0 for x in usable):
            return f"all {sum(x.total_slots for x in usable)} slots of pool {job.pool_id!r} are busy"
        return ""

    def is_live(self, job: Job, task_pk: int) -> bool:
        """Whether the task is ACTIVE or running in memory (its row may lag a commit)."""
        return self._attempt_of(task_pk) is not None or self._is_active(job, task_pk)

    # -- operations -------------------------------------------------------------------------

    def terminate_task(self, job: Job, t: TaskRecord, now: float) -> Plan:
        """Azure Batch's terminate: a running task is killed, an active one never runs; both
        complete as failed (TASK_TERMINATED). A completed task is left as it is."""
        self._begin()
        a = self._attempt_of(t.pk)
        if a is not None:
            self._cancel([a], CancelIntent.TERMINATE, TASK_TERMINATED)
        elif self._take_active(job, t.pk):
            self._fail_active(job, [t.pk], TASK_TERMINATED, now, [t.spec.id])
            if job.uses_deps or job.exit_job_actions or t.spec.exits:
                self._completed(job, t.pk, t.spec.id, t.spec.exits, False, None,
                                TASK_TERMINATED.code, now, job_action=False)
        return self._finish(now)

    def reactivate_task(self, job: Job, t: TaskRecord, now: float) -> Plan:
        """A failed task runs again, its retry count reset; dependents its failure blocked
        wait for it again."""
        if (t.state != TaskState.COMPLETED or t.result != Result.FAILURE
                or self.is_live(job, t.pk)):
            raise failed_precondition("TASK_NOT_FAILED", f"task {t.spec.id!r} is not a failed, "
                                      "completed task: only those can be reactivated")
        if not is_open(job):
            raise failed_precondition("JOB_NOT_ACTIVE", f"job {job.id!r} is {job.state.name.lower()}")
        self._begin()
        row = Reactivate(t.pk, now)
        self._row(row)
        job.counts.move(TaskState.COMPLETED, TaskState.ACTIVE, src_result=Result.FAILURE)
        self._touch(job)
        self._plan.events.append(TaskChanged(job.account, job.id, t.pk, TaskState.ACTIVE,
                                             task_id=t.spec.id, row=row))
        if job.uses_deps:
            self.deps.outcomes.pop(t.pk, None)
            self.deps.unfinished.setdefault(job.pk, set()).add(t.pk)
            for d in self.deps.blocked_by(t.pk):
                self.deps.reopened_one(t.pk, d)
                self._row(SetBlocked(d, self.deps.waiting[d].blocked or None))
        # Attempts before the reactivation still count in the attempt numbers.
        self.pending[t.pk] = Pending(priority=t.spec.priority, slots=t.spec.slots,
                                     attempts=len(t.attempts))
        self._ready(job, t.pk)
        return self._finish(now)

    def update_task(
        self, job: Job, t: TaskRecord, changes: TaskChanges, if_match: str, now: float
    ) -> Plan:
        """Azure Batch's Task - Update: new constraints, acting at once. The task's row `t`
        was read while `watch`ed: if its state changed meanwhile, the row may be behind
        memory (and its etag too), and nothing is decided (TASK_CHANGING: read it again)."""
        if self.reading.get(t.pk, True):
            raise ShoalError(Code.UNAVAILABLE, "TASK_CHANGING",
                             f"task {t.spec.id!r} is changing state; try again")
        require(f"task {t.spec.id!r}", t.etag, if_match)
        if t.state == TaskState.COMPLETED:
            raise failed_precondition("TASK_COMPLETED",
                                      f"task {t.spec.id!r} is completed: it cannot be updated")
        self._begin()
        spec = changes.applied(t.spec)
        if spec == t.spec:
            return self._finish(now)  # nothing changes, nor does the etag
        self._row(UpdateTaskSettings(t.pk, spec, now))
        self._plan.events.append(TaskChanged(job.account, job.id, t.pk, t.state))
        a = self._attempt_of(t.pk)
        if a is None:
            return self._finish(now)  # its next attempt reads the row
        # The attempt running now: a new retry count applies to its end, new limits to it
        # on its node.
        a.retries_of_job = spec.max_task_retry_count is None
        a.max_retries = (job.default_retries if a.retries_of_job
                         else spec.max_task_retry_count)  # type: ignore[assignment]
        if (a.max_wall_clock, a.retention) != (spec.max_wall_clock_time, spec.retention):
            a.max_wall_clock, a.retention = spec.max_wall_clock_time, spec.retention
            a.constraints_changed = True
            self._send(a.node_key, NewConstraints([a]))
        return self._finish(now)

    def unblock_task(self, job: Job, t: TaskRecord, now: float) -> Plan:
        """Run a task blocked by a failed dependency anyway."""
        res = self.deps.unblock(t.pk)
        if res is None:
            raise failed_precondition("TASK_NOT_BLOCKED", f"task {t.spec.id!r} is not blocked by "
                                      "a failed dependency")
        self._begin()
        self._row(Unblock(t.pk))
        if res[1]:
            self._ready(job, t.pk)  # else it still waits for dependencies that have not ended
        return self._finish(now)

    def delete_task(self, job: Job, t: TaskRecord, now: float) -> Plan:
        """Delete a task (a running one is killed). Refused while tasks that depend on it
        have not completed: their dependency would vanish."""
        if self.deps.has_dependents(t.pk):
            raise failed_precondition(
                "TASK_HAS_DEPENDENTS",
                f"task {t.spec.id!r} has dependent tasks that have not completed; "
                "terminate or delete them first")
        a = self._attempt_of(t.pk)
        if a is None and not self._is_active(job, t.pk) and t.state != TaskState.COMPLETED:
            raise ShoalError(Code.UNAVAILABLE, "TASK_CHANGING",
                             f"task {t.spec.id!r} is changing state; try again")
        self._begin()
        if a is not None:
            self._cancel([a], CancelIntent.TERMINATE, TASK_TERMINATED)
            a.task_deleted = True  # its end frees the slot and the running count
        elif self._take_active(job, t.pk):
            job.counts.move(TaskState.ACTIVE, None)
        else:
            job.counts.move(TaskState.COMPLETED, None, src_result=t.result)
        if job.uses_deps:
            self.deps.unfinished.get(job.pk, set()).discard(t.pk)
            self.deps.outcomes.pop(t.pk, None)
        self._row(DeleteTask(t.pk))
        self._plan.events.append(TaskRemoved(job.account, job.id, t.pk, t.spec.id))
        self._touch(job)
        if t.node:
            _, pool_id, _, node_id = t.node.split("/")
            self._send((job.account, pool_id.lower(), node_id), TaskDeleted(job.id, t.spec.id))
        return self._finish(now)
