"""What the core decides for one event: rows to write, messages for nodes, the reply, and
domain events. The engine applies a plan in order: rows are queued and group-committed, and
only then are messages sent and the reply returned, so nothing a node or a client was told
can be lost by a crash. Everything here is data; nothing in it does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from services.job_scheduler.model import (
    Attempt,
    Failure,
    Job,
    JobState,
    Result,
    TaskDefinition,
    TaskState,
)
from services.job_scheduler.sessions import NodeKey

# -- rows ---------------------------------------------------------------------------------


class InsertJob(NamedTuple):
    job: Job


class UpdateJob(NamedTuple):
    """A job's state and counts as they were when decided."""

    job_pk: int
    state: JobState
    terminate_reason: str
    state_time: float
    end_time: float | None
    counts: tuple[int, int, int, int, int]
    revision: int
    update_time: float


class UpdateJobSettings(NamedTuple):
    """A job's updatable settings (model.UPDATABLE) after an update. The store writes them
    from the job at once, when the plan is queued, so they are the values decided."""

    job: Job


class UpdateTaskSettings(NamedTuple):
    """A task's constraints after an update (its spec's max_wall_clock_time,
    max_task_retry_count and retention), and when."""

    task_pk: int
    spec: TaskDefinition
    time: float


class DeleteJob(NamedTuple):
    job_pk: int


class AssignTask(NamedTuple):
    task_pk: int
    attempt_id: str
    number: int
    node: str
    time: float


class StartAttempt(NamedTuple):
    task_pk: int
    attempt_id: str
    start_time: float
    time: float


class EndAttempt(NamedTuple):
    attempt_id: str
    start_time: float | None
    end_time: float
    exit_code: int | None
    failure: Failure | None


class TaskOutcome(NamedTuple):
    task_pk: int
    state: TaskState
    time: float
    result: Result | None
    retry_count: int
    requeue_count: int
    start_time: float | None
    end_time: float | None
    exit_code: int | None
    failure: Failure | None


class FailTasks(NamedTuple):
    """ACTIVE tasks completed as failed without running."""

    task_pks: list[int]
    failure: Failure
    time: float


class Reactivate(NamedTuple):
    task_pk: int
    time: float


class SetBlocked(NamedTuple):
    task_pk: int
    reason: str | None


class Unblock(NamedTuple):
    task_pk: int


class DeleteTask(NamedTuple):
    task_pk: int


Row = (InsertJob | UpdateJob | UpdateJobSettings | UpdateTaskSettings | DeleteJob | AssignTask
       | StartAttempt | EndAttempt | TaskOutcome | FailTasks | Reactivate | SetBlocked | Unblock
       | DeleteTask)


# -- messages to nodes --------------------------------------------------------------------


class TaskInfo(NamedTuple):
    """What an assignment needs of a task's row, read just before it is assigned."""

    job_id: str
    id: str
    command_line: str
    environment: str
    """JSON, as stored."""
    max_wall_clock: float | None
    max_retries: int | None
    files: bytes | None
    exits: bytes | None
    priority: int
    retention: float | None
    ready_time: float
    """When the task last became ACTIVE (its row's state time): added, retried or requeued."""


class Assign(NamedTuple):
    attempt: Attempt
    task: TaskInfo
    job: Job


class CancelAttempts(NamedTuple):
    attempt_ids: list[str]


class AckResults(NamedTuple):
    attempt_ids: list[str]


class JobEnded(NamedTuple):
    """The job is over: the node runs its release task and forgets its preparation."""

    job: Job


class TaskDeleted(NamedTuple):
    job_id: str
    task_id: str


class Drain(NamedTuple):
    """Take no new work; finish or stop what runs as told by cancels."""


class NewConstraints(NamedTuple):
    """Running attempts' limits as they are now, after their tasks were updated."""

    attempts: list[Attempt]


Message = Assign | CancelAttempts | AckResults | JobEnded | TaskDeleted | Drain | NewConstraints


class Send(NamedTuple):
    node: NodeKey
    stream_id: int
    """The stream the message was meant for: a node that reconnected since gets none of it
    (its hello settled what it runs)."""
    message: Message


# -- domain events ------------------------------------------------------------------------
# What the watch API (services/job_scheduler/feed.py) publishes once the plan is committed:
# each task or job event carries the row that records it, so a watcher is told exactly what
# a read after the commit would show.


class TaskChanged(NamedTuple):
    account: str
    job_id: str
    task_pk: int
    state: TaskState
    result: Result | None = None
    task_id: str = ""
    """Empty where the core does not hold it (the queued tasks of a job that ended)."""
    row: Row | None = None
    """The row that writes the change: AssignTask, StartAttempt, TaskOutcome, FailTasks,
    Reactivate."""


class TasksAdded(NamedTuple):
    """A batch of tasks was added (its rows written before the plan was decided)."""

    job: Job
    pks: list[int]
    specs: list[TaskDefinition]
    time: float


class TaskRemoved(NamedTuple):
    account: str
    job_id: str
    task_pk: int
    task_id: str


class JobChanged(NamedTuple):
    account: str
    job_id: str
    state: JobState


class JobAdded(NamedTuple):
    job: Job


class JobUpdated(NamedTuple):
    """The job's row was written: its state, times and task counts as they are in `row`
    (the Job object itself moves on)."""

    job: Job
    row: UpdateJob


class JobRemoved(NamedTuple):
    job: Job


class NodeChanged(NamedTuple):
    node: NodeKey
    state: str
    """CONNECTED, UNREACHABLE, LOST, DISCONNECTED, REMOVING, SCHEDULING_DISABLED, ENABLED,
    REPORTED (its start task's progress, or errors), SHORT_OF_DISK, DISK_SPACE_BACK."""


Event = (TaskChanged | TasksAdded | TaskRemoved | JobChanged | JobAdded | JobUpdated
         | JobRemoved | NodeChanged)


@dataclass
class Plan:
    rows: list[Row] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    close_streams: list[NodeKey] = field(default_factory=list)
    """Streams to end: their nodes must say hello again before they are trusted."""
    dispatch: bool = False
    """Something became ready or a slot became free: run a dispatch round."""
    reply: object = None

    def send(self, node: NodeKey, stream_id: int, message: Message) -> None:
        self.sends.append(Send(node, stream_id, message))

    def then(self, later: Plan) -> Plan:
        """This plan followed by one decided right after it, applied as one: one commit,
        and its messages after this one's."""
        self.rows += later.rows
        self.sends += later.sends
        self.events += later.events
        self.close_streams += later.close_streams
        self.dispatch = self.dispatch or later.dispatch
        return self

    def __bool__(self) -> bool:
        return bool(self.rows or self.sends or self.events or self.close_streams or self.dispatch)
