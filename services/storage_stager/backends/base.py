"""The one interface both storage backends implement, and what they share.

Keys here are full backend keys (`{account}/containers/{container}/{key}`, see keys.py); a
backend knows nothing of accounts or containers. Bytes always move as streams of chunks: no
call holds a whole object in memory.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from dataclasses import dataclass

from services.common.errors import Code, ShoalError

CHUNK = 1024 * 1024
"""Bytes per chunk when a backend streams an object out."""

Chunks = AsyncGenerator[bytes, None]
"""A stream of bytes that holds a resource (a file, a connection) until closed."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str
    """Lower-case hex; empty when the backend does not know it (an S3 listing, or an object
    written to S3 through a presigned URL)."""
    etag: str
    mtime: float

    @property
    def cache_key(self) -> str:
        """A stable identity of the content, for nodes' download caches."""
        return f"sha256:{self.sha256}" if self.sha256 else f"etag:{self.etag}"


class ChecksumMismatch(Exception):
    """The bytes of a put did not hash to the expected SHA-256; nothing was stored."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected sha256 {expected}, the bytes have {actual}")
        self.expected = expected
        self.actual = actual


class BackendUnavailable(ShoalError):
    """The object store cannot be reached, or answered that it cannot serve now (5xx):
    UNAVAILABLE with reason STORAGE_UNAVAILABLE, which callers (and agents, through the
    scheduler) take as "try again later", unlike an answer about the object itself."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.UNAVAILABLE, "STORAGE_UNAVAILABLE", message)


class OffsetBeyondEnd(Exception):
    """A read asked to start past the end of the object."""

    def __init__(self, offset: int, size: int) -> None:
        super().__init__(f"offset {offset} is beyond the object's size {size}")
        self.offset = offset
        self.size = size


Expected = Callable[[], str] | None
"""Gives the SHA-256 (hex) the bytes of a put must have. Called once the data stream is
exhausted, because clients send the checksum after the bytes; None means unchecked (a PUT
through a signed URL). It may raise to refuse the put."""


class Hasher:
    """SHA-256 and size of a stream as it passes, checked against the expectation at the end."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._h.update(chunk)
        self.size += len(chunk)

    def verify(self, expected: Expected) -> str:
        actual = self._h.hexdigest()
        if expected is not None:
            want = expected()
            if want.lower() != actual:
                raise ChecksumMismatch(want, actual)
        return actual


class Backend(ABC):
    """Object storage. Every method may raise the backend's own errors for outages; a missing
    object is None (head) or KeyError (get)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare (create the bucket, open the index)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abstractmethod
    async def put(self, key: str, data: AsyncIterable[bytes], expected: Expected) -> ObjectInfo:
        """Store the stream under `key`, replacing any object there, only if its SHA-256 is the
        expected one (ChecksumMismatch otherwise). Any exception from `data` or `expected`
        leaves the previous object, if any, as it was."""

    @abstractmethod
    async def get(self, key: str, offset: int = 0) -> tuple[ObjectInfo, Chunks]:
        """The object's metadata and its bytes from `offset` on (KeyError if missing,
        OffsetBeyondEnd past its end). The caller must exhaust or `aclose()` the stream."""

    @abstractmethod
    async def head(self, key: str) -> ObjectInfo | None:
        """The object's metadata, None if there is no such object."""

    @abstractmethod
    async def list(self, prefix: str, start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        """Up to `limit` objects whose key starts with `prefix` and sorts after `start_after`,
        ordered by key (code point order, which is UTF-8 byte order, as S3 lists)."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Delete one object; no error if it does not exist."""

    @abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix` (non-empty); return how many."""

    @abstractmethod
    async def presign_get(self, key: str, ttl: int) -> str:
        """A URL that GETs the object for `ttl` seconds, without credentials."""

    @abstractmethod
    async def presign_put(self, key: str, ttl: int) -> str:
        """A URL that PUTs the object (raw body, Content-Length set) for `ttl` seconds."""


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string that starts with `prefix` (non-empty),
    for range scans."""
    stem = prefix.rstrip(chr(0x10FFFF))
    if not stem:
        return chr(0x10FFFF) * (len(prefix) + 1)
    return stem[:-1] + chr(ord(stem[-1]) + 1)


async def rechunk(chunks: Chunks, size: int = CHUNK) -> Chunks:
    """The same bytes in pieces of exactly `size` (the last may be shorter): backends hand out
    whatever their transport gives, clients get even messages."""
    buf = bytearray()
    try:
        async for chunk in chunks:
            buf += chunk
            while len(buf) >= size:
                yield bytes(buf[:size])
                del buf[:size]
        if buf:
            yield bytes(buf)
    finally:
        await chunks.aclose()
