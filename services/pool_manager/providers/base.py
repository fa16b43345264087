"""What the pool-manager needs from a node provider.

A provider makes a node's agent exist and go away. It knows nothing of pools' targets or the
scheduler: the reconcile loop decides, the provider carries out, and reports agents that ended
on their own through `poll` (after calling the listener given to `watch`, so the loop wakes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

AgentKey = tuple[str, str, str]
"""(account, pool id, node id): how the pool-manager and its provider name a node's agent
process. The pool id is as stored (the case it was created with), which is always the same
for one pool here, and the local provider's node root and log paths are made of it, so it is
not folded to lower case as the scheduler's session key is."""


@dataclass(frozen=True)
class NodeSpec:
    account: str
    pool: str
    node: str
    join_token: str

    @property
    def key(self) -> AgentKey:
        return (self.account, self.pool, self.node)


@dataclass(frozen=True)
class ProcessRef:
    """Enough to find a node's process again after a pool-manager restart."""

    pid: int
    start_time: int | None
    """Process start time in clock ticks since boot (/proc/pid/stat field 22): a pid that was
    reused by another process has another start time, so it is never mistaken for ours."""


@dataclass(frozen=True)
class Exit:
    key: AgentKey
    returncode: int | None
    """None when unknown (the process was not our child)."""


class Provider(Protocol):
    def watch(self, listener: Callable[[], None]) -> None:
        """Call `listener` (from the event loop) whenever an agent ended on its own."""

    async def start(self, spec: NodeSpec) -> ProcessRef:
        """Start the node's agent. Raises OSError when it cannot be started."""

    def adopt(self, spec: NodeSpec, ref: ProcessRef) -> bool:
        """Take over an agent started by an earlier pool-manager; False if it is gone."""

    def running(self, key: AgentKey) -> bool:
        """Whether the node's agent is started or adopted and not known to have ended."""

    def poll(self) -> list[Exit]:
        """Agents that ended on their own since the last call (not those we stopped)."""

    async def stop(self, key: AgentKey) -> None:
        """Stop the node's agent and wait until it is gone."""

    async def remove(self, spec: NodeSpec) -> None:
        """Delete what the node left behind (its node root). Best effort."""

    async def close(self, stop_nodes: bool = True) -> None:
        """Stop every agent (or, with stop_nodes=False, leave them running for a successor)."""
