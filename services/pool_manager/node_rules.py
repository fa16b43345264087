"""Node operations' pure rules: the rows they write, which scheduling settings the scheduler
still has to be told, and the ids RemoveNodes takes. Stdlib and model only."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from services.common import ids
from services.common.errors import invalid
from services.pool_manager.model import DeallocationOption, Node, NodeRowState, ReportedSession

MAX_REMOVE_NODES = 100


def set_scheduling(node: Node, enabled: bool, option: DeallocationOption) -> Node:
    """The row after Disable/EnableNodeScheduling: owed to the scheduler until it says yes.
    Every disable is sent (with its option), so a second one can, say, requeue the tasks a
    first TASK_COMPLETION let run; enabling an enabled node changes nothing."""
    if enabled and node.scheduling_enabled:
        return node
    return replace(node, scheduling_enabled=enabled, scheduling_option=option,
                   scheduling_notified=False)


def reboot(node: Node, now: float) -> Node:
    """The row of a node whose agent is being restarted. Its errors are cleared, as Azure
    Batch's reboot does: the new agent sets up the node again and reports afresh."""
    return replace(node, state=NodeRowState.STARTING, state_transition_time=now, errors=(),
                   restart_time=now)


def resend_option(option: DeallocationOption) -> DeallocationOption:
    """The option of a disable sent again to a scheduler that forgot it (it restarted).

    The first send already dealt with the tasks that ran then; whatever runs on the node
    now was let finish (TASK_COMPLETION: let it go on) or was given to the node while the
    scheduler did not know (requeue it: a requeue costs no retry, a terminate would fail a
    task the user never asked to stop).
    """
    if option is DeallocationOption.TASK_COMPLETION:
        return option
    return DeallocationOption.REQUEUE


@dataclass(frozen=True)
class SchedulingCall:
    node_id: str
    enabled: bool
    option: DeallocationOption
    resend: bool
    """The scheduler acknowledged this setting before and has since forgotten it."""


def scheduling_owed(nodes: list[Node], sessions: dict[str, ReportedSession] | None) -> list[SchedulingCall]:
    """The SetNodeScheduling calls still owed to the scheduler: settings it never
    acknowledged, and acknowledged ones its session of the node no longer shows (it
    restarted). A node without a session has nothing to tell yet: the scheduler knows a node
    only once its agent connects, and will be told then."""
    owed = []
    for n in nodes:
        if n.state is NodeRowState.LEAVING:
            continue
        if not n.scheduling_notified:
            owed.append(SchedulingCall(n.node_id, n.scheduling_enabled, n.scheduling_option, False))
            continue
        live = sessions.get(n.node_id) if sessions is not None else None
        if live is None or live.scheduling_disabled == (not n.scheduling_enabled):
            continue
        option = resend_option(n.scheduling_option)
        owed.append(SchedulingCall(n.node_id, n.scheduling_enabled, option, True))
    return owed


def check_node_ids(node_ids: Collection[str], field: str = "node_ids") -> list[str]:
    """Validated ids of RemoveNodes, each once (ids match ignoring case)."""
    if not 1 <= len(node_ids) <= MAX_REMOVE_NODES:
        raise invalid(field, f"must name 1 to {MAX_REMOVE_NODES} nodes, got {len(node_ids)}")
    seen: dict[str, str] = {}
    for i, node_id in enumerate(node_ids):
        ids.check_id(node_id, f"{field}[{i}]")
        seen.setdefault(node_id.lower(), node_id)
    return list(seen.values())
