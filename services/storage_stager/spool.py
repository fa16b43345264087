"""Temporary files for uploads that must be checked as a whole before they are stored
(application archives): written while hashed, read back as a stream."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import IO

from services.storage_stager.backends.base import CHUNK, Hasher


async def spool(data: AsyncIterable[bytes], directory: Path) -> tuple[Path, Hasher]:
    """Write the stream to a new file in `directory`; the file and the stream's hasher. The
    file is removed if the stream fails."""
    path = directory / f"upload-{secrets.token_hex(8)}"
    f = await asyncio.to_thread(_create, path)
    hasher = Hasher()
    try:
        with f:
            async for chunk in data:
                hasher.update(chunk)
                f.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, hasher


async def read_back(path: Path) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(_open, path)
    try:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk
    finally:
        f.close()


def _create(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "xb")  # noqa: SIM115 - closed by the caller


def _open(path: Path) -> IO[bytes]:
    return open(path, "rb")  # noqa: SIM115 - closed by the caller


def clear(directory: Path) -> None:
    """Remove what interrupted uploads left (at start, before any upload)."""
    directory.mkdir(parents=True, exist_ok=True)
    for p in directory.glob("upload-*"):
        os.unlink(p)
