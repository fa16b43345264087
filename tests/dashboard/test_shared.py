"""Shared answers, without a network: pages asking the same within the TTL, or while it is
read, get one read's answer; a failed read is not kept; a page that leaves does not cancel
the read the others wait for."""

from __future__ import annotations

import asyncio

import pytest

from gateway.dashboard.shared import SharedAnswers
from tests.support import ManualClock


class Reads:
    def __init__(self) -> None:
        self.count = 0
        self.go = asyncio.Event()
        self.fail = False

    async def __call__(self) -> int:
        self.count += 1
        await self.go.wait()
        if self.fail:
            raise RuntimeError("down")
        return self.count


async def test_one_read_for_pages_asking_together_and_within_the_ttl() -> None:
    clock, reads = ManualClock(), Reads()
    shared = SharedAnswers(ttl=1.0, clock=clock)
    pages = [asyncio.create_task(shared.get("k", reads)) for _ in range(3)]
    await asyncio.sleep(0)
    pages[0].cancel()  # one page goes away: the others still get the answer
    reads.go.set()
    assert await asyncio.gather(*pages[1:]) == [1, 1] and reads.count == 1
    clock.advance(0.5)
    assert await shared.get("k", reads) == 1 and reads.count == 1
    assert await shared.get("other", reads) == 2  # another question, another read
    clock.advance(1.0)
    assert await shared.get("k", reads) == 3


async def test_a_failure_is_not_kept() -> None:
    reads = Reads()
    shared = SharedAnswers(ttl=10.0, clock=ManualClock())
    reads.fail = True
    reads.go.set()
    with pytest.raises(RuntimeError):
        await shared.get("k", reads)
    reads.fail = False
    assert await shared.get("k", reads) == 2
