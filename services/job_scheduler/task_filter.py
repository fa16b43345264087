"""ListTasks' filter: which fields it takes and what they mean, pure.

    state     = | !=   ACTIVE, PREPARING, RUNNING, COMPLETED
    result    = | !=   SUCCESS, FAILURE (set once a task has COMPLETED)
    node      = | !=   the node of the current or last attempt: its id in the job's pool, or
                       its name "pools/{pool}/nodes/{node}"
    exit_code = != < <= > >=   the exit code of the last attempt's process

A comparison on a field a task does not have yet (no result, no node, no exit code) is false,
for `!=` too: `exit_code != 0` is the tasks whose process exited non-zero. The store turns the
conditions into SQL (store.list_tasks); nothing is filtered in Python.
"""

from __future__ import annotations

from typing import NamedTuple

from services.common.filters import ORDER, Field, Filter, integer, one_of, parse_filter
from services.common.ids import ID_RE
from services.job_scheduler.model import Result, TaskState


class NodeRef(NamedTuple):
    """A node as a filter names it: by id (in the job's pool) or by full name."""

    value: str
    """Lower-cased."""
    is_name: bool


def _node(text: str) -> NodeRef:
    parts = text.split("/")
    if len(parts) == 4 and parts[0] == "pools" and parts[2] == "nodes" and all(
        ID_RE.fullmatch(p) for p in (parts[1], parts[3])
    ):
        return NodeRef(text.lower(), True)
    if ID_RE.fullmatch(text):
        return NodeRef(text.lower(), False)
    raise ValueError(f"{text!r} is neither a node id nor a name like 'pools/{{pool}}/nodes/{{node}}'")


def _state(text: str) -> TaskState:
    return TaskState[one_of({s.name for s in TaskState})(text)]


def _result(text: str) -> Result:
    return Result[one_of({r.name for r in Result})(text)]


FIELDS = {
    "state": Field(_state),
    "result": Field(_result),
    "node": Field(_node),
    "exit_code": Field(integer, ORDER),
}


def parse_task_filter(text: str) -> Filter:
    """ListTasksRequest.filter as typed conditions: TaskState, Result, NodeRef or int values.
    ShoalError(INVALID_ARGUMENT) naming `filter` for anything else."""
    return parse_filter(text, FIELDS)
