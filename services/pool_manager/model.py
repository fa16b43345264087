"""Pools and nodes of the pool-manager: dataclasses, validation and pure decisions.

Desired state (a pool's target, a node row's lifecycle) is kept apart from observed state (the
scheduler's session of a node): what users see of a node is derived from both by
`node_view`, and what the reconcile loop does next is decided by `plan_pool`, both pure.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from enum import Enum

from services.common import ids, updates
from services.common.errors import ShoalError, failed_precondition, invalid

MAX_TARGET_NODES = 1000
MAX_TASK_SLOTS = 256
MAX_HOSTNAME = 255
PROVIDERS = ("local",)
# Replacements for agents that die before registering are delayed, doubling up to this, so a
# broken agent installation does not spawn processes in a tight loop.
MAX_START_DELAY = 30.0


class PoolState(Enum):
    ACTIVE = "ACTIVE"
    DELETING = "DELETING"


class AllocationState(Enum):
    STEADY = "STEADY"
    RESIZING = "RESIZING"


class NodeFillType(Enum):
    """How the scheduler places a pool's tasks (it reads the pool through GetPool)."""

    SPREAD = "SPREAD"
    PACK = "PACK"


class DeallocationOption(Enum):
    REQUEUE = "REQUEUE"
    TERMINATE = "TERMINATE"
    TASK_COMPLETION = "TASK_COMPLETION"


class NodeRowState(Enum):
    """The pool-manager's own record of a node's life (desired side)."""

    STARTING = "STARTING"
    """Created; its agent has not registered yet."""
    ACTIVE = "ACTIVE"
    """Its agent registered."""
    LEAVING = "LEAVING"
    """Being removed: the row goes once the scheduler let it go and its process is gone."""


class SessionState(Enum):
    CONNECTED = "CONNECTED"
    UNREACHABLE = "UNREACHABLE"
    LOST = "LOST"


START_TASK_FAILED = "START_TASK_FAILED"
"""The failure code of a node whose start task failed while the pool waits for success."""


class NodeState(Enum):
    """What users see of a node (observed side)."""

    STARTING = "STARTING"
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    UNREACHABLE = "UNREACHABLE"
    LOST = "LOST"
    LEAVING = "LEAVING"
    UNUSABLE = "UNUSABLE"
    START_TASK_FAILED = "START_TASK_FAILED"


POOL_STATES = {s.value for s in PoolState}
NODE_STATES = {s.value for s in NodeState}


@dataclass(frozen=True)
class Pool:
    account: str
    id: str
    target_nodes: int
    task_slots_per_node: int
    join_token: str
    create_time: float
    state_transition_time: float
    display_name: str = ""
    provider: str = "local"
    state: PoolState = PoolState.ACTIVE
    metadata: dict[str, str] = field(default_factory=dict)
    resize_option: DeallocationOption = DeallocationOption.REQUEUE
    """How the nodes removed by the last resize treat their running tasks."""
    app_packages: tuple[tuple[str, str], ...] = ()
    """(application id, version or "" for the default) every node installs when it joins."""
    start_task: bytes | None = None
    """Serialized shoal.v1.StartTask, run by every node when it joins."""
    node_fill_type: NodeFillType = NodeFillType.SPREAD
    pk: int = 0
    """Never reused, unlike ids: a pool created again under an id never has an old etag."""
    revision: int = 1
    """Counts changes of the pool's settings and state (not of its nodes): its etag."""
    update_time: float = 0.0
    """When the settings or state last changed."""

    @property
    def etag(self) -> str:
        return updates.etag(self.pk, self.revision)


def being_deleted(pool: Pool) -> ShoalError:
    """The error of an operation on a pool that is being deleted."""
    return failed_precondition("POOL_BEING_DELETED", f"pool {pool.id!r} is being deleted")


POOL_UPDATABLE = ("start_task", "app_packages", "metadata")
"""The settings of a pool an update may change (Azure Batch's Pool - Update Properties)."""


