"""The stager's SQLite tables: SQL only, model objects in and out.

Every read and write names the account. Application ids and version ids are unique ignoring
case (UNIQUE on the lower-cased form); the spelling the user chose is kept for display and for
the backend key. Container ids are lower-case by rule.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from services.common.db import open_db
from services.storage_stager.model import Application, AppVersion, ArchiveFormat, Container

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
CREATE TABLE IF NOT EXISTS containers (
    account TEXT NOT NULL,
    id TEXT NOT NULL,
    create_time REAL NOT NULL,
    PRIMARY KEY (account, id)
);
CREATE TABLE IF NOT EXISTS applications (
    account TEXT NOT NULL,
    id TEXT NOT NULL,
    id_lower TEXT NOT NULL,
    display_name TEXT NOT NULL,
    default_version TEXT NOT NULL,
    create_time REAL NOT NULL,
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


def _container(r: Any) -> Container:
    return Container(r["account"], r["id"], r["create_time"])


def _app(r: Any) -> Application:
    return Application(
        r["account"], r["id"], r["display_name"], r["default_version"], r["create_time"]
    )


def _version(r: Any, app_id: str) -> AppVersion:
    return AppVersion(
        r["account"], app_id, r["version"], ArchiveFormat(r["format"]), r["size"], r["sha256"],
        r["create_time"],
    )


class Store:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: Path) -> Store:
        # Autocommit: every write is one statement, and a shared connection must not let one
        # call's rollback undo another's pending statement.
        return cls(await open_db(path, SCHEMA, autocommit=True))

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
            "INSERT INTO containers (account, id, create_time) VALUES (?, ?, ?)",
            (c.account, c.id, c.create_time),
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

    async def delete_container(self, account: str, container_id: str) -> bool:
        return await self._change(
            "DELETE FROM containers WHERE account = ? AND id = ?", (account, container_id)
        ) > 0

    # Applications

    async def add_application(self, a: Application) -> bool:
        return await self._insert(
            "INSERT INTO applications (account, id, id_lower, display_name, default_version,"
            " create_time) VALUES (?, ?, ?, ?, ?, ?)",
            (a.account, a.id, a.id.lower(), a.display_name, a.default_version, a.create_time),
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

    async def update_application(self, a: Application) -> bool:
        return await self._change(
            "UPDATE applications SET display_name = ?, default_version = ?"
            " WHERE account = ? AND id_lower = ?",
            (a.display_name, a.default_version, a.account, a.id.lower()),
        ) > 0

    async def delete_application(self, account: str, app_id: str) -> bool:
        return await self._change(
            "DELETE FROM applications WHERE account = ? AND id_lower = ?",
            (account, app_id.lower()),
        ) > 0

    # Versions

    async def add_version(self, v: AppVersion) -> bool:
        return await self._insert(
            "INSERT INTO app_versions (account, app_lower, version, version_lower, format, size,"
            " sha256, create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (v.account, v.app_id.lower(), v.version, v.version.lower(), v.format.value, v.size,
             v.sha256, v.create_time),
        )

    async def get_version(self, account: str, app_id: str, version: str) -> AppVersion | None:
        cur = await self.db.execute(
            "SELECT * FROM app_versions WHERE account = ? AND app_lower = ? AND version_lower = ?",
            (account, app_id.lower(), version.lower()),
        )
        row = await cur.fetchone()
        return None if row is None else _version(row, app_id)

    async def list_versions(
        self, account: str, app_id: str, after: str, limit: int
    ) -> list[AppVersion]:
        cur = await self.db.execute(
            "SELECT * FROM app_versions WHERE account = ? AND app_lower = ? AND version_lower > ?"
            " ORDER BY version_lower LIMIT ?",
            (account, app_id.lower(), after.lower(), limit),
        )
        return [_version(r, app_id) for r in await cur.fetchall()]

    async def delete_version(self, account: str, app_id: str, version: str) -> bool:
        return await self._change(
            "DELETE FROM app_versions WHERE account = ? AND app_lower = ? AND version_lower = ?",
            (account, app_id.lower(), version.lower()),
        ) > 0
