"""Watch streams that follow a ChangeLog (services/common/changes.py).

A stream holds no queue of its own: it keeps a cursor (the revision it has sent up to) and
reads the shared history from there whenever the log grows, so a client that reads slowly
costs no memory, and the service that appends never waits for anyone. A stream whose
client falls so far behind that its cursor is compacted away ends with OUT_OF_RANGE
(REVISION_COMPACTED), as a resume from there would: the client lists again.

Appending stays cheap when nobody watches: `notify` looks the account up and returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from services.common.changes import ChangeLog, Piece
from services.common.errors import Code, ShoalError

MAX_WATCHES_PER_ACCOUNT = 256
BATCH_CHANGES = 500
"""Changes in one message at most: a whole message stays well below gRPC's default 4 MiB
limit on the client side, whatever language the client is written in."""


class Watchers:
    def __init__(
        self, log: ChangeLog, progress_interval: float,
        max_per_account: int = MAX_WATCHES_PER_ACCOUNT,
    ) -> None:
        self.log = log
        self.progress_interval = progress_interval
        self._max = max_per_account
        self._by_account: dict[str, set[asyncio.Event]] = {}
        self._closed = False

    def notify(self, accounts: Iterable[str]) -> None:
        """The log of these accounts grew: wake their streams."""
        for a in accounts:
            for wake in self._by_account.get(a, ()):
                wake.set()

    def close(self) -> None:
        """The service is stopping: every stream ends (UNAVAILABLE; clients resume)."""
        self._closed = True
        for events in self._by_account.values():
            for wake in events:
                wake.set()

    def watching(self, account: str) -> int:
        return len(self._by_account.get(account, ()))

    async def follow(
        self, account: str, key: str, after: int, select: Callable[[object], bool],
        limit: int = BATCH_CHANGES,
    ) -> AsyncIterator[tuple[list[Piece], int]]:
        """(changes, revision) as they are appended after `after`: changes selected for `key`
        and the revision sent up to. An empty list is a progress message, sent when nothing
        was sent for `progress_interval` seconds. `after` must have passed `log.check`."""
        mine = self._by_account.setdefault(account, set())
        if len(mine) >= self._max:
            raise ShoalError(Code.RESOURCE_EXHAUSTED, "TOO_MANY_WATCHES",
                             f"this account has {len(mine)} watch streams open, the most "
                             "allowed; close one first")
        wake = asyncio.Event()
        mine.add(wake)
        loop = asyncio.get_running_loop()
        try:
            last_sent = loop.time()
            while True:
                if self._closed:
                    raise ShoalError(Code.UNAVAILABLE, "SERVICE_STOPPING",
                                     f"the service is stopping: resume from revision {after}")
                # Cleared before reading: an append after the read sets it again.
                wake.clear()
                pieces, upto = self.log.read(account, after, key, select, limit)
                after = upto
                if pieces:
                    yield pieces, upto
                    last_sent = loop.time()
                    continue
                idle = loop.time() - last_sent
                if idle >= self.progress_interval:
                    yield [], upto
                    last_sent = loop.time()
                    continue
                try:
                    async with asyncio.timeout(self.progress_interval - idle):
                        await wake.wait()
                except TimeoutError:
                    pass
        finally:
            mine.discard(wake)
            if not mine:
                self._by_account.pop(account, None)
