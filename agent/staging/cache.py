"""The node's content cache: one download per object per node.

Entries are keyed by Download.cache_key (a stable identity of the content, such as its
SHA-256 or ETag) and stored as `{node_root}/cache/{sha256 of the key}`. However many tasks ask
for the same key at once, one GET runs (single-flight) and the others wait for it. Tasks get a
*copy* in their working directory, never a hard link, so a task that modifies its file cannot
corrupt the entry the next task copies.

The cache is bounded: after an insert, least recently used entries are evicted until the total
fits; entries being copied are pinned. Recency survives restarts as the entries' mtimes. An
object larger than the whole cache bypasses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from agent.staging.transfer import Expect, Transfers

log = structlog.get_logger()

DEFAULT_MAX_BYTES = 10 << 30


class ContentCache:
    def __init__(self, root: Path, transfers: Transfers, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._transfers = transfers
        self._entries: OrderedDict[str, int] = OrderedDict()
        """entry name -> size, least recently used first."""
        self._total = 0
        self._pins: dict[str, int] = {}
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self.downloads = 0
        """GETs this cache ran (for logs and tests)."""

    def load(self) -> None:
        """Index what a previous life of the agent left; drop partial downloads."""
        self.root.mkdir(parents=True, exist_ok=True)
        found: list[tuple[float, str, int]] = []
        for e in os.scandir(self.root):
            if e.name.startswith("."):
                with contextlib.suppress(OSError):
                    os.unlink(e.path)
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            found.append((st.st_mtime, e.name, st.st_size))
        found.sort()
        self._entries = OrderedDict((name, size) for _, name, size in found)
        self._total = sum(self._entries.values())
        self._evict()

    @property
    def total_bytes(self) -> int:
        return self._total

    def cacheable(self, cache_key: str, size: int) -> bool:
        return bool(cache_key) and 0 <= size <= self.max_bytes

    @contextlib.asynccontextmanager
    async def entry(self, url: str, cache_key: str, expect: Expect) -> AsyncIterator[Path]:
        """The cached file for `cache_key`, downloaded from `url` unless present; pinned (not
        evicted) while the block runs. Raises TransferError when the download fails."""
        name = hashlib.sha256(cache_key.encode()).hexdigest()
        path = self.root / name
        while name not in self._entries:
            task = self._inflight.get(name)
            if task is None:
                task = asyncio.create_task(self._fetch(url, name, path, expect))
                self._inflight[name] = task
                task.add_done_callback(functools.partial(self._landed, name))
            # Shielded: one waiter's cancel (its attempt was cancelled) must not abort the
            # download others wait for.
            await asyncio.shield(task)
        self._pins[name] = self._pins.get(name, 0) + 1
        self._touch(name, path)
        try:
            yield path
        finally:
            n = self._pins[name] - 1
            if n:
                self._pins[name] = n
            else:
                del self._pins[name]
            self._evict()

    def _landed(self, name: str, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(name, None)

    async def _fetch(self, url: str, name: str, path: Path, expect: Expect) -> None:
        self.downloads += 1
        size = await self._transfers.download(url, path, expect, durable=True)
        self._entries[name] = size
        self._total += size
        # Room for it is made now, but never by evicting it: the waiters pin it next.
        self._pins[name] = self._pins.get(name, 0) + 1
        try:
            self._evict()
        finally:
            self._pins[name] -= 1
            if not self._pins[name]:
                del self._pins[name]

    def _touch(self, name: str, path: Path) -> None:
        self._entries.move_to_end(name)
        now = time.time()
        with contextlib.suppress(OSError):
            os.utime(path, (now, now))

    def _evict(self) -> None:
        if self._total <= self.max_bytes:
            return
        for name in list(self._entries):
            if self._total <= self.max_bytes:
                break
            if name in self._pins:
                continue
            size = self._entries.pop(name)
            self._total -= size
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / name)
            log.debug("cache entry evicted", entry=name, size=size)
