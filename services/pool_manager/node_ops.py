"""Node operations, as Azure Batch has them: disable and enable a node's scheduling, reboot a
node, remove named nodes — and the reconcile step that keeps the scheduler's view of
scheduling in line with the node rows.

The node row is the record of what the user asked (scheduling on or off, and the option of
the last disable); the scheduler holds it in memory only, per live session. So the row is
written first, the scheduler told at once if it can be, and the reconcile loop tells it again
whatever it did not acknowledge or has forgotten (a restart), as it does for removals.

Everything that changes node rows runs under the reconcile loop's lock, so a round never acts
on rows read before the change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from services.common.errors import failed_precondition, not_found
from services.common.timeutil import Clock
from services.pool_manager.model import (
    DeallocationOption,
    Node,
    NodeCounts,
    NodeRowState,
    NodeView,
    Pool,
    PoolState,
    PoolView,
    ReportedSession,
    being_deleted,
    leave,
    node_view,
    pool_view,
)
from services.pool_manager.node_rules import check_node_ids, reboot, scheduling_owed, set_scheduling
from services.pool_manager.providers.base import AgentKey, Provider
from services.pool_manager.scheduler_peer import SchedulerPeer
from services.pool_manager.store import Store

log = structlog.get_logger()

Spawn = Callable[[Pool, Node, float], Awaitable[None]]


class NodeOps:
    def __init__(
        self,
        store: Store,
        scheduler: SchedulerPeer,
        provider: Provider,
        clock: Clock,
        round_lock: asyncio.Lock,
        stopping: dict[AgentKey, asyncio.Task[None]],
        spawn: Spawn,
        wake: Callable[[], None],
    ) -> None:
        """`round_lock` and `stopping` are the reconcile loop's own: its lock, and the nodes
        whose agent is being stopped (which the loop leaves alone); `spawn` starts a node's
        agent and records its process."""
        self._store = store
        self._scheduler = scheduler
        self._provider = provider
        self._clock = clock
        self._round = round_lock
        self._stopping = stopping
        self._spawn = spawn
        self._wake = wake

    async def _pool(self, account: str, pool_id: str) -> Pool:
        structlog.contextvars.bind_contextvars(pool=pool_id)
        pool = await self._store.get_pool(account, pool_id)
        if pool is None:
            raise not_found("pool", f"pools/{pool_id}")
        return pool

    async def _node(self, pool: Pool, node_id: str) -> Node:
        structlog.contextvars.bind_contextvars(node=node_id)
        node = await self._store.get_node(pool.account, pool.id, node_id)
        if node is None:
            raise not_found("node", f"pools/{pool.id}/nodes/{node_id}")
        return node

    async def _present(self, account: str, pool_id: str, node_id: str) -> tuple[Pool, Node]:
        """The pool and node as they are now, if the node still takes operations."""
        pool = await self._pool(account, pool_id)
        if pool.state is PoolState.DELETING:
            raise being_deleted(pool)
        node = await self._node(pool, node_id)
        if node.state is NodeRowState.LEAVING:
            name = f"pools/{pool.id}/nodes/{node.node_id}"
            raise failed_precondition("NODE_LEAVING", f"node {name!r} is leaving its pool")
        return pool, node

    async def _view(self, pool: Pool, node_id: str) -> NodeView:
        node = await self._node(pool, node_id)
        return node_view(pool, node, await self._scheduler.sessions(pool.account, pool.id))

    # --- scheduling ---------------------------------------------------------------------------

    async def set_scheduling(
        self, account: str, pool_id: str, node_id: str, enabled: bool, option: DeallocationOption
    ) -> NodeView:
        """DisableNodeScheduling (enabled False) and EnableNodeScheduling. Succeeds once the
        setting is recorded: a scheduler that cannot be reached now is told by the loop."""
        async with self._round:
            pool, node = await self._present(account, pool_id, node_id)
            wanted = set_scheduling(node, enabled, option)
            if wanted != node and await self._store.set_scheduling(wanted):
                log.info("node scheduling " + ("enabled" if enabled else "disabled"),
                         option=None if enabled else option.value)
                await self._tell(wanted, enabled, option)
        return await self._view(pool, node.node_id)

    async def _tell(self, node: Node, enabled: bool, option: DeallocationOption) -> bool:
        """Send a setting; once acknowledged, the row says so. Unacknowledged, it is sent
        again by the loop's next round (which comes at its interval: waking it would spin
        while the scheduler is away)."""
        ok = await self._scheduler.set_node_scheduling(
            node.account, node.pool_id, node.node_id, enabled, option)
        if ok and not node.scheduling_notified:
            await self._store.set_scheduling_notified(node)
        return ok

    async def sync_scheduling(
        self, pool: Pool, nodes: list[Node], sessions: dict[str, ReportedSession] | None
    ) -> None:
        """The reconcile step: tell the scheduler the settings it lacks. Called by the loop,
        under its lock, with the rows and sessions of its round."""
        for call in scheduling_owed(nodes, sessions):
            if call.resend:
                log.info("scheduler forgot a node's scheduling setting; sending it again",
                         node=call.node_id, enabled=call.enabled, option=call.option.value)
            node = next(n for n in nodes if n.node_id == call.node_id)
            if not await self._tell(node, call.enabled, call.option):
                return  # the scheduler is away: the next round tries again

    # --- reboot ------------------------------------------------------------------------------

    async def reboot(self, account: str, pool_id: str, node_id: str) -> NodeView:
        """Restart the node's agent with the same node id and root. Its running tasks are
        requeued by the scheduler when the new agent connects and reports none running; its
        start task runs again. Returns at once, the node STARTING."""
        async with self._round:
            pool, node = await self._present(account, pool_id, node_id)
            key = (pool.account, pool.id, node.node_id)
            if key not in self._stopping:  # else a reboot is under way already
                await self._store.set_rebooting(reboot(node, self._clock()))
                # In `stopping` from now on, so the loop takes the agent's end for ours.
                self._stopping[key] = asyncio.create_task(self._restart(pool, node.node_id))
                log.info("node rebooting")
        return await self._view(pool, node.node_id)

    async def _restart(self, pool: Pool, node_id: str) -> None:
        key = (pool.account, pool.id, node_id)
        try:
            await self._provider.stop(key)
            async with self._round:
                node = await self._store.get_node(pool.account, pool.id, node_id)
                if node is None:
                    return
                if node.state is NodeRowState.LEAVING:
                    # Removed meanwhile: stay stopped; the loop lets it go.
                    await self._store.set_process(pool.account, pool.id, node_id, None, None)
                    return
                await self._spawn(pool, node, self._clock())
                log.info("node agent restarted", node=node_id)
        except Exception:  # noqa: BLE001 - the loop sees an agent that is not running
            log.exception("could not restart the node's agent", node=node_id)
        finally:
            self._stopping.pop(key, None)
            self._wake()

    # --- remove ------------------------------------------------------------------------------

    async def remove(
        self, account: str, pool_id: str, node_ids: list[str], option: DeallocationOption
    ) -> PoolView:
        """Remove exactly the named nodes and lower the pool's target by as many. Nodes that
        are leaving already are not counted again. An unknown id changes nothing."""
        wanted = check_node_ids(node_ids)
        async with self._round:
            pool = await self._pool(account, pool_id)
            if pool.state is PoolState.DELETING:
                raise being_deleted(pool)
            rows = {n.node_id.lower(): n for n in await self._store.list_nodes(account, pool.id)}
            for node_id in wanted:
                if node_id.lower() not in rows:
                    raise not_found("node", f"pools/{pool.id}/nodes/{node_id}")
            now = self._clock()
            chosen = [rows[i.lower()] for i in wanted]
            leaving = [leave(n, option, now) for n in chosen if n.state is not NodeRowState.LEAVING]
            await self._store.remove_nodes(pool, leaving, now)
        self._wake()
        pool = await self._pool(account, pool.id)
        log.info("nodes removed by request", nodes=[n.node_id for n in leaving],
                 option=option.value, target_nodes=pool.target_nodes)
        counts = await self._store.node_counts(account, [pool.id])
        return pool_view(pool, counts.get(pool.id.lower(), NodeCounts()))
