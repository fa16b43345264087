"""Opening a service's SQLite file: WAL, sane pragmas, schema applied idempotently."""

from __future__ import annotations

from pathlib import Path

import aiosqlite


async def open_db(path: Path, schema: str, *, autocommit: bool = False) -> aiosqlite.Connection:
    """`autocommit` leaves transactions to the caller (explicit BEGIN/COMMIT), for writers that
    group many statements into one transaction themselves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None if autocommit else "")
    db.row_factory = aiosqlite.Row
    # WAL lets readers run beside the writer; NORMAL sync in WAL mode is durable across a
    # process crash (what we guard against) and only risks the last commit on power loss.
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=NORMAL")
    await db.execute("PRAGMA foreign_keys=ON")
    await db.execute("PRAGMA busy_timeout=5000")
    await db.executescript(schema)
    await db.commit()
    return db
