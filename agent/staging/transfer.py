"""HTTP transfers: GET a URL to a file, PUT a file to a URL. One path for both storage
backends (S3 presigned URLs, the storage-stager's own signed URLs) and for plain http_urls.

A download lands in a temporary file next to its destination and is renamed into place only
once its size and SHA-256 (when known) are right, so a destination never holds a partial or
wrong file. Connection errors, timeouts and 5xx answers are retried a few times with backoff;
4xx answers are not (a missing object or an expired URL will not get better).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import structlog

from agent.session import backoff

log = structlog.get_logger()

CHUNK = 1 << 20
ATTEMPTS = 4
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 120.0
"""Seconds without a byte before a transfer counts as stalled; there is no total timeout:
large files take as long as they take."""


class TransferError(Exception):
    """A transfer failed for good. `permanent` when retrying cannot help (a 4xx answer, a
    wrong checksum)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class _Retry(Exception):
    pass


@dataclass(frozen=True)
class Expect:
    size: int = -1
    """Bytes expected, -1 when unknown."""
    sha256: str = ""
    """Lower-case hex, empty when unknown."""


def _describe(url: str) -> str:
    """A URL without its query: signatures must not reach logs or failure messages."""
    return url.split("?", 1)[0][:200]


class Transfers:
    """One aiohttp ClientSession for the whole agent (connection reuse across tasks)."""

    def __init__(self, *, attempts: int = ATTEMPTS, limit: int = 64) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._attempts = attempts
        self._limit = limit

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
                ),
                connector=aiohttp.TCPConnector(limit=self._limit),
                # The bytes as stored: a Content-Encoding must not change what we hash.
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def download(self, url: str, dest: Path, expect: Expect = Expect(), *,
                       durable: bool = False) -> int:
        """GET `url` into `dest` (replaced atomically); returns the byte count. `durable`
        fsyncs before the rename (for files that outlive a crash, like cache entries)."""
        tmp = dest.parent / f".{dest.name}.part-{uuid.uuid4().hex[:12]}"

        async def once() -> int:
            size = await self._get_once(url, tmp, expect, durable)
            os.replace(tmp, dest)
            return size

        try:
            return await self._retrying("GET", url, once)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    async def _get_once(self, url: str, tmp: Path, expect: Expect, durable: bool) -> int:
        digest = hashlib.sha256() if expect.sha256 else None
        try:
            async with self._client().get(url) as resp:
                if resp.status >= 500:
                    raise _Retry(f"HTTP {resp.status}")
                if resp.status != 200:
                    body = (await resp.content.read(300)).decode("utf-8", "replace")
                    raise TransferError(
                        f"GET {_describe(url)}: HTTP {resp.status} {resp.reason}: {_brief(body)}",
                        permanent=True,
                    )
                with open(tmp, "wb") as out:  # noqa: ASYNC230 - writes go to a thread below
                    size = 0
                    buf = bytearray()
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        buf += chunk
                        size += len(chunk)
                        if expect.size >= 0 and size > expect.size:
                            raise TransferError(
                                f"GET {_describe(url)}: more than the expected {expect.size} bytes",
                                permanent=True,
                            )
                        if len(buf) >= CHUNK:
                            await asyncio.to_thread(_write, out, bytes(buf), digest)
                            buf.clear()
                    await asyncio.to_thread(_write, out, bytes(buf), digest, durable)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise _Retry(f"{type(e).__name__}: {e}") from None
        if expect.size >= 0 and size != expect.size:
            raise _Retry(f"got {size} bytes, expected {expect.size}")
        if digest is not None and digest.hexdigest() != expect.sha256.lower():
            raise TransferError(
                f"GET {_describe(url)}: SHA-256 mismatch: got {digest.hexdigest()}, "
                f"expected {expect.sha256.lower()}",
                permanent=True,
            )
        return size

    async def upload(self, url: str, path: Path) -> int:
        """PUT the file at `path` (not followed if it is a symlink) with its Content-Length;
        returns the byte count."""
        return await self._retrying("PUT", url, lambda: self._put_once(url, path))

    async def _retrying(
        self, method: str, url: str, once: Callable[[], Awaitable[int]]
    ) -> int:
        """Run one transfer, again with backoff while it fails in a way worth retrying."""
        for attempt in range(self._attempts):
            try:
                return await once()
            except _Retry as e:
                if attempt + 1 >= self._attempts:
                    raise TransferError(
                        f"{method} {_describe(url)} failed after {self._attempts} tries: {e}"
                    ) from None
                delay = backoff(attempt)
                log.warning("transfer failed; retrying", method=method, url=_describe(url),
                            error=str(e), retry_in=round(delay, 3))
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _put_once(self, url: str, path: Path) -> int:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            raise TransferError(f"cannot read {path.name}: {e.strerror or e}", permanent=True) from e
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise TransferError(f"{path.name} is not a regular file", permanent=True)
            size = st.st_size
            try:
                async with self._client().put(
                    url, data=f, headers={"Content-Length": str(size)}
                ) as resp:
                    if resp.status >= 500:
                        raise _Retry(f"HTTP {resp.status}")
                    if resp.status not in (200, 201, 204):
                        body = (await resp.content.read(300)).decode("utf-8", "replace")
                        raise TransferError(
                            f"PUT {_describe(url)}: HTTP {resp.status} {resp.reason}: {_brief(body)}",
                            permanent=True,
                        )
            except (aiohttp.ClientError, TimeoutError) as e:
                raise _Retry(f"{type(e).__name__}: {e}") from None
        return size


def _write(out: BinaryIO, data: bytes, digest: Any, durable: bool = False) -> None:
    if data:
        out.write(data)
        if digest is not None:
            digest.update(data)
    if durable:
        out.flush()
        os.fsync(out.fileno())


def _brief(body: str) -> str:
    return " ".join(body.split())[:200]
