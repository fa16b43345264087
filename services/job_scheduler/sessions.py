"""Live node sessions and their liveness rules, pure.

A session is what the scheduler knows of a node from its agent stream. The app owns the
stream; this module decides when a silent node is unreachable or lost, and which nodes can
take work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from services.job_scheduler.model import Failure

NodeKey = tuple[str, str, str]
"""(account, pool id lower-case, node id)."""


class Liveness(IntEnum):
    # Values match shoal.internal.v1.NodeSession.State.
    CONNECTED = 1
    UNREACHABLE = 2
    LOST = 3


@dataclass
class NodeSession:
    key: NodeKey
    pool_id: str
    node_id: str
    total_slots: int
    last_seen: float
    hostname: str = ""
    liveness: Liveness = Liveness.CONNECTED
    connected: bool = True
    """A stream is open now."""
    removing: bool = False
    """The pool-manager is taking the node away: no new work."""
    scheduling_disabled: bool = False
    """DisableNodeScheduling (through the pool-manager): no new work until enabled. Kept
    across reconnects, as the session is; the pool-manager sends it again after a restart."""
    used_slots: int = 0
    attempts: set[str] = field(default_factory=set)
    completed_tasks: int = 0
    stream_id: int = 0
    """Which Connect call owns the session; a newer one replaces an older one."""
    setup_failure: Failure | None = None
    """The node's setup failed (its Hello said so): it takes no tasks."""
    start_task_info: bytes | None = None
    """Serialized shoal.v1.NodeTaskInfo of the pool's start task, as the agent reports it."""
    errors: list[bytes] = field(default_factory=list)
    """Serialized shoal.v1.NodeError the agent reported, newest last."""

    @property
    def free_slots(self) -> int:
        return self.total_slots - self.used_slots

    @property
    def schedulable(self) -> bool:
        return (self.connected and not self.removing and not self.scheduling_disabled
                and self.setup_failure is None and self.liveness == Liveness.CONNECTED)

    @property
    def observed(self) -> Liveness:
        """Liveness as shown to people: a dropped stream is unreachable until it is lost."""
        if self.connected or self.liveness == Liveness.LOST:
            return self.liveness
        return Liveness.UNREACHABLE

    @property
    def name(self) -> str:
        return f"pools/{self.pool_id}/nodes/{self.node_id}"


def fence_after(heartbeat_interval: float, lost_after: float, reconnect_grace: float) -> float:
    """How long an agent may go without the scheduler confirming it heard it before it must
    kill its running attempts itself (Welcome.fence_after).

    The scheduler requeues a silent node's attempts `lost_after` after it last heard it, and,
    after a restart, those of nodes that did not reconnect within `reconnect_grace`; either
    way no sooner than that long after the agent's last confirmed heartbeat was sent. The
    agent must be done before then, so it fences a margin earlier: two heartbeat intervals
    (at least 1 s, at most half the window) for a slow event loop and the kill itself.
    """
    window = min(lost_after, reconnect_grace)
    return window - min(max(1.0, 2 * heartbeat_interval), window / 2)


def check_liveness(
    sessions: list[NodeSession], now: float, unreachable_after: float, lost_after: float
) -> tuple[list[NodeSession], list[NodeSession]]:
    """Sessions that just became (unreachable, lost). Mutates their liveness."""
    unreachable, lost = [], []
    for s in sessions:
        silent = now - s.last_seen
        if s.liveness != Liveness.LOST and silent >= lost_after:
            s.liveness = Liveness.LOST
            lost.append(s)
        elif s.liveness == Liveness.CONNECTED and silent >= unreachable_after:
            s.liveness = Liveness.UNREACHABLE
            unreachable.append(s)
    return unreachable, lost
