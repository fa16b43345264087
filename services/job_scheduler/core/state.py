"""The core's state and the small steps every event is made of.

One owner for each piece of state: a job's counts move only through `TaskCounts.move`; an
ACTIVE task is in exactly one place (its pool's queue, its disabled job's parked list, or the
dependency tracker) with at most one `Pending` record; a running task is one `Attempt`.
Everything here is synchronous: an event is decided and its rows are in its plan before
anything else can run, so no decision can race its commit.
"""

from __future__ import annotations

import itertools
import secrets
from collections import Counter
from collections.abc import Callable, Iterable

from services.common.errors import not_found
from services.job_scheduler.core.failures import (
    JOB_DISABLED,
    JOB_DISABLED_RETURN,
    JOB_TERMINATED,
    NODE_LOST,
)
from services.job_scheduler.core.plan import (
    CancelAttempts,
    EndAttempt,
    FailTasks,
    JobChanged,
    JobEnded,
    JobUpdated,
    Message,
    NodeKey,
    Plan,
    Row,
    SetBlocked,
    TaskChanged,
    TaskOutcome,
    UpdateJob,
)
from services.job_scheduler.dependencies import DependencyTracker
from services.job_scheduler.model import (
    OPEN_JOB_STATES,
    Attempt,
    CancelIntent,
    DepRow,
    DisableOption,
    Failure,
    Job,
    JobState,
    Outcome,
    Pending,
    PoolTally,
    Report,
    Result,
    Tally,
    TaskState,
    cancelled,
    job_should_complete,
    judge,
)
from services.job_scheduler.outcomes import DependencyAction, ExitRules, JobAction, respond
from services.job_scheduler.placement import PoolQueue
from services.job_scheduler.sessions import NodeSession
from shoal.cluster_config import Limits, SchedulerTiming


