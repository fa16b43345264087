"""The dashboard's live views, as streams of (event, data) for Server-Sent Events: a job's
progress and a pool's node map.

Every page of one account that follows the same job (or pool) shares one read of it
(`Feeds`): ten pages open on a job cost the services what one does. A page is sent the
latest value, at most every `PAGE_EVERY` seconds: a slow page skips values, it never queues
them, and a burst of changes costs one update per page.

A job's progress and a pool's nodes are read again every POLL seconds and sent when they
changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

from gateway.dashboard.backend import ApiError, Backend, as_dict

POLL = 1.0
"""Seconds between two reads of what a live view shows."""
PAGE_EVERY = 0.5
"""Seconds a page waits after an update before it takes the next."""

Item = tuple[str, Any]


async def job_progress(backend: Backend, key: str, job_id: str) -> AsyncIterator[Item]:
    """`job` events: the job (state, task counts) each time it changes."""
    last = None
    while True:
        job = as_dict(await backend.job_message(key, job_id))
        if job != last:
            yield "job", job
            last = job
        await asyncio.sleep(POLL)


async def node_map(backend: Backend, key: str, pool_id: str) -> AsyncIterator[Item]:
    """`nodes` events: every node of the pool each time one changed."""
    last = None
    while True:
        nodes = await backend.nodes(key, pool_id)
        if nodes != last:
            yield "nodes", nodes
            last = nodes
        await asyncio.sleep(POLL)


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
