"""The dashboard's live views, as streams of (event, data) for Server-Sent Events: a job's
progress and a pool's node map.

Every page of one account that follows the same job (or pool) shares one read of it
(`Feeds`): ten pages open on a job cost the services what one does. A page is sent the
latest value, at most every `PAGE_EVERY` seconds: a slow page skips values, it never queues
them, and a burst of changes costs one update per page.

A job's progress follows WatchJob with `job_summary`: the job's latest state (its task
counts), at most twice a second however busy the job is. Measured on the observe benchmark:
relaying every change of a busy job (dozens of messages a second, through the gateway's
forwarder and again into the dashboard) was most of what ten open pages cost the gateway;
the summary is two a second. A pool's node map follows WatchNodes for what describes a node (added, gone, its
state, errors) and reads the nodes again every couple of seconds for the counters the watch
does not follow (running tasks and slots in use move with every task).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

from gateway.dashboard.backend import ApiError, Backend, as_dict
from shoal.v1 import job_pb2

RETRY = 1.0
"""Seconds before a watch its service ended (a restart) is opened again."""
NODE_COUNTERS_EVERY = 2.0
"""Seconds between two reads of a pool's nodes when no change came: the node watch sends
state changes, not the counters that move with every task (running tasks, slots in use)."""
PAGE_EVERY = 0.5
"""Seconds a page waits after an update before it takes the next."""

Item = tuple[str, Any]
_JobEvent = job_pb2.JobEvent


async def job_progress(backend: Backend, key: str, job_id: str) -> AsyncIterator[Item]:
    """`job` events: the job (state, task counts) as it is, then as changes leave it, from
    WatchJob with `job_summary`; at most one every PAGE_EVERY seconds, the latest. A lost
    stream resumes from the last revision it saw, or from now when that revision is gone
    (REVISION_COMPACTED: the scheduler restarted)."""
    latest: list[job_pb2.Job] = []
    changed = asyncio.Event()

    async def read() -> None:
        revision = 0
        while True:
            try:
                async for r in backend.watch_job(key, job_id, revision):
                    jobs = [e for e in r.events if e.HasField("job")]
                    if any(e.type == _JobEvent.DELETED for e in jobs):
                        raise ApiError(404, f"job {job_id!r} was deleted", "JOB_NOT_FOUND")
                    if jobs:
                        latest[:] = [jobs[-1].job]
                        changed.set()
                    revision = r.revision
            except ApiError as e:
                if e.reason == "REVISION_COMPACTED":
                    revision = 0
                    continue
                if e.status not in (503, 504):
                    raise
            await asyncio.sleep(RETRY)

    reader = asyncio.create_task(read())
    try:
        while True:
            waiter = asyncio.create_task(changed.wait())
            await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                waiter.cancel()
                reader.result()  # the watch failed for good: its ApiError
                return
            changed.clear()
            yield "job", as_dict(latest[0])
            await asyncio.sleep(PAGE_EVERY)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def node_map(backend: Backend, key: str, pool_id: str) -> AsyncIterator[Item]:
    """`nodes` events: every node of the pool, read again as soon as WatchNodes says one
    changed (added, gone, a new state or error), and every NODE_COUNTERS_EVERY seconds for
    the counters; sent when what a node map shows moved."""
    last = None
    while True:
        nodes, revision = await backend.nodes_at(key, pool_id)
        shown = [{k: v for k, v in n.items() if k != "revision"} for n in nodes]
        if shown != last:
            yield "nodes", nodes
            last = shown
        await _node_change(backend, key, pool_id, revision)


async def _node_change(backend: Backend, key: str, pool_id: str, revision: int) -> None:
    """Return when WatchNodes sends a change after `revision`, or after NODE_COUNTERS_EVERY
    seconds (or RETRY, when the watch cannot be had)."""
    try:
        async with asyncio.timeout(NODE_COUNTERS_EVERY):
            async for r in backend.watch_nodes(key, pool_id, revision):
                if r.events:
                    return
    except TimeoutError:
        return
    except ApiError as e:
        if e.status == 404:  # the pool is gone
            raise
        await asyncio.sleep(RETRY)


class Feed:
    """One upstream read and its latest value, for every page that follows it."""

    def __init__(self, source: AsyncIterator[Item], page_every: float = PAGE_EVERY) -> None:
        self.latest: Item | None = None
        self._page_every = page_every
        self.version = 0
        self.error: ApiError | None = None
        self.done = False
        self.pages = 0
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(source))

    async def _run(self, source: AsyncIterator[Item]) -> None:
        try:
            async for item in source:
                self.latest = item
                self.version += 1
                self._notify()
        except ApiError as e:
            self.error = e
        finally:
            self.done = True
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self) -> AsyncIterator[Item]:
        seen = 0
        while True:
            if self.version > seen and self.latest is not None:
                seen = self.version
                yield self.latest
                await asyncio.sleep(self._page_every)
            elif self.done:
                if self.error is not None:
                    raise self.error
                return
            else:
                await self._changed.wait()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Feeds:
    """The feeds being followed, by what they follow (account, kind, id): a feed starts with
    its first page and stops with its last."""

    def __init__(self, page_every: float = PAGE_EVERY) -> None:
        self._feeds: dict[Hashable, Feed] = {}
        self._page_every = page_every

    def __len__(self) -> int:
        return len(self._feeds)

    async def follow(self, key: Hashable,
                     source: Callable[[], AsyncIterator[Item]]) -> AsyncIterator[Item]:
        feed = self._feeds.get(key)
        if feed is None or feed.done:
            feed = self._feeds[key] = Feed(source(), self._page_every)
        feed.pages += 1
        try:
            async for item in feed.follow():
                yield item
        finally:
            feed.pages -= 1
            if feed.pages == 0 and self._feeds.get(key) is feed:
                del self._feeds[key]
                await feed.stop()
