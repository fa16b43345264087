"""The node watch (WatchNodes): the changes of pools' nodes, in a per-account change log.

What users see of a node is derived from two places (model.node_view): the pool-manager's
row and the scheduler's session. So a pool is looked at again whenever either may have
changed it — after this service writes a node row (Store.nodes_changed), and when the
scheduler says the pool's sessions changed (its WatchNodeSessions stream, followed for as
long as the scheduler is up; when it goes away or comes back, every pool is looked at) —
and the views that differ from the last ones recorded (node_changes.diff) become changes
with revisions. Looks are coalesced per pool and run one at a time, in the background: a
burst of writes costs one look.

At start, every pool is looked at once without recording changes (the epoch is new, so no
client can resume into it), and no revision is answered before that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import structlog

from services.common.changes import ChangeLog
from services.common.errors import not_found
from services.common.watch import Watchers
from services.pool_manager.model import NodeView, Pool
from services.pool_manager.node_changes import ChangeType, NodeChange, Signature, diff
from services.pool_manager.scheduler_peer import SchedulerPeer
from services.pool_manager.store import Store
from shoal.cluster_config import WatchConfig

log = structlog.get_logger()

PoolViews = Callable[[str, str], Awaitable[tuple[Pool, list[NodeView]] | None]]
"""(account, pool id) -> the pool and its nodes as users see them; None if no such pool."""
RESUBSCRIBE_DELAY = 0.5
MAX_RESUBSCRIBE_DELAY = 5.0


class NodeFeed:
    def __init__(
        self, store: Store, scheduler: SchedulerPeer, views: PoolViews, watch: WatchConfig
    ) -> None:
        self._store = store
        self._scheduler = scheduler
        self._views = views
        self.log = ChangeLog(0, watch.history)
        self.watchers = Watchers(self.log, watch.progress_interval)
        self._seen: dict[tuple[str, str], tuple[str, dict[str, Signature]]] = {}
        """(account, lower pool id) -> (the pool's id as spelled, its nodes' signatures)."""
        self._dirty: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.log = self.watchers.log = ChangeLog(await self._store.start_epoch(),
                                                 self.log.history)
        self._store.nodes_changed = self.touch
        self._tasks = [asyncio.create_task(self._run(), name="node-feed"),
                       asyncio.create_task(self._follow_sessions(), name="node-sessions")]

    async def stop(self) -> None:
        self.watchers.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def touch(self, account: str, pool_id: str) -> None:
        """The pool's nodes may look different now."""
        self._dirty.add((account, pool_id.lower()))
        self._wake.set()

    async def _touch_all(self) -> None:
        for p in await self._store.all_pools():
            self._dirty.add((p.account, p.id.lower()))
        self._dirty.update(self._seen)
        self._wake.set()

    async def revision(self, account: str) -> int:
        await self._ready.wait()
        return self.log.revision(account)

    # -- looking at pools ---------------------------------------------------------------------

    async def _run(self) -> None:
        for p in await self._store.all_pools():
            await self._look(p.account, p.id.lower(), record=False)
        self._ready.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                batch = sorted(self._dirty)
                self._dirty.clear()
                for account, pool in batch:
                    try:
                        await self._look(account, pool)
                    except Exception:  # noqa: BLE001 - the feed must outlive any one failure
                        log.exception("node watch: looking at a pool failed", pool=pool)
                        self._dirty.add((account, pool))
                        await asyncio.sleep(RESUBSCRIBE_DELAY)

    async def _look(self, account: str, pool_lower: str, *, record: bool = True) -> None:
        found = await self._views(account, pool_lower)
        spelled, seen = self._seen.get((account, pool_lower), (pool_lower, {}))
        pool_id, views = (found[0].id, found[1]) if found is not None else (spelled, [])
        changes, now = diff(pool_id, seen, views)
        if found is None and not now:
            self._seen.pop((account, pool_lower), None)
        else:
            self._seen[(account, pool_lower)] = (pool_id, now)
        if record and changes:
            for c in changes:
                self.log.append(account, pool_lower, c)
            self.watchers.notify((account,))

    async def _follow_sessions(self) -> None:
        delay, followed = RESUBSCRIBE_DELAY, False
        while True:
            try:
                async for pools in self._scheduler.session_changes():
                    delay, followed = RESUBSCRIBE_DELAY, True
                    if pools is None:
                        await self._touch_all()
                    else:
                        for account, pool in pools:
                            self.touch(account, pool)
            except grpc.aio.AioRpcError as e:
                log.debug("node sessions stream ended", code=e.code().name)
            if followed:
                # Gone (or going): while the scheduler cannot be asked, nodes show as such.
                await self._touch_all()
                followed = False
            await asyncio.sleep(delay)
            delay = min(2 * delay, MAX_RESUBSCRIBE_DELAY)

    # -- watching ---------------------------------------------------------------------------

    async def watch(
        self, account: str, pool_id: str, from_revision: int
    ) -> AsyncIterator[tuple[list[tuple[int, NodeChange]], int]]:
        """(changes with their revisions, the revision sent up to), as in WatchNodes."""
        await self._ready.wait()
        if from_revision == 0:
            after = self.log.revision(account)
            found = await self._views(account, pool_id)
            if found is None:
                raise not_found("pool", f"pools/{pool_id}")
            pool, views = found
            yield [(after, NodeChange(ChangeType.CURRENT, pool.id, v.node_id, v))
                   for v in views], after
        else:
            self.log.check(account, from_revision)
            after = from_revision
        async for pieces, upto in self.watchers.follow(account, pool_id.lower(), after,
                                                       lambda c: True):
            yield [(p.first, p.change) for p in pieces], upto  # type: ignore[misc]
