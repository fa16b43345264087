"""Opening a service's SQLite file: checked first (shoal.dbfiles), WAL, sane pragmas, schema
applied idempotently."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from shoal.dbfiles import DatabaseUnreadable, check_file


async def open_db(path: Path, schema: str, *, autocommit: bool = False) -> aiosqlite.Connection:
    """`autocommit` leaves transactions to the caller (explicit BEGIN/COMMIT), for writers that
    group many statements into one transaction themselves. Raises DatabaseUnreadable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    check_file(path)
    db = await aiosqlite.connect(path, isolation_level=None if autocommit else "")
    try:
        db.row_factory = aiosqlite.Row
        # WAL lets readers run beside the writer; NORMAL sync in WAL mode is durable across a
        # process crash (what we guard against) and only risks the last commit on power loss.
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.executescript(schema)
        await db.commit()
    except sqlite3.DatabaseError as e:
        # Its thread would keep the process alive: close the connection before giving up.
        await db.close()
        raise DatabaseUnreadable(path, f"is not a readable SQLite database ({e})") from None
    except BaseException:
        await db.close()
        raise
    return db
