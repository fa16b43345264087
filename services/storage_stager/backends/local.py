"""The local backend: objects as blob files in a directory, indexed in SQLite.

A blob is written to a temporary file, fsynced and renamed into place under a fresh random name,
then the index row is switched to it in one transaction, and only then is the old blob
removed: a reader sees the old object or the new one, never a torn one, and a crash leaves at
worst an unreferenced blob. Blobs never change once written, so a reader that opened one keeps
consistent bytes even if the key is replaced meanwhile.

The index (key, size, sha256, etag, mtime, blob) lives in the stager's database file on its
own connection; keys sort in code point order, as S3 lists them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterable
from pathlib import Path
from typing import IO, Any

import aiosqlite

from services.common.db import open_db
from services.common.timeutil import Clock, wall_clock
from services.storage_stager.backends.base import (
    CHUNK,
    Backend,
    Chunks,
    Expected,
    Hasher,
    ObjectInfo,
    OffsetBeyondEnd,
    prefix_end,
)
from services.storage_stager.backends.signing import UrlSigner

SCHEMA = """
CREATE TABLE IF NOT EXISTS local_objects (
    key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    etag TEXT NOT NULL,
    mtime REAL NOT NULL,
    blob TEXT NOT NULL
) WITHOUT ROWID;
"""
_COLS = "key, size, sha256, etag, mtime, blob"


def _info(r: Any) -> ObjectInfo:
    return ObjectInfo(r["key"], r["size"], r["sha256"], r["etag"], r["mtime"])


class LocalBackend(Backend):
    def __init__(self, root: Path, db_path: Path, signer: UrlSigner,
                 clock: Clock = wall_clock) -> None:
        self.root = root
        self._db_path = db_path
        self.signer = signer
        self._clock = clock
        self._tmp = root / "tmp"
        self._blobs = root / "blobs"
        # Switching a key's blob reads the old row and writes the new one; two puts of one key
        # must not interleave there or one blob would be orphaned.
        self._switch = asyncio.Lock()
        self._db: aiosqlite.Connection | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self._prepare_dirs)
        self._db = await open_db(self._db_path, SCHEMA, autocommit=True)

    def _prepare_dirs(self) -> None:
        # Temporary files are uploads a crash interrupted: never committed, safe to drop.
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._blobs.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the local backend is not started")
        return self._db

    # Writing

    async def put(self, key: str, data: AsyncIterable[bytes], expected: Expected) -> ObjectInfo:
        blob_id = secrets.token_hex(16)
        tmp = self._tmp / blob_id
        f = await asyncio.to_thread(_open_new, tmp)
        hasher = Hasher()
        try:
            try:
                async for chunk in data:
                    hasher.update(chunk)
                    f.write(chunk)
                sha = hasher.verify(expected)
                await asyncio.to_thread(_sync, f)
            finally:
                f.close()
            rel = f"blobs/{blob_id[:2]}/{blob_id}"
            await asyncio.to_thread(_place, tmp, self.root / rel)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        info = ObjectInfo(key, hasher.size, sha, sha[:32], self._clock())
        async with self._switch:
            old = await self._row(key)
            await self.db.execute(
                f"INSERT OR REPLACE INTO local_objects ({_COLS}) VALUES (?, ?, ?, ?, ?, ?)",
                (key, info.size, info.sha256, info.etag, info.mtime, rel),
            )
        if old is not None and old["blob"] != rel:
            await asyncio.to_thread((self.root / old["blob"]).unlink, True)
        return info

    async def delete(self, key: str) -> None:
        async with self._switch:
            old = await self._row(key)
            await self.db.execute("DELETE FROM local_objects WHERE key = ?", (key,))
        if old is not None:
            await asyncio.to_thread((self.root / old["blob"]).unlink, True)

    async def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete everything: empty prefix")
        bounds = (prefix, prefix_end(prefix))
        async with self._switch:
            cur = await self.db.execute(
                "SELECT blob FROM local_objects WHERE key >= ? AND key < ?", bounds
            )
            blobs = [r["blob"] for r in await cur.fetchall()]
            await self.db.execute("DELETE FROM local_objects WHERE key >= ? AND key < ?", bounds)
        await asyncio.to_thread(self._unlink_all, blobs)
        return len(blobs)

    def _unlink_all(self, blobs: list[str]) -> None:
        for b in blobs:
            (self.root / b).unlink(missing_ok=True)

    # Reading

    async def _row(self, key: str) -> Any:
        cur = await self.db.execute(f"SELECT {_COLS} FROM local_objects WHERE key = ?", (key,))
        return await cur.fetchone()

    async def head(self, key: str) -> ObjectInfo | None:
        row = await self._row(key)
        return None if row is None else _info(row)

    async def get(self, key: str, offset: int = 0) -> tuple[ObjectInfo, Chunks]:
        # A put may switch the key to a new blob and remove the old one between our lookup and
        # our open: look again then.
        for _ in range(3):
            row = await self._row(key)
            if row is None:
                raise KeyError(key)
            if offset > row["size"]:
                raise OffsetBeyondEnd(offset, row["size"])
            try:
                f = await asyncio.to_thread(_open_at, self.root / row["blob"], offset)
            except FileNotFoundError:
                continue
            return _info(row), _read_chunks(f)
        raise KeyError(key)

    async def list(self, prefix: str, start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        lower = max(prefix, start_after)
        op = ">" if start_after and start_after >= prefix else ">="
        sql = f"SELECT {_COLS} FROM local_objects WHERE key {op} ?"
        args: list[Any] = [lower]
        if prefix:
            sql += " AND key < ?"
            args.append(prefix_end(prefix))
        cur = await self.db.execute(sql + " ORDER BY key LIMIT ?", (*args, limit))
        return [_info(r) for r in await cur.fetchall()]

    # URLs

    async def presign_get(self, key: str, ttl: int) -> str:
        return self.signer.url("GET", key, int(self._clock()) + ttl)

    async def presign_put(self, key: str, ttl: int) -> str:
        return self.signer.url("PUT", key, int(self._clock()) + ttl)


def _open_new(path: Path) -> IO[bytes]:
    return open(path, "xb")  # noqa: SIM115 - closed by the caller


def _sync(f: IO[bytes]) -> None:
    f.flush()
    os.fsync(f.fileno())


def _place(tmp: Path, dest: Path) -> None:
    dest.parent.mkdir(exist_ok=True)
    os.replace(tmp, dest)
    # The rename itself must survive a crash before the index points at it.
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_at(path: Path, offset: int) -> IO[bytes]:
    f = open(path, "rb")  # noqa: SIM115 - closed by _read_chunks
    f.seek(offset)
    return f


async def _read_chunks(f: IO[bytes]) -> Chunks:
    try:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk
    finally:
        f.close()
