"""The node's view of storage, shared by all its staging: open while storage answers; closed
from the first try that finds it unavailable until a try succeeds.

While it is closed, one try at a time goes — a probe, after a backoff that grows with the
node's failed probes (agent.staging.outage.backoff) — and every other waiting attempt waits
for the gate to open rather than trying on its own: during an outage a node asks about once
per backoff, however many of its attempts wait, and all of them go as soon as one try finds
storage back. Each attempt keeps its own bound (agent.staging.outage.Outage).
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable

from agent.staging.outage import backoff


class Turn(enum.Enum):
    GO = "go"
    """Storage answers: try."""
    PROBE = "probe"
    """Storage is unavailable and it is this caller's turn to find out whether it is back."""


class StorageGate:
    def __init__(self, rng: Callable[[], float] = random.random) -> None:
        self._rng = rng
        self._open = True
        self._probing = False
        self._failures = 0
        self._next_probe = 0.0
        self._changed: asyncio.Future[None] | None = None
        self.last_error = ""
        """Why storage was last found unavailable."""

    @property
    def is_open(self) -> bool:
        return self._open

    async def wait(self, within: float) -> Turn | None:
        """Wait until this caller should try: at once while the gate is open; while it is
        closed, until it opens or until it is this caller's turn to probe. None when
        `within` seconds pass first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self._open:
            now = loop.time()
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return Turn.PROBE
            if now >= deadline:
                return None
            until = deadline if self._probing else min(deadline, self._next_probe)
            if self._changed is None or self._changed.done():
                self._changed = loop.create_future()
            await asyncio.wait({self._changed}, timeout=until - now)
        return Turn.GO

    def succeeded(self) -> None:
        """A try found storage answering: everyone goes."""
        if not self._open or self._probing:
            self._open, self._probing, self._failures = True, False, 0
            self._notify()

    def failed(self, turn: Turn | None, error: str) -> None:
        """A try found storage unavailable. `turn`: what wait() gave the try (None: it did not
        wait). Only the first failure closes the gate and only a probe's moves the backoff:
        tries that began before the gate closed do not count again."""
        self.last_error = error
        if self._open:
            self._open, self._failures = False, 1
        elif turn is Turn.PROBE:
            self._failures += 1
        else:
            return
        self._probing = False
        self._next_probe = asyncio.get_running_loop().time() + backoff(self._failures, self._rng)
        self._notify()

    def abandoned(self, turn: Turn | None) -> None:
        """A probe ended without an answer about storage (its attempt was cancelled, or its
        step failed for another reason): the next waiter probes."""
        if turn is Turn.PROBE and self._probing:
            self._probing = False
            self._notify()

    def _notify(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
