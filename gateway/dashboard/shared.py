"""Answers shared by the pages of one account: the same read asked again within `TTL`
seconds, or while it is being read, gets the same answer (single-flight). Ten pages open on
a busy job each read its task list every couple of seconds; the services answer once.

Pages of one account see the same things (scoping is per account, and an account has one
key), so sharing between them shows no page anything its own call would not. A failed read
is forgotten at once: the next request reads again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

TTL = 1.0
MAX_ENTRIES = 1000


class SharedAnswers:
    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._answers: dict[Hashable, tuple[float, asyncio.Task[Any]]] = {}

    async def get(self, key: Hashable, read: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        now = self._clock()
        hit = self._answers.get(key)
        if hit is None or (hit[1].done() and hit[0] <= now):
            if len(self._answers) >= MAX_ENTRIES:
                self._answers = {k: v for k, v in self._answers.items()
                                 if v[0] > now or not v[1].done()}
            task = asyncio.ensure_future(read())
            # The TTL counts from the answer: a slow read is not stale when it arrives.
            task.add_done_callback(lambda t: self._settled(key, t))
            hit = self._answers[key] = (float("inf"), task)
        # Shielded: a page that goes away does not cancel the read the others wait for.
        return await asyncio.shield(hit[1])

    def _settled(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        entry = self._answers.get(key)
        if entry is None or entry[1] is not task:
            return
        if task.cancelled() or task.exception() is not None:
            del self._answers[key]
        else:
            self._answers[key] = (self._clock() + self._ttl, task)
