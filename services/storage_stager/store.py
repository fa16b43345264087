"""The stager's SQLite tables: SQL only, model objects in and out.

Every read and write names the account. Application ids and version ids are unique ignoring
case (UNIQUE on the lower-cased form); the spelling the user chose is kept for display and for
the backend key. Container ids are lower-case by rule. Containers and applications carry the
uid of their incarnation (keys.py); a write meant for one incarnation never touches the next.

Changes that depend on other rows (a default version must exist) are single statements: the
connection is shared by concurrent calls, and one statement is atomic where a read followed by
a write is not.
"""

from __future__ import annotations

import sqlite3
from enum import Enum
from pathlib import Path
from typing import Any

import aiosqlite

from services.common.db import open_db
from services.storage_stager.model import Application, AppVersion, ArchiveFormat, Container

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '2');
CREATE TABLE IF NOT EXISTS containers (
    account TEXT NOT NULL,
    id TEXT NOT NULL,
    create_time REAL NOT NULL,
    uid TEXT NOT NULL,
    PRIMARY KEY (account, id)
);
CREATE TABLE IF NOT EXISTS applications (
    account TEXT NOT NULL,
    id TEXT NOT NULL,
    id_lower TEXT NOT NULL,
    display_name TEXT NOT NULL,
    default_version TEXT NOT NULL,
    create_time REAL NOT NULL,
    uid TEXT NOT NULL,
    PRIMARY KEY (account, id_lower)
);
CREATE TABLE IF NOT EXISTS app_versions (
    account TEXT NOT NULL,
    app_lower TEXT NOT NULL,
    version TEXT NOT NULL,
    version_lower TEXT NOT NULL,
    format TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    create_time REAL NOT NULL,
    PRIMARY KEY (account, app_lower, version_lower),
    FOREIGN KEY (account, app_lower) REFERENCES applications (account, id_lower)
        ON DELETE CASCADE
);
"""
# A version's row joined with its application's: the id as spelled and the incarnation.
_VERSION = (
    "SELECT v.*, a.id AS app_id, a.uid AS app_uid FROM app_versions v"
    " JOIN applications a ON a.account = v.account AND a.id_lower = v.app_lower"
    " WHERE v.account = ? AND v.app_lower = ?"
)
_VERSION_EXISTS = (
    "EXISTS (SELECT 1 FROM app_versions v WHERE v.account = applications.account"
    " AND v.app_lower = applications.id_lower AND v.version_lower = ?)"
)


class Added(Enum):
    ADDED = "added"
    EXISTS = "exists"
    NO_APPLICATION = "no application"
    """The application is gone, or is another incarnation than the one the version was for."""


async def _migrate(db: aiosqlite.Connection) -> None:
    # Schema 1 had no uids: its containers and applications keep uid "" and the backend keys
    # they were stored under (keys.py).
    for table in ("containers", "applications"):
        cur = await db.execute(f"PRAGMA table_info({table})")
        if "uid" not in {r["name"] for r in await cur.fetchall()}:
            await db.execute(f"ALTER TABLE {table} ADD COLUMN uid TEXT NOT NULL DEFAULT ''")
    await db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def _container(r: Any) -> Container:
    return Container(r["account"], r["id"], r["create_time"], r["uid"])


def _app(r: Any) -> Application:
    return Application(
        r["account"], r["id"], r["display_name"], r["default_version"], r["create_time"],
        r["uid"],
    )


def _version(r: Any) -> AppVersion:
    return AppVersion(
        r["account"], r["app_id"], r["version"], ArchiveFormat(r["format"]), r["size"],
        r["sha256"], r["create_time"], r["app_uid"],
    )


class Store:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: Path) -> Store:
        # Autocommit: every write is one statement, and a shared connection must not let one
        # call's rollback undo another's pending statement.
        db = await open_db(path, SCHEMA, autocommit=True)
        await _migrate(db)
        return cls(db)

    async def close(self) -> None:
        await self.db.close()

    async def _insert(self, sql: str, args: tuple[Any, ...]) -> bool:
        """Run one INSERT; False if it hit a uniqueness constraint."""
        try:
            await self.db.execute(sql, args)
        except sqlite3.IntegrityError:
            return False
        return True

    async def _change(self, sql: str, args: tuple[Any, ...]) -> int:
        cur = await self.db.execute(sql, args)
        return cur.rowcount

    # Containers

    async def add_container(self, c: Container) -> bool:
        return await self._insert(
            "INSERT INTO containers (account, id, create_time, uid) VALUES (?, ?, ?, ?)",
            (c.account, c.id, c.create_time, c.uid),
        )

    async def get_container(self, account: str, container_id: str) -> Container | None:
        cur = await self.db.execute(
            "SELECT * FROM containers WHERE account = ? AND id = ?", (account, container_id)
        )
        row = await cur.fetchone()
        return None if row is None else _container(row)

    async def list_containers(self, account: str, after: str, limit: int) -> list[Container]:
        cur = await self.db.execute(
            "SELECT * FROM containers WHERE account = ? AND id > ? ORDER BY id LIMIT ?",
            (account, after, limit),
        )
        return [_container(r) for r in await cur.fetchall()]

    async def delete_container(self, account: str, container_id: str, uid: str) -> bool:
        return await self._change(
            "DELETE FROM containers WHERE account = ? AND id = ? AND uid = ?",
            (account, container_id, uid),
        ) > 0

    # Applications

    async def add_application(self, a: Application) -> bool:
        return await self._insert(
            "INSERT INTO applications (account, id, id_lower, display_name, default_version,"
            " create_time, uid) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (a.account, a.id, a.id.lower(), a.display_name, a.default_version, a.create_time,
             a.uid),
        )

    async def get_application(self, account: str, app_id: str) -> Application | None:
        cur = await self.db.execute(
            "SELECT * FROM applications WHERE account = ? AND id_lower = ?",
            (account, app_id.lower()),
        )
        row = await cur.fetchone()
        return None if row is None else _app(row)

    async def list_applications(self, account: str, after: str, limit: int) -> list[Application]:
        cur = await self.db.execute(
            "SELECT * FROM applications WHERE account = ? AND id_lower > ?"
            " ORDER BY id_lower LIMIT ?",
            (account, after.lower(), limit),
        )
        return [_app(r) for r in await cur.fetchall()]

    async def update_application(
        self, account: str, app_id: str, display_name: str | None, default_version: str | None
    ) -> Application | None:
        """Change the fields given (None: keep). A non-empty default version must exist (its
        stored spelling is kept), checked in the same statement, so a version deleted
        meanwhile is never made the default. None if there is no such application or no such
        version."""
        sets: list[str] = []
        args: list[Any] = []
        where = "account = ? AND id_lower = ?"
        where_args: list[Any] = [account, app_id.lower()]
        if display_name is not None:
            sets.append("display_name = ?")
            args.append(display_name)
        if default_version:
            sets.append(
                "default_version = (SELECT v.version FROM app_versions v"
                " WHERE v.account = applications.account AND v.app_lower = applications.id_lower"
                " AND v.version_lower = ?)"
            )
            args.append(default_version.lower())
            where += " AND " + _VERSION_EXISTS
            where_args.append(default_version.lower())
        elif default_version == "":
            sets.append("default_version = ''")
        if not sets:
            return await self.get_application(account, app_id)
        cur = await self.db.execute(
            f"UPDATE applications SET {', '.join(sets)} WHERE {where} RETURNING *",
            (*args, *where_args),
        )
        rows = list(await cur.fetchall())  # all of them: RETURNING completes the statement
        return _app(rows[0]) if rows else None

    async def delete_application(self, account: str, app_id: str, uid: str) -> bool:
        return await self._change(
            "DELETE FROM applications WHERE account = ? AND id_lower = ? AND uid = ?",
            (account, app_id.lower(), uid),
        ) > 0

    # Versions

    async def add_version(self, v: AppVersion) -> Added:
        """Register a version of the application incarnation `v.app_uid`, only while that
        incarnation exists."""
        try:
            cur = await self.db.execute(
                "INSERT INTO app_versions (account, app_lower, version, version_lower, format,"
                " size, sha256, create_time) SELECT account, id_lower, ?, ?, ?, ?, ?, ?"
                " FROM applications WHERE account = ? AND id_lower = ? AND uid = ?",
                (v.version, v.version.lower(), v.format.value, v.size, v.sha256, v.create_time,
                 v.account, v.app_id.lower(), v.app_uid),
            )
        except sqlite3.IntegrityError:
            return Added.EXISTS
        return Added.ADDED if cur.rowcount > 0 else Added.NO_APPLICATION

    async def get_version(self, account: str, app_id: str, version: str) -> AppVersion | None:
        cur = await self.db.execute(
            _VERSION + " AND v.version_lower = ?", (account, app_id.lower(), version.lower())
        )
        row = await cur.fetchone()
        return None if row is None else _version(row)

    async def list_versions(
        self, account: str, app_id: str, after: str, limit: int
    ) -> list[AppVersion]:
        cur = await self.db.execute(
            _VERSION + " AND v.version_lower > ? ORDER BY v.version_lower LIMIT ?",
            (account, app_id.lower(), after.lower(), limit),
        )
        return [_version(r) for r in await cur.fetchall()]

    async def delete_version(self, v: AppVersion) -> bool:
        """Delete the version, and clear the application's default if it named it; only in the
        application incarnation `v.app_uid`."""
        deleted = await self._change(
            "DELETE FROM app_versions WHERE account = ? AND app_lower = ? AND version_lower = ?"
            " AND EXISTS (SELECT 1 FROM applications a WHERE a.account = app_versions.account"
            " AND a.id_lower = app_versions.app_lower AND a.uid = ?)",
            (v.account, v.app_id.lower(), v.version.lower(), v.app_uid),
        ) > 0
        # A default must exist: references without a version then fail clearly. One statement,
        # so a concurrent rename or default change is not undone.
        await self.db.execute(
            "UPDATE applications SET default_version = ''"
            " WHERE account = ? AND id_lower = ? AND uid = ? AND lower(default_version) = ?",
            (v.account, v.app_id.lower(), v.app_uid, v.version.lower()),
        )
        return deleted
