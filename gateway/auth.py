"""Who is calling: an account key in `authorization: Bearer <key>` resolved to an account, or
an account's key found by its name for the REST face's Shared Key check (gateway/rest).

Keys are derived, not stored (gateway/accounts.py); lookups are cached briefly so a burst of
calls costs one query, and a revoked key stops working within the TTL.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiosqlite

from gateway.accounts import SCHEMA, derive_key, hash_key, prepare
from services.common.db import open_db
from services.common.errors import Code, ShoalError

CACHE_TTL = 10.0
NEGATIVE_TTL = 2.0
MAX_CACHED = 10_000


def unauthenticated(message: str) -> ShoalError:
    return ShoalError(Code.UNAUTHENTICATED, "INVALID_ACCOUNT_KEY", message)


class Authenticator:
    def __init__(self, db: aiosqlite.Connection, secret: str) -> None:
        self._db = db
        self._secret = secret
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._keys: dict[str, tuple[tuple[str, str] | None, float]] = {}

    @classmethod
    async def open(cls, path: Path, secret: str) -> Authenticator:
        """`secret`: the cluster's, which account keys are derived under."""
        db = await open_db(path, SCHEMA)  # checks the file first
        prepare(path)  # an older file gains its key_nonce column before it is read
        return cls(db, secret)

    async def close(self) -> None:
        await self._db.close()

    async def account_for(self, metadata: dict[str, str]) -> str:
        """The account of a call's metadata; raises UNAUTHENTICATED."""
        header = metadata.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise unauthenticated(
                "no account key: send 'authorization: Bearer <key>' (the CLI finds it in "
                "$SHOAL_ACCOUNT_KEY, a profile or .shoal/client.json: see `shoal profile show`)"
            )
        digest = hash_key(key.strip())
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            acct = hit[0]
        else:
            async with self._db.execute(
                "SELECT name FROM accounts WHERE key_hash = ?", (digest,)
            ) as cur:
                row = await cur.fetchone()
            acct = row[0] if row else None
            if len(self._cache) >= MAX_CACHED:
                # Wrong keys are cheap to send: never let them grow memory without bound.
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now and v[0]}
            self._cache[digest] = (acct, now + (CACHE_TTL if acct else NEGATIVE_TTL))
        if acct is None:
            raise unauthenticated("the account key is not valid")
        return acct

    async def key_of(self, name: str) -> tuple[str, str] | None:
        """(the account's name as stored, its key) for an account name given in any case, or
        None when there is no such account or its key predates derived keys."""
        folded = name.lower()
        now = time.monotonic()
        hit = self._keys.get(folded)
        if hit is not None and hit[1] > now:
            return hit[0]
        async with self._db.execute(
            "SELECT name, key_nonce FROM accounts WHERE name = ? COLLATE NOCASE", (name,)
        ) as cur:
            row = await cur.fetchone()
        found = (row[0], derive_key(self._secret, row[1])) if row and row[1] else None
        if len(self._keys) >= MAX_CACHED:
            self._keys = {k: v for k, v in self._keys.items() if v[1] > now and v[0]}
        self._keys[folded] = (found, now + (CACHE_TTL if found else NEGATIVE_TTL))
        return found
