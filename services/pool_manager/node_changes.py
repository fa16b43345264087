"""Which node views changed, for the node watch (WatchNodes): pure, stdlib and model only.

A node's view is derived from its row and the scheduler's session (model.node_view). The
watch follows what describes the node rather than what every task moves: its state (IDLE
and RUNNING taken as one, since they flip with each task on a small node), scheduling
state, errors, hostname, slots and start task. A change in any of them is an event carrying
the whole view.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from services.pool_manager.model import NodeState, NodeView

Signature = tuple[object, ...]

_READY = frozenset({NodeState.IDLE, NodeState.RUNNING})


class ChangeType(Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    CURRENT = "CURRENT"
    """Not a change: a node as it is when a watch from revision 0 starts."""


class NodeChange(NamedTuple):
    type: ChangeType
    pool_id: str
    node_id: str
    view: NodeView | None
    """The node after the change; None when DELETED."""


def signature(v: NodeView) -> Signature:
    state = "READY" if v.state in _READY else v.state.value
    return (state, v.scheduling_enabled, v.errors, v.hostname, v.total_task_slots,
            v.start_task_info)


def diff(
    pool_id: str, seen: dict[str, Signature], views: list[NodeView]
) -> tuple[list[NodeChange], dict[str, Signature]]:
    """The changes from the signatures last recorded (`seen`, by node id) to these views of
    all of a pool's nodes, and the signatures to record now. Nodes come and go in id order."""
    now = {v.node_id: signature(v) for v in views}
    out: list[NodeChange] = []
    for v in views:
        before = seen.get(v.node_id)
        if before is None:
            out.append(NodeChange(ChangeType.ADDED, pool_id, v.node_id, v))
        elif before != now[v.node_id]:
            out.append(NodeChange(ChangeType.MODIFIED, pool_id, v.node_id, v))
    out += [NodeChange(ChangeType.DELETED, pool_id, node_id, None)
            for node_id in sorted(seen) if node_id not in now]
    return out, now
