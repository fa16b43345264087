"""Which node views the node watch reports as changed: pure."""

from __future__ import annotations

from dataclasses import replace

from services.pool_manager.model import NodeError, NodeState, NodeView
from services.pool_manager.node_changes import ChangeType, diff


def view(node_id: str, state: NodeState = NodeState.IDLE, **kw: object) -> NodeView:
    base = NodeView(pool_id="P", node_id=node_id, state=state, total_task_slots=2,
                    running_task_slots=0, running_tasks=0, completed_tasks=0,
                    last_heartbeat_time=1.0, create_time=0.0, state_transition_time=0.0,
                    hostname="h", errors=())
    return replace(base, **kw)  # type: ignore[arg-type]


def kinds(changes: list) -> list[tuple[ChangeType, str]]:  # type: ignore[type-arg]
    return [(c.type, c.node_id) for c in changes]


def test_nodes_that_appear_change_or_go_are_reported_in_id_order() -> None:
    changes, seen = diff("P", {}, [view("a", NodeState.STARTING), view("b", NodeState.STARTING)])
    assert kinds(changes) == [(ChangeType.ADDED, "a"), (ChangeType.ADDED, "b")]
    changes, seen = diff("P", seen, [view("a"), view("b", NodeState.STARTING)])
    assert kinds(changes) == [(ChangeType.MODIFIED, "a")]
    assert changes[0].view is not None and changes[0].view.state is NodeState.IDLE
    changes, seen = diff("P", seen, [view("b", NodeState.STARTING)])
    assert kinds(changes) == [(ChangeType.DELETED, "a")]
    assert (changes[0].pool_id, changes[0].view) == ("P", None)
    assert seen.keys() == {"b"}


def test_what_every_task_moves_is_not_a_change_but_what_describes_the_node_is() -> None:
    _, seen = diff("P", {}, [view("a")])
    busy = view("a", NodeState.RUNNING, running_tasks=2, running_task_slots=2,
                completed_tasks=40, last_heartbeat_time=99.0)
    changes, seen = diff("P", seen, [busy])
    assert changes == []  # IDLE -> RUNNING, counters, heartbeat
    for changed in (view("a", NodeState.UNREACHABLE), view("a", scheduling_enabled=False),
                    view("a", errors=(NodeError("AGENT_EXITED", "gone", 5.0),)),
                    view("a", hostname="other"), view("a", start_task_info=b"\x08\x02")):
        got, _ = diff("P", seen, [changed])
        assert kinds(got) == [(ChangeType.MODIFIED, "a")], changed
