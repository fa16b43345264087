"""The pool-manager's use cases and its reconcile loop, transport-free.

Calls change desired state in the store and wake the loop; the loop compares every pool with
its target and carries out `model.plan_pool` through the provider and the scheduler. Whatever
the loop meets (a dead scheduler, an agent that will not start), it logs and tries again next
round: it never stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import structlog

from services.common import credentials, filters, ids
from services.common.errors import (
    Code,
    ShoalError,
    already_exists,
    not_found,
)
from services.common.paging import PageRequest
from services.common.stager_client import StagingClient
from services.common.timeutil import Clock, wall_clock
from services.pool_manager.model import (
    NODE_STATES,
    POOL_STATES,
    DeallocationOption,
    NewPool,
    Node,
    NodeCounts,
    NodeRowState,
    NodeView,
    Pool,
    PoolChanges,
    PoolState,
    PoolView,
    being_deleted,
    check_hostname,
    check_target,
    leave,
    needs_sessions,
    new_join_token,
    new_node_id,
    node_view,
    plan_pool,
    pool_view,
    process_ended,
    removals,
    start_delay,
    updated,
)
from services.pool_manager.node_changes import NodeChange
from services.pool_manager.node_feed import NodeFeed
from services.pool_manager.node_ops import NodeOps
from services.pool_manager.providers.base import AgentKey, NodeSpec, ProcessRef, Provider
from services.pool_manager.quotas import Usage, check_new_pool, check_target_nodes
from services.pool_manager.scheduler_peer import SchedulerPeer
from services.pool_manager.store import Store
from shoal.agent.v1 import agent_pb2
from shoal.cluster_config import ClusterConfig
from shoal.internal.v1 import staging_pb2
from shoal.v1 import application_pb2, task_pb2

log = structlog.get_logger()


@dataclass(frozen=True)
class Registration:
    node_name: str
    credential: str
    scheduler_address: str
    task_slots: int
    packages: tuple[agent_pb2.PackageGrant, ...] = ()
    setup_failure: task_pb2.FailureInfo | None = None
    start_task: agent_pb2.StartTaskRun | None = None


@dataclass(frozen=True)
class Census:
    pools: list[Pool]
    node_states: dict[tuple[str, str, str], int]
    """(account, pool id, NodeState value) -> nodes."""


def _key(pool: Pool, node_id: str) -> AgentKey:
    return (pool.account, pool.id, node_id)


class PoolManager:
    def __init__(
        self,
        store: Store,
        provider: Provider,
        scheduler: SchedulerPeer,
        config: ClusterConfig,
        clock: Clock = wall_clock,
        interval: float = 0.5,
        stager: StagingClient | None = None,
    ) -> None:
        self._store = store
        self._stager = stager
        self._provider = provider
        self._scheduler = scheduler
        self._config = config
        self._clock = clock
        self._interval = interval
        self._wake = asyncio.Event()
        self._round = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping: dict[AgentKey, asyncio.Task[None]] = {}
        self._exits: dict[AgentKey, int | None] = {}
        """Exit codes polled from the provider and not yet taken by a round (an agent may end
        while a round is past its pool)."""
        self._quota = asyncio.Lock()
        """Held from a quota's check to the write it allows, so two creates cannot both take
        the last pool."""
        self._pool_edits = 0
        """Resizes and deletes so far: a round re-reads a pool only if one landed during it."""
        # Per pool (account, lower id): agents that died before registering, and when the
        # next replacement may start.
        self._failures: dict[tuple[str, str], int] = {}
        self._not_before: dict[tuple[str, str], float] = {}
        self.nodes = NodeOps(store, scheduler, provider, clock, self._round, self._stopping,
                             self._spawn, self.wake)
        """Node operations: scheduling on and off, reboot, removal of named nodes."""
        self.feed = NodeFeed(store, scheduler, self.pool_views, config.watch)
        """The node watch (WatchNodes)."""

    # --- pools ----------------------------------------------------------------------------

    async def create_pool(self, account: str, new: NewPool) -> PoolView:
        structlog.contextvars.bind_contextvars(pool=new.pool_id)
        now = self._clock()
        pool = Pool(
            account=account,
            id=new.pool_id,
            target_nodes=new.target_nodes,
            task_slots_per_node=new.task_slots_per_node,
            join_token=new_join_token(),
            create_time=now,
            state_transition_time=now,
            display_name=new.display_name,
            provider=new.provider,
            metadata=new.metadata,
            app_packages=new.app_packages,
            start_task=new.start_task,
            node_fill_type=new.node_fill_type,
            update_time=now,
        )
        async with self._quota:
            check_new_pool(self._config.limits, await self._usage(account), pool.target_nodes)
            inserted = await self._store.insert_pool(pool)
            if inserted is None:
                raise already_exists("pool", new.pool_id)
            pool = inserted
        log.info("pool created", target_nodes=pool.target_nodes, slots=pool.task_slots_per_node)
        self.wake()
        return pool_view(pool, NodeCounts())

    async def _usage(self, account: str) -> Usage:
        pools, nodes = await self._store.usage(account)
        return Usage(pools=pools, target_nodes=nodes)

    async def _pool(self, account: str, pool_id: str) -> Pool:
        structlog.contextvars.bind_contextvars(pool=pool_id)
        pool = await self._store.get_pool(account, pool_id)
        if pool is None:
            raise not_found("pool", f"pools/{pool_id}")
        return pool

    async def _view(self, pool: Pool) -> PoolView:
        counts = await self._store.node_counts(pool.account, [pool.id])
        return pool_view(pool, counts.get(pool.id.lower(), NodeCounts()))

    async def get_pool(self, account: str, pool_id: str) -> PoolView:
        return await self._view(await self._pool(account, pool_id))

    async def list_pools(
        self, account: str, want: PageRequest, filter_text: str
    ) -> tuple[list[PoolView], str]:
        """A page of the account's pools and the next page's token."""
        states = filters.parse_state_filter(filter_text, POOL_STATES)
        pools, token = want.page(
            await self._store.list_pools(account, want.after, want.limit, states),
            lambda p: p.id.lower())
        counts = await self._store.node_counts(account, [p.id for p in pools])
        return [pool_view(p, counts.get(p.id.lower(), NodeCounts())) for p in pools], token

    async def resize_pool(
        self, account: str, pool_id: str, target: int, option: DeallocationOption
    ) -> PoolView:
        check_target(target, "target_nodes")
        async with self._quota:
            pool = await self._pool(account, pool_id)
            if pool.state is not PoolState.DELETING:
                check_target_nodes(self._config.limits, await self._usage(account),
                                   pool.target_nodes, target)
            if pool.state is PoolState.DELETING or not await self._store.resize_pool(
                account, pool.id, target, option, self._clock()
            ):
                raise being_deleted(pool)
        self._pool_edits += 1
        log.info("pool resized", target_nodes=target, option=option.value)
        self.wake()
        return await self.get_pool(account, pool.id)

    async def update_pool(
        self, account: str, pool_id: str, changes: PoolChanges, if_match: str
    ) -> PoolView:
        """Azure Batch's Pool - Patch: only `changes.fields` change. Nothing is pushed to
        nodes: registration hands every node the pool as it is then, so a node that joins
        (a resize) or is rebooted from now on gets the new start task and packages."""
        while True:
            pool = await self._pool(account, pool_id)
            new = updated(pool, changes, if_match, self._clock())
            if new is None:
                return await self._view(pool)
            # Written only if the pool is still the one decided on; else decide again on
            # what it is now (a stale if_match then fails).
            if await self._store.update_pool(new, pool.revision):
                break
        log.info("pool updated", fields=sorted(changes.fields), etag=new.etag)
        return await self._view(new)

    async def delete_pool(self, account: str, pool_id: str) -> None:
        pool = await self._pool(account, pool_id)
        await self._store.mark_pool_deleting(account, pool.id, self._clock())
        self._pool_edits += 1
        log.info("pool deleting")
        self.wake()

    # --- nodes ----------------------------------------------------------------------------

    async def list_nodes(
        self, account: str, pool_id: str, want: PageRequest, filter_text: str
    ) -> tuple[list[NodeView], str]:
        """A page of a pool's nodes and the next page's token."""
        after = want.after
        states = filters.parse_state_filter(filter_text, NODE_STATES)
        pool = await self._pool(account, pool_id)
        # The state filter applies to derived states, so a pool's nodes (at most ~1000) are
        # derived in full and paged here rather than in SQL.
        views = [v for v in await self._node_views(pool)
                 if after is None or v.node_id.lower() > after]
        if states is not None:
            views = [v for v in views if v.state.value in states]
        return want.page(views, lambda v: v.node_id.lower())

    async def _node_views(self, pool: Pool) -> list[NodeView]:
        rows = await self._store.list_nodes(pool.account, pool.id)
        sessions = await self._scheduler.sessions(pool.account, pool.id) if rows else {}
        return [node_view(pool, n, sessions) for n in rows]

    async def pool_views(self, account: str, pool_id: str) -> tuple[Pool, list[NodeView]] | None:
        """The pool and every node of it as users see them; None if there is no such pool."""
        pool = await self._store.get_pool(account, pool_id)
        return None if pool is None else (pool, await self._node_views(pool))

    async def revision(self, account: str) -> int:
        """The account's node revision: what a ListNodes or GetNode answered now reflects."""
        return await self.feed.revision(account)

    def watch_nodes(
        self, account: str, pool_id: str, from_revision: int
    ) -> AsyncIterator[tuple[list[tuple[int, NodeChange]], int]]:
        structlog.contextvars.bind_contextvars(pool=pool_id)
        return self.feed.watch(account, pool_id, from_revision)

    async def get_node(self, account: str, pool_id: str, node_id: str) -> NodeView:
        pool = await self._pool(account, pool_id)
        structlog.contextvars.bind_contextvars(node=node_id)
        node = await self._store.get_node(account, pool.id, node_id)
        if node is None:
            raise not_found("node", f"pools/{pool.id}/nodes/{node_id}")
        return node_view(pool, node, await self._scheduler.sessions(account, pool.id))

    async def census(self) -> Census:
        """Every pool of every account and how many of its nodes are in each state, as
        GetNode would show them: one read of the rows, one session look-up per pool that
        has nodes. For the metrics, at scrape time."""
        nodes: dict[tuple[str, str], list[Node]] = {}
        for n in await self._store.all_nodes():
            nodes.setdefault((n.account, n.pool_id.lower()), []).append(n)
        pools = await self._store.all_pools()
        states: dict[tuple[str, str, str], int] = {}
        for pool in pools:
            rows = nodes.get((pool.account, pool.id.lower()), [])
            sessions = await self._scheduler.sessions(pool.account, pool.id) if rows else {}
            for n in rows:
                k = (pool.account, pool.id, node_view(pool, n, sessions).state.value)
                states[k] = states.get(k, 0) + 1
        return Census(pools, states)

    async def register_node(self, join_token: str, node_id: str, hostname: str) -> Registration:
        ids.check_id(node_id, "node_id")
        check_hostname(hostname)
        pool = await self._store.pool_by_token(join_token) if join_token else None
        if pool is None or not hmac.compare_digest(pool.join_token, join_token):
            raise ShoalError(Code.UNAUTHENTICATED, "INVALID_JOIN_TOKEN", "join_token: not valid")
        structlog.contextvars.bind_contextvars(account=pool.account, pool=pool.id, node=node_id)
        node = await self._store.get_node(pool.account, pool.id, node_id)
        if node is None:
            raise not_found("node", f"pools/{pool.id}/nodes/{node_id}")
        await self._store.register_node(pool.account, pool.id, node.node_id, hostname, self._clock())
        pkey = (pool.account, pool.id.lower())
        self._failures.pop(pkey, None)
        self._not_before.pop(pkey, None)
        log.info("node registered", hostname=hostname)
        self.wake()
        slots = pool.task_slots_per_node
        ident = credentials.NodeIdentity(pool.account, pool.id, node.node_id, slots)
        packages, failure, start = await self._setup_grants(pool)
        return Registration(
            node_name=f"pools/{pool.id}/nodes/{node.node_id}",
            credential=credentials.mint(self._config, ident),
            scheduler_address=self._config.job_scheduler_address,
            task_slots=slots,
            packages=packages,
            setup_failure=failure,
            start_task=start,
        )

    async def _setup_grants(self, pool: Pool) -> tuple[
        tuple[agent_pb2.PackageGrant, ...], task_pb2.FailureInfo | None, agent_pb2.StartTaskRun | None
    ]:
        """URLs for the pool's application packages and its start task's files, signed for
        this registration (a restarted agent registers again and gets fresh ones)."""
        start = agent_pb2.StartTaskRun(spec=task_pb2.StartTask.FromString(pool.start_task)) \
            if pool.start_task else None
        specs = []
        if pool.app_packages:
            specs.append(staging_pb2.DownloadSpec(application_packages=[
                application_pb2.ApplicationPackageReference(application_id=a, version=v)
                for a, v in pool.app_packages]))
        if start is not None and start.spec.resource_files:
            specs.append(staging_pb2.DownloadSpec(resource_files=start.spec.resource_files))
        if not specs:
            return (), None, start
        if self._stager is None:
            raise ShoalError(Code.FAILED_PRECONDITION, "STORAGE_NOT_CONFIGURED",
                             "the pool needs storage, which is not configured")
        # StagingUnavailable (UNAVAILABLE) goes to the agent, which retries registration: a
        # node must not start without its setup.
        grants = await self._stager.grant_downloads(pool.account, specs)
        packages: tuple[agent_pb2.PackageGrant, ...] = ()
        failure = None
        if pool.app_packages:
            g = grants.pop(0)
            if g.HasField("failure") and g.failure.code:
                log.warning("pool packages cannot be granted", code=g.failure.code,
                            message=g.failure.message)
                failure = g.failure
            packages = tuple(g.packages)
        if start is not None and grants:
            g = grants.pop(0)
            if g.HasField("failure") and g.failure.code:
                start.failure.CopyFrom(g.failure)
            start.downloads.extend(g.downloads)
        return packages, failure, start

    # --- life of the service ----------------------------------------------------------------

    async def start(self) -> None:
        """Take up the nodes of an earlier run, then start the reconcile loop."""
        await self.feed.start()
        pools = {(p.account, p.id.lower()): p for p in await self._store.all_pools()}
        now = self._clock()
        for node in await self._store.all_nodes():
            pool = pools.get((node.account, node.pool_id.lower()))
            if pool is None:  # cannot happen with the foreign key; never block a start on it
                log.error("node of an unknown pool", node=node.node_id, pool=node.pool_id)
                continue
            spec = NodeSpec(pool.account, pool.id, node.node_id, pool.join_token)
            if node.pid is not None and self._provider.adopt(
                spec, ProcessRef(node.pid, node.pid_start_time)
            ):
                continue
            if node.state is NodeRowState.LEAVING:
                if node.pid is not None:
                    await self._store.set_process(node.account, pool.id, node.node_id, None, None)
                continue
            # Same id and node root, so results still in the agent's outbox get delivered.
            fresh = replace(node, state=NodeRowState.STARTING, state_transition_time=now)
            await self._store.update_lifecycle([fresh])
            await self._spawn(pool, fresh, now)
        self._provider.watch(self.wake)
        self._task = asyncio.create_task(self._run())

    async def stop(self, stop_nodes: bool = True) -> None:
        """Stop the loop, then every agent (unless `stop_nodes` is False)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in self._stopping.values():
            task.cancel()
        await asyncio.gather(*self._stopping.values(), return_exceptions=True)
        await self.feed.stop()
        await self._provider.close(stop_nodes)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.reconcile_once()
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                log.exception("reconcile round failed")
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout: on 3.11 wait_for can swallow the stop's cancellation when
                # it arrives as the event is set.
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()

    async def reconcile_once(self) -> None:
        async with self._round:
            now = self._clock()
            edits = self._pool_edits
            by_pool: dict[tuple[str, str], list[Node]] = {}
            for n in await self._store.all_nodes():
                by_pool.setdefault((n.account, n.pool_id.lower()), []).append(n)
            for pool in await self._store.all_pools():
                nodes = by_pool.get((pool.account, pool.id.lower()), [])
                with structlog.contextvars.bound_contextvars(account=pool.account, pool=pool.id):
                    try:
                        await self._reconcile_pool(pool, nodes, now, edits)
                    except Exception:  # noqa: BLE001 - one pool's trouble must not stall others
                        log.exception("reconcile failed")

    async def _reconcile_pool(
        self, pool: Pool, nodes: list[Node], now: float, edits: int
    ) -> None:
        """`edits`: the count of pool resizes and deletes when the round read `pool`."""
        nodes = await self._note_exits(pool, nodes, now)
        sessions = None
        if needs_sessions(pool, nodes):
            sessions = await self._scheduler.sessions(pool.account, pool.id)
        if self._pool_edits != edits:
            # A resize or delete landed while the round waited on the scheduler: plan with
            # the pool as it is now. (Rows of nodes change only under the round's lock.)
            fresh = await self._store.get_pool(pool.account, pool.id)
            if fresh is None:
                return
            pool = fresh
        pkey = (pool.account, pool.id.lower())
        busy = {k[2] for k in self._stopping if k[:2] == (pool.account, pool.id)}
        may_start = now >= self._not_before.get(pkey, 0.0)
        plan = plan_pool(pool, nodes, sessions, may_start, busy)
        if plan.leave:
            options = dict(plan.leave)
            left = {n.node_id: leave(n, options[n.node_id], now) for n in nodes
                    if n.node_id in options}
            await self._store.update_lifecycle(left.values())
            log.info("nodes leaving", nodes=sorted(left), option=plan.leave[0][1].value)
            nodes = [left.get(n.node_id, n) for n in nodes]
        for option, node_ids in removals(nodes, sessions).items():
            if await self._scheduler.remove_nodes(pool.account, pool.id, node_ids, option):
                await self._store.set_notified(pool.account, pool.id, node_ids, option)
                self.wake()  # their processes may be stopped in the next round
        await self.nodes.sync_scheduling(pool, nodes, sessions)
        for node_id in plan.stop:
            key = _key(pool, node_id)
            self._stopping[key] = asyncio.create_task(self._stop_node(pool, node_id))
        for node_id in plan.forget:
            await self._forget(pool, node_id)
        if plan.start:
            await self._start_nodes(pool, plan.start, {n.node_id for n in nodes}, now)
        if plan.delete_pool and await self._store.delete_pool_if_empty(pool.account, pool.id):
            self._failures.pop(pkey, None)
            self._not_before.pop(pkey, None)
            log.info("pool deleted")

    async def _note_exits(
        self, pool: Pool, nodes: list[Node], now: float
    ) -> list[Node]:
        """Rows of agents that ended without us stopping them, updated and saved."""
        # Exits since the round began (it may have waited on the scheduler): without them an
        # agent that ended meanwhile would look not running with no exit code.
        self._exits.update((e.key, e.returncode) for e in self._provider.poll())
        changed: dict[str, Node] = {}
        for n in nodes:
            key = _key(pool, n.node_id)
            gone_already = n.pid is None and n.state is NodeRowState.LEAVING
            if self._provider.running(key):
                self._exits.pop(key, None)  # an earlier process's (the node was rebooted)
                continue
            if gone_already or key in self._stopping:
                continue
            code = self._exits.pop(key, None)
            message = f"the agent process exited with code {code}" if code is not None else (
                "the agent process is not running")
            changed[n.node_id] = process_ended(n, "AGENT_EXITED", message, code, now)
            if n.state is NodeRowState.LEAVING:
                log.info("leaving node's agent ended", node=n.node_id, returncode=code)
                continue
            log.warning("node agent exited", node=n.node_id, error="AGENT_EXITED", returncode=code)
            if n.state is NodeRowState.STARTING:
                self._quick_failure(pool, now)
        if changed:
            await self._store.update_lifecycle(changed.values())
        return [changed.get(n.node_id, n) for n in nodes]

    def _quick_failure(self, pool: Pool, now: float) -> None:
        pkey = (pool.account, pool.id.lower())
        self._failures[pkey] = self._failures.get(pkey, 0) + 1
        self._not_before[pkey] = now + start_delay(self._failures[pkey])

    async def _start_nodes(self, pool: Pool, count: int, taken: set[str], now: float) -> None:
        for _ in range(count):
            node_id = new_node_id(taken)
            taken.add(node_id)
            node = Node(pool.account, pool.id, node_id, create_time=now, state_transition_time=now)
            await self._store.insert_node(node)
            await self._spawn(pool, node, now)

    async def _spawn(self, pool: Pool, node: Node, now: float) -> None:
        spec = NodeSpec(pool.account, pool.id, node.node_id, pool.join_token)
        try:
            ref = await self._provider.start(spec)
        except (OSError, ValueError) as e:
            log.error("could not start agent", node=node.node_id, error=str(e))
            failed = process_ended(
                node, "AGENT_START_FAILED", f"could not start the agent: {e}", None, now
            )
            await self._store.update_lifecycle([failed])
            self._quick_failure(pool, now)
            return
        await self._store.set_process(pool.account, pool.id, node.node_id, ref.pid, ref.start_time)

    async def _stop_node(self, pool: Pool, node_id: str) -> None:
        key = _key(pool, node_id)
        try:
            await self._provider.stop(key)
            await self._remove_files(pool, node_id)  # outside the lock: it may take a while
            # The row under the round's lock, and out of `stopping` with no await in between:
            # a round that read the row while the agent was being stopped would otherwise find
            # the agent gone and not ours, and take it for a crash (requeue, forget it twice).
            async with self._round:
                await self._delete_row(pool, node_id)
        except Exception:  # noqa: BLE001 - retried next round
            log.exception("could not stop node", node=node_id)
        finally:
            self._stopping.pop(key, None)
            self.wake()

    async def _forget(self, pool: Pool, node_id: str) -> None:
        # Files first: once the node is gone from the API, so is its directory.
        await self._remove_files(pool, node_id)
        await self._delete_row(pool, node_id)

    async def _remove_files(self, pool: Pool, node_id: str) -> None:
        await self._provider.remove(NodeSpec(pool.account, pool.id, node_id, pool.join_token))

    async def _delete_row(self, pool: Pool, node_id: str) -> None:
        self._exits.pop(_key(pool, node_id), None)
        await self._store.delete_node(pool.account, pool.id, node_id)
        log.info("node removed", node=node_id)
        self.wake()  # a deleting pool may now be empty