class CoreState:
    def __init__(
        self, timing: SchedulerTiming, *, rules_of: Callable[[bytes], ExitRules],
        started_at: float = 0.0, new_id: Callable[[], str] = lambda: secrets.token_hex(8),
        limits: Limits | None = None,
    ) -> None:
        self.timing = timing
        self.limits = limits or Limits()
        self._decode_rules = rules_of
        """Serialized exit conditions -> rules: injected, so the core needs no protobuf."""
        self.started_at = started_at
        """When this process took over: nodes get `reconnect_grace` from here to come back."""
        self.new_id = new_id
        self.jobs: dict[int, Job] = {}
        self.job_keys: dict[tuple[str, str], int] = {}
        self.queues: dict[tuple[str, str], PoolQueue] = {}
        self.pending: dict[int, Pending] = {}
        """ACTIVE tasks that are not plain (a priority, slots, or attempts before)."""
        self.parked: dict[int, list[int]] = {}
        """job_pk -> ready tasks of a disabled job, in order, until it is enabled."""
        self.deps = DependencyTracker()
        self.attempts: dict[str, Attempt] = {}
        self.sessions: dict[NodeKey, NodeSession] = {}
        self.stream_ids = itertools.count(1)
        """Which agent stream owns a session: a newer one replaces an older one."""
        self.ended_away: dict[NodeKey, list[Job]] = {}
        """Jobs that ended while a node that ran them was away: told when it is back."""
        self.quota_use: dict[str, Tally] = {}
        """account -> its tasks not yet completed (the task quota's use)."""
        self.reserved: Counter[str] = Counter()
        """account -> tasks of adds checked against the quota and not yet counted."""
        self.reading: dict[int, bool] = {}
        """Tasks whose rows the engine reads for an update (`watch`): True once an event
        changes one's state meanwhile, so the row read may be older than memory."""
        self.tallies: dict[tuple[str, str], PoolTally] = {}
        """Per pool (account, lower id): attempts, retries, requeues, heartbeats, dispatch
        waits since this process started, for the metrics collector."""
        self._plan = Plan()
        self._touched: set[int] = set()

    # -- the plan of the event being decided -------------------------------------------------

    # -- the task quota's use ---------------------------------------------------------------

    def _count_in(self, job: Job) -> None:
        """A job enters the state: its unfinished tasks count for its account from now on."""
        tally = self.quota_use.setdefault(job.account, Tally())
        tally.unfinished += job.counts.unfinished
        job.counts.tally = tally

    def _count_out(self, job: Job) -> None:
        """A job leaves the state (deleted): its tasks no longer count."""
        tally = job.counts.tally
        if tally is not None:
            tally.unfinished -= job.counts.unfinished
            job.counts.tally = None

    def _begin(self) -> Plan:
        self._plan, self._touched = Plan(), set()
        return self._plan

    def _finish(self, now: float) -> Plan:
        """The last step of every event: jobs whose tasks are all done end now, and every
        job the event touched has its row written once."""
        self._end_finished_jobs(now)
        plan, self._plan = self._plan, Plan()
        if self.reading:
            for e in plan.events:
                if isinstance(e, TaskChanged) and e.task_pk in self.reading:
                    self.reading[e.task_pk] = True
        return plan

    def watch(self, task_pk: int) -> None:
        """The engine is about to read the task's row for a decision: note any state change
        from now on (see `reading`)."""
        self.reading[task_pk] = False

    def unwatch(self, task_pk: int) -> None:
        self.reading.pop(task_pk, None)

    def _row(self, row: Row) -> None:
        self._plan.rows.append(row)

    def _send(self, key: NodeKey, message: Message) -> None:
        """To the node's current stream; a node that is away learns at its hello instead."""
        s = self.sessions.get(key)
        if s is not None and s.connected:
            self._plan.send(key, s.stream_id, message)

    def _kick(self) -> None:
        self._plan.dispatch = True

    def _touch(self, job: Job) -> None:
        self._touched.add(job.pk)

    def _end_finished_jobs(self, now: float) -> None:
        for pk in sorted(self._touched):
            job = self.jobs.get(pk)
            if job is None:
                continue
            if job_should_complete(job):
                self._set_job_state(job, JobState.COMPLETED, now, "AllTasksComplete")
            elif job.state == JobState.TERMINATING and job.counts.running == 0:
                self._set_job_state(job, JobState.COMPLETED, now)
            elif job.state == JobState.DISABLING and job.counts.running == 0:
                self._set_job_state(job, JobState.DISABLED, now)
            row = UpdateJob(job.pk, job.state, job.terminate_reason, job.state_time,
                            job.end_time, job.counts.row(), job.revision, job.update_time)
            self._row(row)
            self._plan.events.append(JobUpdated(job, row))
        self._touched = set()

    def tally(self, account: str, pool_id: str) -> PoolTally:
        key = (account, pool_id.lower())
        t = self.tallies.get(key)
        if t is None:
            t = self.tallies[key] = PoolTally(account, pool_id)
        return t

    def rules_of(self, exits: bytes | None) -> ExitRules | None:
        return self._decode_rules(exits) if exits else None

    def dep_outcome(self, r: DepRow) -> tuple[bool, str]:
        """(satisfies its dependents, why not) of a task that completed before this process
        started, from its row."""
        return satisfies(self.rules_of(r.exits), r.result == Result.SUCCESS, r.exit_code,
                         r.failure_code, r.id)

    # -- jobs -------------------------------------------------------------------------------

    def job(self, account: str, job_id: str) -> Job:
        pk = self.job_keys.get((account, job_id.lower()))
        if pk is None:
            raise not_found("job", f"jobs/{job_id}")
        return self.jobs[pk]

    def _set_job_state(self, job: Job, state: JobState, now: float, reason: str = "") -> None:
        job.state = state
        job.state_time = now
        self._revise(job, now)
        if reason and not job.terminate_reason:
            job.terminate_reason = reason
        if state == JobState.COMPLETED:
            job.end_time = now
            self._queue(job).drop_job(job.pk)
            self._job_ended(job, now)
        self._plan.events.append(JobChanged(job.account, job.id, state))

    def _revise(self, job: Job, now: float) -> None:
        """The job's settings or state changed: a new etag (its row is written at the end of
        the event, as every touched job's is)."""
        job.revision += 1
        job.update_time = now
        self._touch(job)

    def _job_ended(self, job: Job, now: float) -> None:
        """Tell the nodes that ran the job: they run its release task (Azure Batch runs it on
        every node that ran the job's preparation or tasks) and drop its preparation state."""
        since_start = now - self.started_at
        for k in job.nodes:
            s = self.sessions.get(k)
            if s is not None and s.connected:
                self._send(k, JobEnded(job))
            elif (s is not None and not s.removing) or (
                    s is None and since_start < self.timing.reconnect_grace):
                # Away (reconnecting, or not back since our restart): told when it says hello.
                self.ended_away.setdefault(k, []).append(job)
        job.nodes = set()

    # -- ACTIVE tasks -----------------------------------------------------------------------

    def _queue(self, job: Job) -> PoolQueue:
        q = self.queues.get(job.pool_key)
        if q is None:
            q = self.queues[job.pool_key] = PoolQueue(pack=job.pack)
        return q

    def _ready(self, job: Job, task_pk: int, *, front: bool = False) -> None:
        """A task may run now: into its pool's queue, or parked while its job is disabled."""
        if job.state == JobState.ACTIVE:
            p = self.pending.get(task_pk)
            queue = self._queue(job)
            queue.push(job.pk, job.priority, task_pk, front=front,
                       task_priority=p.priority if p else 0)
            if p is not None and p.slots != 1:
                queue.slots[task_pk] = p.slots
            self._kick()
        else:
            parked = self.parked.setdefault(job.pk, [])
            if front:
                parked.insert(0, task_pk)
            else:
                parked.append(task_pk)

    def _drop_active(self, job: Job) -> list[int]:
        """Take all the job's ACTIVE tasks out of wherever they wait; returns them."""
        out = self._queue(job).drop_job(job.pk)
        out += self.parked.pop(job.pk, [])
        out += self.deps.forget_job(job.pk)
        for pk in out:
            self.pending.pop(pk, None)
        if job.uses_deps:
            self.deps.unfinished.get(job.pk, set()).difference_update(out)
        return out

    def _take_active(self, job: Job, task_pk: int) -> bool:
        """Take one ACTIVE task out of wherever it waits; False if it was not found there."""
        found = (self._queue(job).remove(job.pk, task_pk)
                 or self._unpark(job, task_pk) or self.deps.forget(task_pk))
        if found:
            self.pending.pop(task_pk, None)
        return found

    def _unpark(self, job: Job, task_pk: int) -> bool:
        parked = self.parked.get(job.pk, [])
        if task_pk in parked:
            parked.remove(task_pk)
            return True
        return False

    def _is_active(self, job: Job, task_pk: int) -> bool:
        return (self._queue(job).contains(job.pk, task_pk)
                or task_pk in self.parked.get(job.pk, ())
                or task_pk in self.deps.waiting)

    def _fail_active(self, job: Job, task_pks: list[int], failure: Failure, now: float,
                     ids: list[str] | None = None) -> None:
        """ACTIVE tasks, already taken out of where they waited, complete as failed without
        running (their job ended, or they were terminated). `ids`: theirs, where known."""
        if not task_pks:
            return
        row = FailTasks(task_pks, failure, now)
        self._row(row)
        job.counts.move(TaskState.ACTIVE, TaskState.COMPLETED, n=len(task_pks),
                        result=Result.FAILURE)
        self._touch(job)
        for i, pk in enumerate(task_pks):
            self._plan.events.append(TaskChanged(
                job.account, job.id, pk, TaskState.COMPLETED, Result.FAILURE,
                task_id=ids[i] if ids else "", row=row))

    def _end_job_tasks(self, job: Job, reason: str, now: float) -> None:
        """Complete the job's ACTIVE tasks as failed and cancel its running ones; the job is
        TERMINATING until they are gone, then COMPLETED."""
        self._fail_active(job, self._drop_active(job), JOB_TERMINATED, now)
        running = self._attempts_of_job(job)
        self._cancel(running, CancelIntent.TERMINATE, JOB_TERMINATED)
        job.terminate_reason = reason
        self._set_job_state(job, JobState.TERMINATING if running else JobState.COMPLETED, now)

    def _disable(self, job: Job, option: DisableOption, now: float) -> None:
        """No task of the job starts until it is enabled; its ready tasks are parked."""
        self.parked.setdefault(job.pk, []).extend(self._queue(job).drop_job(job.pk))
        running = self._attempts_of_job(job)
        if option == DisableOption.REQUEUE:
            self._cancel(running, CancelIntent.RETURN, JOB_DISABLED_RETURN)
        elif option == DisableOption.TERMINATE:
            self._cancel(running, CancelIntent.TERMINATE, JOB_DISABLED)
        self._set_job_state(job, JobState.DISABLING if running else JobState.DISABLED, now)

    def _completed(
        self, job: Job, task_pk: int, task_id: str, exits: bytes | None, succeeded: bool,
        exit_code: int | None, failure_code: str | None, now: float, *, job_action: bool = True,
    ) -> None:
        """A task of a job with dependencies or exit conditions completed: satisfy or block
        its dependents, and take the job action its exit conditions name."""
        rules = self.rules_of(exits)
        if job.uses_deps:
            satisfy, why = satisfies(rules, succeeded, exit_code, failure_code, task_id)
            self.deps.unfinished.get(job.pk, set()).discard(task_pk)
            self.deps.outcomes[task_pk] = (satisfy, why)
            ready, blocked = self.deps.completed(task_pk, satisfy, why)
            for _, pk in ready:
                self._ready(job, pk)
            for pk in blocked:
                self._row(SetBlocked(pk, why))
        # Only for ends the task produced itself: a task stopped by a user or by the service
        # (terminated, disabled, its node lost) does not take its job down with it.
        if job_action and job.exit_job_actions and is_open(job):
            action = respond(rules, succeeded, exit_code, failure_code).job_action
            if action == JobAction.TERMINATE:
                self._end_job_tasks(job, "TaskFailed", now)
            elif action == JobAction.DISABLE and job.state == JobState.ACTIVE:
                self._disable(job, DisableOption.REQUEUE, now)

    # -- an attempt's end -------------------------------------------------------------------

    def _resolve(self, a: Attempt, rep: Report | None, now: float) -> None:
        """An attempt has ended (rep) or its node is gone (None): move its task on."""
        self.attempts.pop(a.attempt_id, None)
        s = self.sessions.get(a.node_key)
        if s is not None and a.attempt_id in s.attempts:
            s.attempts.discard(a.attempt_id)
            s.used_slots -= a.slots
            if rep is not None:
                s.completed_tasks += 1
            self._kick()
        job = self.jobs.get(a.job_pk)
        if job is None:
            return
        if a.task_deleted:
            job.counts.move(TaskState.RUNNING, None)
            self._touch(job)
            return
        # Why we cancelled it, if we did: the attempt's record says that rather than the
        # agent's bare "cancelled" (or, with no report, rather than "lost").
        why = a.cancel_failure if a.cancel != CancelIntent.NONE else None
        if rep is None:
            self._row(EndAttempt(a.attempt_id, None, now, None, why or NODE_LOST))
        else:
            recorded = why if why is not None and cancelled(rep) else rep.failure
            self._row(EndAttempt(a.attempt_id, rep.start_time, rep.end_time, rep.exit_code,
                                 recorded))
        out = judge(rep, a, self.timing.max_requeue_count)
        if out.state == TaskState.ACTIVE and not is_open(job):
            out = Outcome(TaskState.COMPLETED, Result.FAILURE, failure=JOB_TERMINATED)
        retries = a.retry_count + out.retried
        requeues = a.requeue_count + out.requeued
        if out.retried or out.requeued:
            t = self.tally(job.account, job.pool_id)
            t.retries += out.retried
            t.requeues += out.requeued
        job.counts.move(TaskState.RUNNING, out.state, result=out.result)
        self._touch(job)
        failure = out.failure if out.state == TaskState.COMPLETED else None
        exit_code = rep.exit_code if rep else None
        row = TaskOutcome(
            a.task_pk, out.state, now, out.result, retries, requeues,
            rep.start_time if rep else a.start_time,
            (rep.end_time if rep else now) if out.state == TaskState.COMPLETED else None,
            exit_code, failure,
        )
        self._row(row)
        self._plan.events.append(TaskChanged(job.account, job.id, a.task_pk, out.state, out.result,
                                             task_id=a.task_id, row=row))
        if out.state == TaskState.ACTIVE:
            self.pending[a.task_pk] = Pending(a.priority, a.slots, retries, requeues, a.number)
            # Retries and requeues go first: the job's oldest work should finish first.
            self._ready(job, a.task_pk, front=True)
        elif a.exits is not None or job.uses_deps or job.exit_job_actions:
            self._completed(job, a.task_pk, a.task_id, a.exits, out.result == Result.SUCCESS,
                            exit_code, failure.code if failure else None, now,
                            job_action=not out.by_cancel)

    # -- attempts ---------------------------------------------------------------------------

    def _attempts_of_job(self, job: Job) -> list[Attempt]:
        return [a for a in self.attempts.values() if a.job_pk == job.pk]

    def _attempts_on(self, key: NodeKey) -> list[Attempt]:
        return [a for a in self.attempts.values() if a.node_key == key]

    def _attempt_of(self, task_pk: int) -> Attempt | None:
        return next((a for a in self.attempts.values() if a.task_pk == task_pk), None)

    def _cancel(self, attempts: Iterable[Attempt], intent: CancelIntent, failure: Failure) -> None:
        by_node: dict[NodeKey, list[str]] = {}
        for a in attempts:
            intend(a, intent, failure)
            by_node.setdefault(a.node_key, []).append(a.attempt_id)
        for key, ids in by_node.items():
            self._send(key, CancelAttempts(ids))


def intend(a: Attempt, intent: CancelIntent, failure: Failure) -> None:
    """Set what a cancelled attempt becomes; a terminate is never downgraded to a requeue."""
    if a.cancel != CancelIntent.TERMINATE:
        a.cancel, a.cancel_failure = intent, failure


def satisfies(
    rules: ExitRules | None, succeeded: bool, exit_code: int | None, failure_code: str | None,
    task_id: str,
) -> tuple[bool, str]:
    """Whether a completed task satisfies its dependents, and if not, why (for people)."""
    resp = respond(rules, succeeded, exit_code, failure_code)
    if resp.dependency_action == DependencyAction.SATISFY:
        return True, ""
    how = (f"exit code {exit_code}" if exit_code is not None
           else failure_code or "no exit code")
    return False, f"dependency {task_id} {'succeeded' if succeeded else 'failed'} ({how})"


def is_open(job: Job) -> bool:
    return job.state in OPEN_JOB_STATES
