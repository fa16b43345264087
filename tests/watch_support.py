"""What a watch client keeps: a copy of a job and its tasks built from JobEvents alone, and
the check that a run of events has neither gaps nor repeats."""

from __future__ import annotations

from collections.abc import Iterable

from shoal.v1 import job_pb2, task_pb2

JobEvent = job_pb2.JobEvent
Task = task_pb2.Task


class LocalCopy:
    def __init__(self) -> None:
        self.job = job_pb2.Job()
        self.tasks: dict[str, task_pb2.Task] = {}

    def apply(self, e: job_pb2.JobEvent) -> None:
        if e.HasField("job"):
            self.job = e.job if e.type != JobEvent.DELETED else job_pb2.Job()
            return
        name = e.task.name
        if e.type == JobEvent.ADDED:
            self.tasks[name] = task_pb2.Task()
            self.tasks[name].CopyFrom(e.task)
        elif e.type == JobEvent.MODIFIED:
            # (With a filter, a task's first event may be a change.)
            copy = self.tasks.setdefault(name, task_pb2.Task(name=name))
            e.update_mask.MergeMessage(e.task, copy, replace_message_field=True)
        elif e.type == JobEvent.DELETED:
            del self.tasks[name]


def comparable(t: task_pb2.Task) -> task_pb2.Task:
    """The fields a watch follows (state_reason, etag, update_time and earlier attempts are
    read-time only)."""
    out = task_pb2.Task()
    out.CopyFrom(t)
    out.ClearField("revision")
    out.ClearField("etag")
    out.ClearField("update_time")
    out.ClearField("state_reason")
    out.execution_info.ClearField("previous_attempts")
    return out


def assert_whole_history(events: Iterable[job_pb2.JobEvent], task_ids: Iterable[str]) -> None:
    """Revisions increase, each change once; every task was added once and then went
    PREPARING, maybe RUNNING (a task that ends at once may skip it) and COMPLETED, once
    each and in that order."""
    events = list(events)
    revs = [e.revision for e in events if e.type != JobEvent.CURRENT]
    assert revs == sorted(set(revs)), "revisions increase, each change once"
    states: dict[str, list[int]] = {}
    for e in events:
        if e.HasField("task"):
            states.setdefault(e.task.name.rsplit("/", 1)[1], []).append(e.task.state)
    for t in task_ids:
        got = states.get(t, [])
        assert got in ([Task.ACTIVE, Task.PREPARING, Task.RUNNING, Task.COMPLETED],
                       [Task.ACTIVE, Task.PREPARING, Task.COMPLETED]), (t, got)
