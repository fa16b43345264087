"""Pure pool-manager logic: node state derivation, choice of nodes to remove, the reconcile
plan, transitions and validation. No I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.common.errors import Code, ShoalError
from services.pool_manager.model import (
    AllocationState,
    DeallocationOption,
    Node,
    NodeCounts,
    NodeError,
    NodeRowState,
    NodeState,
    Pool,
    PoolState,
    ReportedSession,
    SessionState,
    allocation_state,
    choose_nodes_to_remove,
    node_state,
    node_view,
    plan_pool,
    process_ended,
    removals,
    start_delay,
    validate_new_pool,
)

T0 = 1_700_000_000.0


def make_pool(**kw: object) -> Pool:
    base = Pool(account="acct", id="p1", target_nodes=2, task_slots_per_node=4,
                join_token="tok", create_time=T0, state_transition_time=T0)
    return replace(base, **kw)  # type: ignore[arg-type]


def make_node(node_id: str = "node-00000001", age: float = 0.0, **kw: object) -> Node:
    base = Node(account="acct", pool_id="p1", node_id=node_id, create_time=T0 + age,
                state_transition_time=T0 + age, state=NodeRowState.ACTIVE, pid=100)
    return replace(base, **kw)  # type: ignore[arg-type]


def connected(node_id: str, running: int = 0) -> ReportedSession:
    return ReportedSession(node_id, SessionState.CONNECTED, total_slots=4, running_slots=running,
                   running_tasks=running, completed_tasks=3, last_heartbeat_time=T0 + 5,
                   hostname="live-host")


# --- node state -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "session", "expected"),
    [
        (NodeRowState.STARTING, None, NodeState.STARTING),
        (NodeRowState.ACTIVE, None, NodeState.STARTING),
        (NodeRowState.ACTIVE, connected("n"), NodeState.IDLE),
        (NodeRowState.ACTIVE, connected("n", running=2), NodeState.RUNNING),
        (NodeRowState.ACTIVE, ReportedSession("n", SessionState.UNREACHABLE), NodeState.UNREACHABLE),
        (NodeRowState.ACTIVE, ReportedSession("n", SessionState.LOST), NodeState.LOST),
        (NodeRowState.LEAVING, connected("n", running=2), NodeState.LEAVING),
        (NodeRowState.LEAVING, None, NodeState.LEAVING),
        (NodeRowState.ACTIVE, replace(connected("n", running=1), errors=(
            NodeError("DISK_FULL", "short of disk space", T0),)), NodeState.UNUSABLE),
        (NodeRowState.ACTIVE, replace(connected("n"), errors=(
            NodeError("JOB_PREPARATION_TASK_FAILED", "exit 1", T0),)), NodeState.IDLE),
    ],
)
def test_node_state_from_row_and_session(
    row: NodeRowState, session: ReportedSession | None, expected: NodeState
) -> None:
    assert node_state(make_node(state=row), session, scheduler_known=True) is expected


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (NodeRowState.ACTIVE, NodeState.UNREACHABLE),
        (NodeRowState.STARTING, NodeState.STARTING),
        (NodeRowState.LEAVING, NodeState.LEAVING),
    ],
)
def test_node_state_when_the_scheduler_cannot_be_asked(
    row: NodeRowState, expected: NodeState
) -> None:
    assert node_state(make_node(state=row), None, scheduler_known=False) is expected


def test_node_view_takes_live_figures_from_the_session() -> None:
    pool = make_pool()
    node = make_node(hostname="registered-host")
    view = node_view(pool, node, {node.node_id: connected(node.node_id, running=2)})
    assert (view.state, view.running_tasks, view.running_task_slots) == (NodeState.RUNNING, 2, 2)
    assert (view.completed_tasks, view.last_heartbeat_time) == (3, T0 + 5)
    assert view.hostname == "live-host"

    offline = node_view(pool, node, {})
    assert offline.state is NodeState.STARTING
    assert offline.total_task_slots == pool.task_slots_per_node
    assert offline.hostname == "registered-host"
    assert offline.last_heartbeat_time is None


# --- choosing nodes to remove -------------------------------------------------------------


def test_shrink_removes_unconnected_then_broken_then_idle_then_least_busy() -> None:
    busy3 = make_node("node-busy3", age=1)
    busy1 = make_node("node-busy1", age=2)
    idle = make_node("node-idle", age=3)
    lost = make_node("node-lost", age=4)
    fresh = make_node("node-fresh", age=5, state=NodeRowState.STARTING)
    leaving = make_node("node-leaving", age=6, state=NodeRowState.LEAVING)
    sessions = {
        "node-busy3": connected("node-busy3", 3),
        "node-busy1": connected("node-busy1", 1),
        "node-idle": connected("node-idle"),
        "node-lost": ReportedSession("node-lost", SessionState.LOST),
    }
    nodes = [busy3, busy1, idle, lost, fresh, leaving]
    chosen = choose_nodes_to_remove(nodes, sessions, 5)
    assert [n.node_id for n in chosen] == [
        "node-fresh", "node-lost", "node-idle", "node-busy1", "node-busy3"
    ]
    assert [n.node_id for n in choose_nodes_to_remove(nodes, sessions, 2)] == [
        "node-fresh", "node-lost"
    ]


def test_shrink_prefers_the_newest_among_equally_idle_nodes() -> None:
    old, new = make_node("node-old", age=0), make_node("node-new", age=10)
    sessions = {n.node_id: connected(n.node_id) for n in (old, new)}
    assert [n.node_id for n in choose_nodes_to_remove([old, new], sessions, 1)] == ["node-new"]


# --- the reconcile plan -------------------------------------------------------------------


def test_plan_starts_missing_nodes_unless_held_back() -> None:
    pool = make_pool(target_nodes=3)
    nodes = [make_node("node-a"), make_node("node-b", state=NodeRowState.LEAVING)]
    assert plan_pool(pool, nodes, None, may_start=True).start == 2
    assert plan_pool(pool, nodes, None, may_start=False).start == 0


def test_plan_shrinks_only_when_sessions_are_known() -> None:
    pool = make_pool(target_nodes=1, resize_option=DeallocationOption.TASK_COMPLETION)
    a, b = make_node("node-a", age=1), make_node("node-b", age=2)
    assert plan_pool(pool, [a, b], None, may_start=True).leave == ()
    sessions = {"node-a": connected("node-a"), "node-b": connected("node-b", 1)}
    plan = plan_pool(pool, [a, b], sessions, may_start=True)
    assert plan.leave == (("node-a", DeallocationOption.TASK_COMPLETION),)
    assert plan.start == 0


def test_plan_stops_leaving_nodes_once_released_and_idle() -> None:
    pool = make_pool(target_nodes=0)
    waiting = make_node("node-wait", state=NodeRowState.LEAVING)  # RemoveNodes not acked
    busy = make_node("node-busy", state=NodeRowState.LEAVING, leave_notified=True)
    idle = make_node("node-idle", state=NodeRowState.LEAVING, leave_notified=True)
    lost = make_node("node-lost", state=NodeRowState.LEAVING, leave_notified=True)
    gone = make_node("node-gone", state=NodeRowState.LEAVING, leave_notified=True, pid=None)
    nodes = [waiting, busy, idle, lost, gone]
    sessions = {
        "node-busy": connected("node-busy", 1),
        "node-idle": connected("node-idle"),
        "node-lost": replace(connected("node-lost", 2), state=SessionState.LOST),
    }
    plan = plan_pool(pool, nodes, sessions, may_start=True)
    assert sorted(plan.stop) == ["node-idle", "node-lost"]
    assert plan.forget == ("node-gone",)
    assert plan_pool(pool, nodes, sessions, True, busy={"node-idle"}).stop == ("node-lost",)
    # Without the scheduler nobody knows whether a task still runs there.
    unknown = plan_pool(pool, nodes, None, may_start=True)
    assert unknown.stop == () and unknown.forget == ("node-gone",)
    assert removals(nodes) == {DeallocationOption.REQUEUE: ["node-wait"]}


def test_plan_for_a_deleting_pool() -> None:
    pool = make_pool(state=PoolState.DELETING, resize_option=DeallocationOption.TERMINATE)
    nodes = [make_node("node-a"), make_node("node-b", state=NodeRowState.LEAVING)]
    plan = plan_pool(pool, nodes, None, may_start=True)
    assert plan.leave == (("node-a", DeallocationOption.REQUEUE),)
    assert plan.start == 0 and not plan.delete_pool
    assert plan_pool(pool, [], None, may_start=True).delete_pool


def test_allocation_state() -> None:
    pool = make_pool(target_nodes=2)
    assert allocation_state(pool, NodeCounts(2, 0)) is AllocationState.STEADY
    assert allocation_state(pool, NodeCounts(1, 0)) is AllocationState.RESIZING
    assert allocation_state(pool, NodeCounts(3, 1)) is AllocationState.RESIZING
    deleting = replace(pool, state=PoolState.DELETING)
    assert allocation_state(deleting, NodeCounts(0, 0)) is AllocationState.STEADY
    assert allocation_state(deleting, NodeCounts(1, 1)) is AllocationState.RESIZING


# --- transitions --------------------------------------------------------------------------


def test_a_crashed_agent_leaves_with_requeue_and_an_error() -> None:
    node = make_node(state=NodeRowState.ACTIVE)
    after = process_ended(node, "AGENT_EXITED", "exited with code -9", -9, T0 + 50)
    assert after.state is NodeRowState.LEAVING
    assert after.leave_option is DeallocationOption.REQUEUE and not after.leave_notified
    assert after.pid is None
    assert [(e.code, e.time) for e in after.errors] == [("AGENT_EXITED", T0 + 50)]


def test_a_leaving_agent_that_exits_cleanly_needs_nothing_more() -> None:
    node = make_node(state=NodeRowState.LEAVING, leave_option=DeallocationOption.TASK_COMPLETION,
                     leave_notified=True)
    after = process_ended(node, "AGENT_EXITED", "exit 0", 0, T0)
    assert after.leave_notified and after.pid is None and after.errors == ()
    crashed = process_ended(node, "AGENT_EXITED", "killed", -9, T0)
    assert crashed.leave_option is DeallocationOption.REQUEUE and not crashed.leave_notified


def test_start_delay_doubles_and_is_capped() -> None:
    delays = [start_delay(n) for n in range(0, 10)]
    assert delays[:4] == [0.0, 0.5, 1.0, 2.0]
    assert delays == sorted(delays) and delays[-1] == 30.0


# --- validation ---------------------------------------------------------------------------


def test_new_pool_defaults() -> None:
    new = validate_new_pool("Render-1", 0, 0, "", "", {})
    assert (new.task_slots_per_node, new.provider) == (1, "local")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"pool_id": "a/b"}, "pool_id"),
        ({"pool_id": ".."}, "pool_id"),
        ({"pool_id": "a\x00b"}, "pool_id"),
        ({"pool_id": "x" * 65}, "pool_id"),
        ({"pool_id": ""}, "pool_id"),
        ({"target_nodes": -1}, "pool.target_nodes"),
        ({"target_nodes": 1001}, "pool.target_nodes"),
        ({"task_slots_per_node": -1}, "pool.task_slots_per_node"),
        ({"task_slots_per_node": 257}, "pool.task_slots_per_node"),
        ({"provider": "static"}, "pool.provider"),
        ({"display_name": "x" * 1025}, "pool.display_name"),
        ({"metadata": {"k": "v\x00"}}, "pool.metadata"),
    ],
)
def test_bad_pool_fields_name_the_field(kwargs: dict, field: str) -> None:
    args = {"pool_id": "p1", "target_nodes": 1, "task_slots_per_node": 1, "provider": "local",
            "display_name": "", "metadata": {}, **kwargs}
    with pytest.raises(ShoalError) as err:
        validate_new_pool(**args)
    assert err.value.code is Code.INVALID_ARGUMENT
    assert err.value.field == field
    assert err.value.message.startswith(field + ":")
