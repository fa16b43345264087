"""The gateway's account store: accounts and their keys, in the gateway's SQLite file.

Admin paths (`shoal up`, operators) use these synchronous functions; the gateway process does
its own async look-ups against the same table with `SCHEMA` and `hash_key`. Only a SHA-256 of
each key is stored: keys are 256-bit random tokens, so a slow password hash buys nothing and
would cost every request.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import already_exists, not_found
from services.common.ids import check_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    key_hash TEXT UNIQUE NOT NULL,
    create_time REAL NOT NULL
);
"""

KEY_PREFIX = "shoal_"


@dataclass(frozen=True)
class Account:
    name: str
    create_time: float
    """Unix seconds."""


def hash_key(key: str) -> str:
    """What is stored for a key, and what a presented key is looked up by."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@contextmanager
def _open(db_path: Path | str) -> Iterator[sqlite3.Connection]:
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=5.0)
    try:
        # WAL like every service database, so this admin write never blocks the gateway's reads.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        yield conn
    finally:
        conn.close()


def _find_name(conn: sqlite3.Connection, name: str) -> str | None:
    # Names are unique ignoring case, like every id in Shoal.
    row = conn.execute(
        "SELECT name FROM accounts WHERE name = ? COLLATE NOCASE", (name,)
    ).fetchone()
    return row[0] if row else None


def create_account(db_path: Path | str, name: str) -> str:
    """Create an account; return its key (shown once: only its hash is kept)."""
    check_id(name, "account")
    key = new_key()
    with _open(db_path) as conn, conn:
        if _find_name(conn, name) is not None:
            raise already_exists("account", name)
        conn.execute(
            "INSERT INTO accounts (name, key_hash, create_time) VALUES (?, ?, ?)",
            (name, hash_key(key), time.time()),
        )
    return key


def rotate_key(db_path: Path | str, name: str) -> str:
    """Give an account a new key; the old one stops working at once. Return the new key."""
    check_id(name, "account")
    key = new_key()
    with _open(db_path) as conn, conn:
        stored = _find_name(conn, name)
        if stored is None:
            raise not_found("account", name)
        conn.execute("UPDATE accounts SET key_hash = ? WHERE name = ?", (hash_key(key), stored))
    return key


def lookup(db: Path | str | sqlite3.Connection, key: str) -> Account | None:
    """The account a key belongs to, or None."""
    if not key:
        return None
    if isinstance(db, sqlite3.Connection):
        return _lookup(db, key)
    if not Path(db).exists():
        return None
    with _open(db) as conn:
        return _lookup(conn, key)


def _lookup(conn: sqlite3.Connection, key: str) -> Account | None:
    row = conn.execute(
        "SELECT name, create_time FROM accounts WHERE key_hash = ?", (hash_key(key),)
    ).fetchone()
    return Account(row[0], row[1]) if row else None


def list_accounts(db_path: Path | str) -> list[Account]:
    """All accounts, by name."""
    if not Path(db_path).exists():
        return []
    with _open(db_path) as conn:
        rows = conn.execute("SELECT name, create_time FROM accounts ORDER BY name").fetchall()
    return [Account(name, created) for name, created in rows]