@dataclass(frozen=True)
class PoolChanges:
    """New values of some of a pool's settings: only those in `fields` change."""

    fields: frozenset[str]
    """Names of Pool attributes, from POOL_UPDATABLE."""
    start_task: bytes | None = None
    app_packages: tuple[tuple[str, str], ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


def updated(pool: Pool, changes: PoolChanges, if_match: str, now: float) -> Pool | None:
    """The pool after an update (Azure Batch's Pool - Patch), or None when the update changes
    nothing (the etag stays). Refused, changing nothing, when `if_match` is stale or the pool
    is being deleted. A new start task or package list is what a node gets when it joins or
    is rebooted: nodes running now keep what they set up with."""
    updates.require(f"pool {pool.id!r}", pool.etag, if_match)
    if pool.state is PoolState.DELETING:
        raise being_deleted(pool)
    new = {f: getattr(changes, f) for f in changes.fields if getattr(pool, f) != getattr(changes, f)}
    if not new:
        return None
    return replace(pool, **new, revision=pool.revision + 1, update_time=now)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NodeError:
    code: str
    message: str
    time: float


@dataclass(frozen=True)
class Node:
    account: str
    pool_id: str
    node_id: str
    create_time: float
    state_transition_time: float
    state: NodeRowState = NodeRowState.STARTING
    hostname: str = ""
    errors: tuple[NodeError, ...] = ()
    pid: int | None = None
    """The agent process we believe alive; None once it is gone (or before it started)."""
    pid_start_time: int | None = None
    """Start time of `pid` in clock ticks (/proc), so a reused pid is never adopted."""
    leave_option: DeallocationOption = DeallocationOption.REQUEUE
    leave_notified: bool = False
    """The scheduler acknowledged RemoveNodes for this node."""
    scheduling_enabled: bool = True
    """Desired: whether the node takes tasks (DisableNodeScheduling / EnableNodeScheduling)."""
    scheduling_option: DeallocationOption = DeallocationOption.REQUEUE
    """How the last DisableNodeScheduling treats the tasks running on the node."""
    scheduling_notified: bool = True
    """The scheduler acknowledged the current scheduling setting (with its option)."""
    restart_time: float | None = None
    """When RebootNode last restarted the node's agent."""


@dataclass(frozen=True)
class ReportedSession:
    """A node's session as the scheduler reports it (shoal.internal.v1.NodeSession): a copy of
    the scheduler's live view, fetched when the pool-manager needs it (reconcile, node views)."""

    node_id: str
    state: SessionState
    total_slots: int = 0
    running_slots: int = 0
    running_tasks: int = 0
    completed_tasks: int = 0
    last_heartbeat_time: float | None = None
    hostname: str = ""
    removing: bool = False
    """The scheduler has taken the node out of scheduling."""
    setup_failure: NodeError | None = None
    """The node's setup failed: it takes no tasks."""
    start_task_info: bytes | None = None
    """Serialized shoal.v1.NodeTaskInfo of the pool's start task, as the agent reported it."""
    errors: tuple[NodeError, ...] = ()
    """Errors the agent reported (failed job preparation tasks)."""
    scheduling_disabled: bool = False
    """The scheduler gives the node no tasks (SetNodeScheduling)."""


@dataclass(frozen=True)
class NodeCounts:
    total: int = 0
    leaving: int = 0


@dataclass(frozen=True)
class PoolView:
    pool: Pool
    current_nodes: int
    allocation_state: AllocationState


@dataclass(frozen=True)
class NodeView:
    pool_id: str
    node_id: str
    state: NodeState
    total_task_slots: int
    running_task_slots: int
    running_tasks: int
    completed_tasks: int
    last_heartbeat_time: float | None
    create_time: float
    state_transition_time: float
    hostname: str
    errors: tuple[NodeError, ...]
    start_task_info: bytes | None = None
    scheduling_enabled: bool = True


@dataclass(frozen=True)
class NewPool:
    """A validated CreatePool request."""

    pool_id: str
    target_nodes: int
    task_slots_per_node: int
    provider: str
    display_name: str
    metadata: dict[str, str]
    app_packages: tuple[tuple[str, str], ...] = ()
    start_task: bytes | None = None
    node_fill_type: NodeFillType = NodeFillType.SPREAD


# --- validation ---------------------------------------------------------------------------


def check_target(value: int, field: str) -> int:
    if not 0 <= value <= MAX_TARGET_NODES:
        raise invalid(field, f"must be 0 to {MAX_TARGET_NODES}, got {value}")
    return value


def validate_new_pool(
    pool_id: str,
    target_nodes: int,
    task_slots_per_node: int,
    provider: str,
    display_name: str,
    metadata: dict[str, str],
) -> NewPool:
    ids.check_id(pool_id, "pool_id")
    check_target(target_nodes, "pool.target_nodes")
    slots = task_slots_per_node or 1
    if not 1 <= slots <= MAX_TASK_SLOTS:
        raise invalid("pool.task_slots_per_node", f"must be 1 to {MAX_TASK_SLOTS}, got {slots}")
    provider = provider or "local"
    if provider not in PROVIDERS:
        raise invalid("pool.provider", f"{provider[:40]!r}: only 'local' is supported yet")
    return NewPool(
        pool_id=pool_id,
        target_nodes=target_nodes,
        task_slots_per_node=slots,
        provider=provider,
        display_name=ids.check_display_name(display_name, "pool.display_name"),
        metadata=ids.check_metadata(metadata, "pool.metadata"),
    )


def check_hostname(value: str) -> str:
    if len(value) > MAX_HOSTNAME or "\x00" in value:
        raise invalid("hostname", f"must be at most {MAX_HOSTNAME} characters, no NUL")
    return value


def new_join_token() -> str:
    # A fixed prefix: a token that began with "-" would read as an option on a command line.
    return "jt_" + secrets.token_urlsafe(32)


def new_node_id(taken: set[str]) -> str:
    while True:
        node_id = "node-" + secrets.token_hex(4)
        if node_id not in taken:
            return node_id


# --- derived views ------------------------------------------------------------------------


def allocation_state(pool: Pool, counts: NodeCounts) -> AllocationState:
    target = 0 if pool.state is PoolState.DELETING else pool.target_nodes
    steady = counts.leaving == 0 and counts.total - counts.leaving == target
    return AllocationState.STEADY if steady else AllocationState.RESIZING


def pool_view(pool: Pool, counts: NodeCounts) -> PoolView:
    return PoolView(pool, counts.total, allocation_state(pool, counts))


def node_state(node: Node, session: ReportedSession | None, scheduler_known: bool) -> NodeState:
    """Observed state from the row and the scheduler's session.

    `scheduler_known` is False when the scheduler could not be asked: a node that had
    registered is then shown UNREACHABLE rather than pretending it is starting.
    """
    if node.state is NodeRowState.LEAVING:
        return NodeState.LEAVING
    if not scheduler_known:
        return NodeState.UNREACHABLE if node.state is NodeRowState.ACTIVE else NodeState.STARTING
    if session is None or node.state is NodeRowState.STARTING:
        # Its agent has not registered yet: a session is of an earlier life (a reboot).
        return NodeState.STARTING
    if session.state is not SessionState.CONNECTED and rebooted_since(node, session):
        return NodeState.STARTING
    if session.state is SessionState.CONNECTED and session.setup_failure is not None:
        if session.setup_failure.code == START_TASK_FAILED:
            return NodeState.START_TASK_FAILED
        return NodeState.UNUSABLE
    if session.state is SessionState.CONNECTED:
        return NodeState.RUNNING if session.running_tasks > 0 else NodeState.IDLE
    if session.state is SessionState.UNREACHABLE:
        return NodeState.UNREACHABLE
    return NodeState.LOST


def rebooted_since(node: Node, session: ReportedSession) -> bool:
    """Whether the node's agent was rebooted after the session was last heard of: the new
    agent registered (and may be running the start task) but has not connected yet.

    This compares the scheduler's clock with ours; with skew between hosts the worst case is
    STARTING shown for UNREACHABLE for a while.
    """
    heard = session.last_heartbeat_time
    return node.restart_time is not None and (heard is None or heard < node.restart_time)


def node_view(pool: Pool, node: Node, sessions: dict[str, ReportedSession] | None) -> NodeView:
    session = sessions.get(node.node_id) if sessions is not None else None
    return NodeView(
        pool_id=pool.id,
        node_id=node.node_id,
        state=node_state(node, session, sessions is not None),
        total_task_slots=session.total_slots if session else pool.task_slots_per_node,
        running_task_slots=session.running_slots if session else 0,
        running_tasks=session.running_tasks if session else 0,
        completed_tasks=session.completed_tasks if session else 0,
        last_heartbeat_time=session.last_heartbeat_time if session else None,
        create_time=node.create_time,
        state_transition_time=node.state_transition_time,
        hostname=(session.hostname if session else "") or node.hostname,
        errors=(*node.errors, *(session.errors if session else ()),
                *((session.setup_failure,) if session and session.setup_failure else ())),
        start_task_info=session.start_task_info if session else None,
        scheduling_enabled=node.scheduling_enabled,
    )


# --- transitions --------------------------------------------------------------------------


def leave(node: Node, option: DeallocationOption, now: float) -> Node:
    if node.state is NodeRowState.LEAVING:
        return node
    return replace(
        node,
        state=NodeRowState.LEAVING,
        state_transition_time=now,
        leave_option=option,
        leave_notified=False,
    )


def process_ended(node: Node, code: str, message: str, returncode: int | None, now: float) -> Node:
    """The row after its agent process went away without us stopping it."""
    gone = replace(node, pid=None, pid_start_time=None)
    if node.state is NodeRowState.LEAVING:
        # An agent told to leave exits 0 once idle; any other end of a leaving node means its
        # running tasks died with it, so ask the scheduler to requeue them now.
        if returncode == 0 or node.leave_option is DeallocationOption.REQUEUE:
            return gone
        return replace(gone, leave_option=DeallocationOption.REQUEUE, leave_notified=False)
    failed = replace(gone, errors=(*node.errors, NodeError(code, message, now)))
    return leave(failed, DeallocationOption.REQUEUE, now)


def start_delay(quick_failures: int) -> float:
    """Seconds to wait before replacing nodes, after this many agents died unregistered."""
    if quick_failures <= 0:
        return 0.0
    return min(MAX_START_DELAY, 0.5 * 2 ** (quick_failures - 1))


# --- decisions ----------------------------------------------------------------------------


def removal_order(node: Node, session: ReportedSession | None) -> tuple[int, int, float, str]:
    """Sort key: the node to remove first sorts first.

    Nodes not connected yet go first (nothing to lose), then broken ones (unreachable, lost),
    then idle ones, then those with the fewest running tasks; newest first among equals.
    """
    if session is None or node.state is NodeRowState.STARTING:
        rank, busy = 0, 0
    elif session.state is not SessionState.CONNECTED:
        rank, busy = 1, 0
    elif session.running_tasks == 0:
        rank, busy = 2, 0
    else:
        rank, busy = 3, session.running_tasks
    return rank, busy, -node.create_time, node.node_id


def choose_nodes_to_remove(
    nodes: list[Node], sessions: dict[str, ReportedSession], count: int
) -> list[Node]:
    candidates = [n for n in nodes if n.state is not NodeRowState.LEAVING]
    candidates.sort(key=lambda n: removal_order(n, sessions.get(n.node_id)))
    return candidates[: max(count, 0)]


def may_stop(node: Node, session: ReportedSession | None) -> bool:
    """Whether a leaving node's process can be stopped without cutting off a running task."""
    return session is None or session.state is SessionState.LOST or session.running_tasks == 0


@dataclass(frozen=True)
class Plan:
    leave: tuple[tuple[str, DeallocationOption], ...] = ()
    """Nodes to mark LEAVING, with how their running tasks are treated."""
    start: int = 0
    """New nodes to start."""
    stop: tuple[str, ...] = ()
    """Leaving nodes the scheduler let go and that run no task: stop their process."""
    forget: tuple[str, ...] = ()
    """Leaving nodes the scheduler let go whose process is gone: delete the row."""
    delete_pool: bool = False


def needs_sessions(pool: Pool, nodes: list[Node]) -> bool:
    staying = sum(1 for n in nodes if n.state is not NodeRowState.LEAVING)
    shrinking = pool.state is PoolState.ACTIVE and staying > pool.target_nodes
    stopping = any(
        n.state is NodeRowState.LEAVING and n.leave_notified and n.pid is not None for n in nodes
    )
    scheduling = any(
        n.state is not NodeRowState.LEAVING
        and (not n.scheduling_enabled or not n.scheduling_notified) for n in nodes
    )
    return shrinking or stopping or scheduling


def plan_pool(
    pool: Pool,
    nodes: list[Node],
    sessions: dict[str, ReportedSession] | None,
    may_start: bool,
    busy: Collection[str] = (),
) -> Plan:
    """What the reconcile loop does next for one pool.

    `sessions` is None when the scheduler could not be asked: then nothing that depends on
    the live side (which nodes to remove, whether a node is idle) is decided this round.
    `busy` are nodes already being stopped.
    """
    staying = [n for n in nodes if n.state is not NodeRowState.LEAVING]
    leave_now: list[tuple[str, DeallocationOption]] = []
    start = 0
    if pool.state is PoolState.DELETING:
        leave_now = [(n.node_id, DeallocationOption.REQUEUE) for n in staying]
    elif len(staying) < pool.target_nodes:
        start = pool.target_nodes - len(staying) if may_start else 0
    elif len(staying) > pool.target_nodes and sessions is not None:
        surplus = choose_nodes_to_remove(staying, sessions, len(staying) - pool.target_nodes)
        leave_now = [(n.node_id, pool.resize_option) for n in surplus]
    stop: list[str] = []
    forget: list[str] = []
    for n in nodes:
        if n.state is not NodeRowState.LEAVING or not n.leave_notified or n.node_id in busy:
            continue
        if n.pid is None:
            forget.append(n.node_id)
        elif sessions is not None and may_stop(n, sessions.get(n.node_id)):
            stop.append(n.node_id)
    return Plan(
        leave=tuple(leave_now),
        start=start,
        stop=tuple(stop),
        forget=tuple(forget),
        delete_pool=pool.state is PoolState.DELETING and not nodes,
    )


def removals(
    nodes: list[Node], sessions: dict[str, ReportedSession] | None = None
) -> dict[DeallocationOption, list[str]]:
    """The RemoveNodes calls still owed to the scheduler, one per option: never sent, or sent
    to a scheduler that has since forgotten them (it restarted: its session is not removing)."""
    owed: dict[DeallocationOption, list[str]] = {}
    for n in nodes:
        if n.state is not NodeRowState.LEAVING:
            continue
        live = sessions.get(n.node_id) if sessions else None
        if not n.leave_notified or (live is not None and not live.removing):
            owed.setdefault(n.leave_option, []).append(n.node_id)
    return owed
