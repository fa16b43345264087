"""Shared live feeds, without a network: the pages that follow one thing share one read of
it, get its latest value (never a backlog), all hear of its failure, and the read stops
with the last page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.dashboard import live
from gateway.dashboard.backend import ApiError
from tests.support import eventually


class Source:
    """An upstream the test feeds by hand."""

    def __init__(self) -> None:
        self.started = 0
        self.stopped = 0
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    async def __call__(self) -> AsyncIterator[tuple[str, Any]]:
        self.started += 1
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, Exception):
                    raise item
                yield "job", item
        finally:
            self.stopped += 1


async def collect(feeds: live.Feeds, source: Source, into: list[Any]) -> None:
    async for _, data in feeds.follow(("acct", "job", "j"), source):
        into.append(data)


async def test_pages_share_one_read_and_see_the_latest() -> None:
    feeds, source = live.Feeds(page_every=0), Source()
    a: list[Any] = []
    b: list[Any] = []
    pages = [asyncio.create_task(collect(feeds, source, a)),
             asyncio.create_task(collect(feeds, source, b))]
    await eventually(lambda: source.started, "the source to start")
    await source.queue.put(1)
    await eventually(lambda: a == [1] and b == [1], "both pages to see 1")
    for n in (2, 3, 4):
        source.queue.put_nowait(n)
    await eventually(lambda: a[-1] == 4 and b[-1] == 4, "both pages to see the latest")
    assert source.started == 1 and len(feeds) == 1
    pages[0].cancel()
    await asyncio.gather(pages[0], return_exceptions=True)
    assert source.stopped == 0  # one page still follows it
    pages[1].cancel()
    await asyncio.gather(pages[1], return_exceptions=True)
    await eventually(lambda: source.stopped == 1, "the read to stop with the last page")
    assert len(feeds) == 0


async def test_a_failure_reaches_every_page() -> None:
    feeds, source = live.Feeds(page_every=0), Source()
    got: list[Any] = []
    pages = [asyncio.create_task(collect(feeds, source, got)) for _ in range(2)]
    await eventually(lambda: source.started, "the source to start")
    await source.queue.put(ApiError(404, "job gone", "JOB_NOT_FOUND"))
    for page in pages:
        with pytest.raises(ApiError, match="job gone"):
            await asyncio.wait_for(page, 10)
    # The next page starts a new read.
    again = asyncio.create_task(collect(feeds, source, got))
    await eventually(lambda: source.started == 2, "a new read for a new page")
    again.cancel()
    await asyncio.gather(again, return_exceptions=True)
