"""Jobs, tasks and attempts as the scheduler sees them, and the pure rules that move them.

Stdlib only. The store persists these; the app applies the rules and records their effects.
Desired state (what the scheduler decided: assign, cancel, requeue) is kept apart from the
observed state the agent reports (started, exited).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import NamedTuple

from services.common.tally import DISPATCH_BOUNDS, Buckets


class TaskState(IntEnum):
    # Values match shoal.v1.Task.State.
    ACTIVE = 1
    PREPARING = 2
    RUNNING = 3
    COMPLETED = 4


class JobState(IntEnum):
    # Values match shoal.v1.Job.State.
    ACTIVE = 1
    TERMINATING = 2
    COMPLETED = 3
    DELETING = 4
    DISABLING = 5
    DISABLED = 6


class DisableOption(IntEnum):
    # Values match shoal.v1.DisableJobOption.
    REQUEUE = 1
    TERMINATE = 2
    WAIT = 3


OPEN_JOB_STATES = frozenset({JobState.ACTIVE, JobState.DISABLING, JobState.DISABLED})
"""Jobs that still take tasks (a disabled job keeps them until it is enabled)."""


class OnAllTasksComplete(IntEnum):
    NO_ACTION = 1
    TERMINATE_JOB = 2


class Result(IntEnum):
    SUCCESS = 1
    FAILURE = 2


class Category(IntEnum):
    USER_ERROR = 1
    SERVER_ERROR = 2


class CancelIntent(IntEnum):
    """What a cancelled attempt turns into once its node confirms (or is gone)."""

    NONE = 0
    REQUEUE = 1
    """Back to ACTIVE; counts as a requeue, never as a retry."""
    TERMINATE = 2
    """Completed as failed with the recorded failure."""
    RETURN = 3
    """Back to ACTIVE because its job was disabled with requeue: neither a retry nor a
    requeue (those count what happened because of the task's node)."""


@dataclass(frozen=True)
class Failure:
    category: Category
    code: str
    message: str


@dataclass(frozen=True)
class StorageWait:
    """An attempt's staging waits for storage to come back, as its agent said (kept in
    memory only: the agent says it again after a reconnect)."""

    uploads: bool
    """True: its process ended and its outputs wait; False: its files wait, before it runs."""
    since: float
    give_up_at: float
    """When the attempt fails if storage is still unavailable."""
    error: str

    def describe(self) -> str:
        what = "its output files" if self.uploads else "its files"
        return (f"{what} wait for storage (unavailable since {_utc(self.since)}; the task "
                f"fails at {_utc(self.give_up_at)} if it still is)")


def _utc(t: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(t))


@dataclass
class Tally:
    """Tasks not yet completed over all of one account's jobs: its task quota's use, kept as
    the jobs' counts move so that checking it costs the same whatever the account holds."""

    unfinished: int = 0


@dataclass
class TaskCounts:
    active: int = 0
    running: int = 0
    completed: int = 0
    succeeded: int = 0
    failed: int = 0
    tally: Tally | None = field(default=None, compare=False, repr=False)
    """The account's, while the job is in the core's state."""

    def move(
        self, src: TaskState | None, dst: TaskState | None, *, n: int = 1,
        result: Result | None = None, src_result: Result | None = None,
    ) -> None:
        """The one way counts change: `n` tasks leave bucket `src` (None: they are new) for
        bucket `dst` (None: they are deleted). A completed bucket is split by result."""
        if src is not None:
            self._add(src, src_result, -n)
        if dst is not None:
            self._add(dst, result, n)

    def _add(self, state: TaskState, result: Result | None, n: int) -> None:
        if state != TaskState.COMPLETED and self.tally is not None:
            self.tally.unfinished += n
        if state == TaskState.ACTIVE:
            self.active += n
        elif state in (TaskState.PREPARING, TaskState.RUNNING):
            self.running += n
        else:
            self.completed += n
            if result == Result.SUCCESS:
                self.succeeded += n
            else:
                self.failed += n

    def row(self) -> tuple[int, int, int, int, int]:
        return (self.active, self.running, self.completed, self.succeeded, self.failed)

    @property
    def unfinished(self) -> int:
        return self.active + self.running


@dataclass
class PoolTally:
    """What happened in one pool since this process started, as plain counts: the metrics
    collector reads them when Prometheus scrapes (services/job_scheduler/metrics.py)."""

    account: str
    pool_id: str
    """As the first job or node of the pool spelt it."""
    attempts: int = 0
    """Attempts assigned to a node."""
    retries: int = 0
    """Attempts that ended in a failure the task is retried for (max_task_retry_count)."""
    requeues: int = 0
    """Attempts whose node was lost or stopped them: their task waits again, uncounted."""
    heartbeats: int = 0
    """Agent messages that said only that the node is alive."""
    dispatch_wait: Buckets = field(default_factory=lambda: Buckets(DISPATCH_BOUNDS))
    """Seconds from a task becoming ACTIVE (added, retried or requeued) to its assignment."""


@dataclass
class Job:
    pk: int
    account: str
    id: str
    pool_id: str
    priority: int
    on_all_tasks_complete: OnAllTasksComplete
    state: JobState
    create_time: float
    state_time: float
    display_name: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    terminate_reason: str = ""
    end_time: float | None = None
    counts: TaskCounts = field(default_factory=TaskCounts)
    prep: bytes | None = None
    """Serialized shoal.v1.JobPreparationTask, if the job has one."""
    release: bytes | None = None
    """Serialized shoal.v1.JobReleaseTask, if the job has one."""
    schedule_id: str = ""
    """The job schedule that created the job, if any."""
    uses_deps: bool = False
    max_parallel: int = 0
    """At most this many tasks running at once; 0: no limit."""
    max_wall_clock: float | None = None
    """Seconds after creation at which the job is terminated."""
    default_retries: int = 0
    """max_task_retry_count of tasks that don't set theirs."""
    exit_job_actions: bool = False
    """on_task_failure = PERFORM_EXIT_OPTIONS_JOB_ACTION."""
    pack: bool = False
    """Its pool fills nodes PACK (else SPREAD)."""
    pool_slots: int = 0
    """The pool's task_slots_per_node when the job was created (0: unknown)."""
    nodes: set[tuple[str, str, str]] = field(default_factory=set)
    """Nodes that were given this job's tasks: where its release task runs. Kept only for
    jobs with a preparation or release task."""
    revision: int = 1
    """Counts changes of the job's settings and state (not of its task counts): its etag."""
    update_time: float = 0.0
    """When the settings or state last changed."""

    @property
    def pool_key(self) -> tuple[str, str]:
        return (self.account, self.pool_id.lower())

    @property
    def etag(self) -> str:
        """The job's version, as services.common.updates makes them: a job deleted and
        created again under its id starts at revision 1 again, but never has an old
        incarnation's etag (pks are never reused)."""
        return etag(self.pk, self.revision)


UPDATABLE = ("priority", "on_all_tasks_complete", "max_parallel", "max_wall_clock",
             "default_retries", "metadata")
"""The settings of a job an update may change (Azure Batch's Job - Patch, less poolInfo)."""


@dataclass(frozen=True)
class JobChanges:
    """New values of some of a job's settings: only those in `fields` change."""

    fields: frozenset[str]
    """Names of Job attributes, from UPDATABLE."""
    priority: int = 0
    on_all_tasks_complete: OnAllTasksComplete = OnAllTasksComplete.NO_ACTION
    max_parallel: int = 0
    max_wall_clock: float | None = None
    default_retries: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    def changed(self, job: Job) -> set[str]:
        """The fields whose new value differs from the job's."""
        return {f for f in self.fields if getattr(job, f) != getattr(self, f)}


class TaskDefinition(NamedTuple):
    """What the user asked to run; immutable once added but for its constraints (wall clock,
    retry count, retention), which UpdateTask may change. A NamedTuple rather than a frozen
    dataclass: a 100,000-task batch builds 100,000 of them, and this is several times cheaper."""

    id: str
    command_line: str
    environment: dict[str, str]
    max_wall_clock_time: float | None
    max_task_retry_count: int | None
    """None: the job's default."""
    display_name: str = ""
    files: bytes | None = None
    """Serialized shoal.agent.v1.TaskFiles (resource files, output files, packages), if any:
    opaque to scheduling, passed to the agent and the stager as is."""
    deps: tuple[str, ...] = ()
    """Ids of the tasks it depends on, as the user spelled them (ranges expanded)."""
    exits: bytes | None = None
    """Serialized shoal.v1.ExitConditions, if any."""
    slots: int = 1
    priority: int = 0
    retention: float | None = None
    deps_spec: bytes | None = None
    """Serialized shoal.v1.TaskDependencies as given, for reading back."""
    extra: bool = False
    """Set when any of deps, exits, slots, priority, retention is: one test on the hot path."""

    @property
    def bare(self) -> bool:
        """Only an id and a command line: stored with every other column at its default."""
        return not (self.environment or self.display_name or self.files or self.extra
                    or self.max_wall_clock_time is not None or self.max_task_retry_count is not None)

    @property
    def dep_keys(self) -> tuple[str, ...]:
        """The ids it depends on, lower-cased: how tasks are matched."""
        return tuple(d.lower() for d in self.deps)


TASK_UPDATABLE = ("max_wall_clock_time", "max_task_retry_count", "retention")
"""The settings of a task an update may change (Azure Batch's Task - Update: constraints)."""


@dataclass(frozen=True)
class TaskChanges:
    """New values of some of a task's constraints: only those in `fields` change. None is no
    wall clock, the job's retry count, the default retention."""

    fields: frozenset[str]
    """Names of TaskDefinition fields, from TASK_UPDATABLE."""
    max_wall_clock_time: float | None = None
    max_task_retry_count: int | None = None
    retention: float | None = None

    def applied(self, spec: TaskDefinition) -> TaskDefinition:
        """The task's definition with these changes."""
        return spec._replace(**{f: getattr(self, f) for f in self.fields})


@dataclass(slots=True)
class Pending:
    """What the core keeps of an ACTIVE task beyond its key. A plain task that never ran has
    none (every field at its default), so a million-task job costs a key each, not a record."""

    priority: int = 0
    slots: int = 1
    retry_count: int = 0
    requeue_count: int = 0
    attempts: int = 0
    """Attempts made so far."""

    @property
    def plain(self) -> bool:
        return not (self.priority or self.slots != 1 or self.attempts)


@dataclass
class Attempt:
    """A live attempt: assigned to a node, not yet resolved."""

    attempt_id: str
    task_pk: int
    job_pk: int
    number: int
    node_key: tuple[str, str, str]
    """(account, pool id lower-case, node id)."""
    node_name: str
    slots: int
    assign_time: float
    retry_count: int
    requeue_count: int
    max_retries: int
    task_id: str = ""
    files: bytes | None = None
    """The task's TaskFiles, kept while the attempt lives: its staging requests need them."""
    exits: bytes | None = None
    """The task's ExitConditions, for what its end does to its dependents and job."""
    priority: int = 0
    retries_of_job: bool = False
    """`max_retries` is the job's default (the task sets none): it follows job updates."""
    max_wall_clock: float | None = None
    retention: float | None = None
    constraints_changed: bool = False
    """The two above were updated since the assignment: a node that reconnects is told again."""
    start_time: float | None = None
    cancel: CancelIntent = CancelIntent.NONE
    cancel_failure: Failure | None = None
    task_deleted: bool = False
    """Its task was deleted while it ran: its end only frees its slot and its count."""
    storage_wait: StorageWait | None = None
    """Its node waits for storage to stage its files (shown, never stored)."""


@dataclass(frozen=True)
class Report:
    """An attempt's end as the agent reported it."""

    attempt_id: str
    exit_code: int | None
    start_time: float | None
    end_time: float
    failure: Failure | None


@dataclass(frozen=True)
class Outcome:
    """What an ended attempt does to its task."""

    state: TaskState
    result: Result | None
    retried: bool = False
    requeued: bool = False
    failure: Failure | None = None
    by_cancel: bool = False
    """Decided by a cancel (ours), not by how the task itself ended."""


REQUEUE_LIMIT_FAILURE_CODE = "NODE_REQUEUE_LIMIT"
STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
NOT_RUN_CODES = frozenset({"NODE_DRAINING", STORAGE_UNAVAILABLE})
"""Failures an agent reports for work it refused without running it: requeued, not failed."""
CANCELLED_CODE = "TASK_CANCELLED"
"""What an agent reports for an attempt it stopped because the scheduler asked
(agent/executor.py). Any other report means the attempt ended on its own first."""


def _requeue(attempt: Attempt, max_requeues: int) -> Outcome:
    if attempt.requeue_count >= max_requeues:
        return Outcome(
            TaskState.COMPLETED,
            Result.FAILURE,
            failure=Failure(
                Category.SERVER_ERROR,
                REQUEUE_LIMIT_FAILURE_CODE,
                f"the task was requeued {attempt.requeue_count} times after losing its node",
            ),
        )
    return Outcome(TaskState.ACTIVE, None, requeued=True)


def judge(report: Report | None, attempt: Attempt, max_requeues: int) -> Outcome:
    """Decide a task's next state from how its attempt ended.

    `report` is None when the node was lost or removed without reporting. Azure Batch's
    rules: exit 0 succeeds; a non-zero exit is retried while retries remain; a failure that
    is not an exit code (file staging, wall clock, cannot start) completes the task as failed
    with no retry; losing the node requeues without counting against the retries.

    A cancelled attempt (terminated, requeued, returned) becomes what the cancel says — unless
    the task ended on its own before the cancel reached it: a finished task stays finished;
    only a retry gives way to the cancel. (Work the agent refused without running it is not
    an end of the task's own.)
    """
    if attempt.cancel != CancelIntent.NONE and report is not None and ran_to_its_end(report):
        natural = _judge_report(report, attempt, max_requeues)
        if natural.state == TaskState.COMPLETED:
            return natural
    if attempt.cancel == CancelIntent.TERMINATE:
        return Outcome(TaskState.COMPLETED, Result.FAILURE, failure=attempt.cancel_failure,
                       by_cancel=True)
    if attempt.cancel == CancelIntent.RETURN:
        return Outcome(TaskState.ACTIVE, None, by_cancel=True)
    if attempt.cancel == CancelIntent.REQUEUE:
        return replace(_requeue(attempt, max_requeues), by_cancel=True)
    if report is None:
        return _requeue(attempt, max_requeues)
    return _judge_report(report, attempt, max_requeues)


def cancelled(report: Report) -> bool:
    return report.failure is not None and report.failure.code == CANCELLED_CODE


def ran_to_its_end(report: Report) -> bool:
    """The attempt ended by itself: not stopped by our cancel, not refused unrun."""
    return report.failure is None or report.failure.code not in NOT_RUN_CODES | {CANCELLED_CODE}


def _judge_report(report: Report, attempt: Attempt, max_requeues: int) -> Outcome:
    if report.failure is not None and report.failure.code in NOT_RUN_CODES:
        return _requeue(attempt, max_requeues)
    if report.failure is not None:
        return Outcome(TaskState.COMPLETED, Result.FAILURE, failure=report.failure)
    if report.exit_code == 0:
        return Outcome(TaskState.COMPLETED, Result.SUCCESS)
    if attempt.retry_count < attempt.max_retries:
        return Outcome(TaskState.ACTIVE, None, retried=True)
    return Outcome(TaskState.COMPLETED, Result.FAILURE)


def job_should_complete(job: Job) -> bool:
    """Azure's onAllTasksComplete=terminatejob, except that a job with no tasks yet is not
    complete: Azure ends such a job at once, a trap its docs warn about."""
    return (
        job.state == JobState.ACTIVE
        and job.on_all_tasks_complete == OnAllTasksComplete.TERMINATE_JOB
        and job.counts.unfinished == 0
        and job.counts.completed > 0
    )


class ActiveRow(NamedTuple):
    """An ACTIVE task as stored: what the core needs of it at start."""

    job_pk: int
    task_pk: int
    retry_count: int
    requeue_count: int
    attempt_number: int
    slots: int
    priority: int
    deps: tuple[str, ...]
    unblocked: bool


class EndedAttempt(NamedTuple):
    """An attempt that has ended, as stored: whose it was and where it ran."""

    job_pk: int
    task_id: str
    node: str
    """`pools/{pool}/nodes/{node}`."""


class LiveRow(NamedTuple):
    """The current attempt of a PREPARING or RUNNING task, as stored."""

    task_pk: int
    job_pk: int
    attempt_id: str
    attempt_number: int
    node: str
    start_time: float | None
    retry_count: int
    requeue_count: int
    max_retries: int | None
    assign_time: float
    id: str
    files: bytes | None
    exits: bytes | None
    slots: int
    priority: int
    max_wall_clock: float | None
    retention: float | None
    settings_time: float | None
    """When its constraints were last updated (None: never)."""


class DepRow(NamedTuple):
    """A task named as a dependency, as stored."""

    task_pk: int
    id: str
    state: TaskState
    result: Result | None
    exit_code: int | None
    failure_code: str | None
    exits: bytes | None


@dataclass(frozen=True)
class AttemptRecord:
    """An attempt as stored, for reading (TaskExecutionInfo.previous_attempts)."""

    attempt_id: str
    number: int
    node: str
    start_time: float | None
    end_time: float | None
    exit_code: int | None
    failure: Failure | None


class TaskRecord(NamedTuple):
    """A task as stored, for reading. A NamedTuple: a page of ListTasks builds a thousand,
    and a frozen dataclass's constructor costs several times more."""

    job_id: str
    spec: TaskDefinition
    state: TaskState
    create_time: float
    state_time: float
    retry_count: int
    requeue_count: int
    attempt_id: str | None
    node: str | None
    start_time: float | None
    end_time: float | None
    exit_code: int | None
    result: Result | None
    failure: Failure | None
    attempts: tuple[AttemptRecord, ...] = ()
    pk: int = 0
    state_reason: str = ""
    """Why an ACTIVE task is not running (dependencies), filled in by the app."""
    revision: int = 1
    """Moves with every change of the task's state or constraints (the store counts them)."""
    settings_time: float | None = None
    """When its constraints were last updated (None: never)."""

    @property
    def etag(self) -> str:
        """The task's version, as services.common.updates makes them (task pks are never
        reused)."""
        return f'"{self.pk}.{self.revision}"'

    @property
    def update_time(self) -> float:
        """When its state or constraints last changed (Azure Batch's lastModified)."""
        return max(self.state_time, self.settings_time or 0.0)


def added_task(job_id: str, spec: TaskDefinition, pk: int, now: float) -> TaskRecord:
    """A task as it is when added: ACTIVE, never run."""
    return TaskRecord(
        job_id=job_id, spec=spec, state=TaskState.ACTIVE, create_time=now, state_time=now,
        retry_count=0, requeue_count=0, attempt_id=None, node=None, start_time=None,
        end_time=None, exit_code=None, result=None, failure=None, pk=pk)


def etag(job_pk: int, revision: int) -> str:
    """A job version's RFC 7232 entity tag (Job.etag)."""
    return f'"{job_pk}.{revision}"'
