"""The pool-manager's SQLite tables: SQL only, model objects in and out.

Every read and write names the account. Ids are unique per account ignoring case, enforced by
UNIQUE constraints on the lower-cased id; the id as the user spelled it is kept for display.
Node rows are updated by targeted statements (not whole-row writes) because the reconcile loop
and RegisterNode touch the same rows concurrently.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite

from services.common.db import open_db
from services.pool_manager.model import (
    DeallocationOption,
    Node,
    NodeCounts,
    NodeError,
    NodeFillType,
    NodeRowState,
    Pool,
    PoolState,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS pools (
    account TEXT NOT NULL,
    id TEXT NOT NULL,
    id_lower TEXT NOT NULL,
    display_name TEXT NOT NULL,
    target_nodes INTEGER NOT NULL,
    task_slots_per_node INTEGER NOT NULL,
    provider TEXT NOT NULL,
    state TEXT NOT NULL,
    metadata TEXT NOT NULL,
    create_time REAL NOT NULL,
    state_transition_time REAL NOT NULL,
    join_token TEXT NOT NULL UNIQUE,
    resize_option TEXT NOT NULL,
    app_packages TEXT NOT NULL DEFAULT '[]',
    start_task BLOB,
    node_fill_type TEXT NOT NULL DEFAULT 'SPREAD',
    pk INTEGER,
    revision INTEGER NOT NULL DEFAULT 1,
    update_time REAL,
    UNIQUE (account, id_lower)
);
-- One row per pool ever created: AUTOINCREMENT never hands out a pk twice, even after the
-- pool is deleted, so an etag of a deleted pool never matches one created again.
CREATE TABLE IF NOT EXISTS pool_pks (pk INTEGER PRIMARY KEY AUTOINCREMENT);
CREATE TABLE IF NOT EXISTS nodes (
    account TEXT NOT NULL,
    pool_lower TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    node_lower TEXT NOT NULL,
    state TEXT NOT NULL,
    create_time REAL NOT NULL,
    state_transition_time REAL NOT NULL,
    hostname TEXT NOT NULL DEFAULT '',
    errors TEXT NOT NULL DEFAULT '[]',
    pid INTEGER,
    pid_start_time INTEGER,
    leave_option TEXT NOT NULL,
    leave_notified INTEGER NOT NULL DEFAULT 0,
    scheduling TEXT NOT NULL DEFAULT 'ENABLED',
    scheduling_option TEXT NOT NULL DEFAULT 'REQUEUE',
    scheduling_notified INTEGER NOT NULL DEFAULT 1,
    restart_time REAL,
    UNIQUE (account, pool_lower, node_lower),
    FOREIGN KEY (account, pool_lower) REFERENCES pools (account, id_lower)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_POOL_COLS = (
    "account, id, display_name, target_nodes, task_slots_per_node, provider, state, metadata,"
    " create_time, state_transition_time, join_token, resize_option, app_packages,"
    " start_task, node_fill_type, pk, revision, update_time"
)
_NODE_COLS = (
    "account, pool_id, node_id, state, create_time, state_transition_time, hostname, errors,"
    " pid, pid_start_time, leave_option, leave_notified, scheduling, scheduling_option,"
    " scheduling_notified, restart_time"
)
# Columns added after the first release, with their definitions: databases of earlier
# versions get them when opened.
_ADDED_POOL_COLUMNS = {
    "node_fill_type": "TEXT NOT NULL DEFAULT 'SPREAD'",
    "pk": "INTEGER",
    "revision": "INTEGER NOT NULL DEFAULT 1",
    "update_time": "REAL",
}
_ADDED_NODE_COLUMNS = {
    "scheduling": "TEXT NOT NULL DEFAULT 'ENABLED'",
    "scheduling_option": "TEXT NOT NULL DEFAULT 'REQUEUE'",
    "scheduling_notified": "INTEGER NOT NULL DEFAULT 1",
    "restart_time": "REAL",
}


_REVISED = (
    "revision = revision + {changed},"
    " update_time = CASE WHEN {changed} THEN :now ELSE update_time END"
)
"""SET clauses that give a pool a new etag when a change of its settings changes anything:
{changed} is an SQL condition on the row before the change (SET reads the old values)."""


def _pool(r: Any) -> Pool:
    return Pool(
        account=r["account"],
        id=r["id"],
        display_name=r["display_name"],
        target_nodes=r["target_nodes"],
        task_slots_per_node=r["task_slots_per_node"],
        provider=r["provider"],
        state=PoolState(r["state"]),
        metadata=json.loads(r["metadata"]),
        create_time=r["create_time"],
        state_transition_time=r["state_transition_time"],
        join_token=r["join_token"],
        resize_option=DeallocationOption(r["resize_option"]),
        app_packages=tuple(tuple(x) for x in json.loads(r["app_packages"])),
        start_task=r["start_task"],
        node_fill_type=NodeFillType(r["node_fill_type"]),
        pk=r["pk"],
        revision=r["revision"],
        # A row from before updates existed: its state was all that could change.
        update_time=r["state_transition_time"] if r["update_time"] is None else r["update_time"],
    )


def _node(r: Any) -> Node:
    return Node(
        account=r["account"],
        pool_id=r["pool_id"],
        node_id=r["node_id"],
        state=NodeRowState(r["state"]),
        create_time=r["create_time"],
        state_transition_time=r["state_transition_time"],
        hostname=r["hostname"],
        errors=tuple(NodeError(**e) for e in json.loads(r["errors"])),
        pid=r["pid"],
        pid_start_time=r["pid_start_time"],
        leave_option=DeallocationOption(r["leave_option"]),
        leave_notified=bool(r["leave_notified"]),
        scheduling_enabled=r["scheduling"] == "ENABLED",
        scheduling_option=DeallocationOption(r["scheduling_option"]),
        scheduling_notified=bool(r["scheduling_notified"]),
        restart_time=r["restart_time"],
    )


async def _migrate(db: aiosqlite.Connection) -> aiosqlite.Connection:
    for table, added in (("pools", _ADDED_POOL_COLUMNS), ("nodes", _ADDED_NODE_COLUMNS)):
        async with db.execute(f"PRAGMA table_info({table})") as cur:
            have = {r["name"] for r in await cur.fetchall()}
        for name, definition in added.items():
            if name not in have:
                await db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
    # Pools from before etags: their rowids are unique among them; new pools' pks follow.
    await db.execute("UPDATE pools SET pk = rowid WHERE pk IS NULL")
    await db.execute("INSERT OR IGNORE INTO pool_pks (pk) SELECT max(pk) FROM pools"
                     " WHERE pk IS NOT NULL")
    await db.commit()
    return db


def _errors(node: Node) -> str:
    return json.dumps([{"code": e.code, "message": e.message, "time": e.time} for e in node.errors])


class Store:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.nodes_changed: Callable[[str, str], None] = lambda account, pool_id: None
        """Called with (account, pool id) after a write that changes what users see of a
        node: the node watch (node_feed.py) looks at that pool again."""

    @classmethod
    async def open(cls, path: Path) -> Store:
        return cls(await _migrate(await open_db(path, SCHEMA)))

    async def close(self) -> None:
        await self.db.close()

    async def start_epoch(self) -> int:
        """Count this start: the node watch's revisions begin a new epoch (see
        services/common/changes.py)."""
        await self.db.execute(
            "INSERT INTO meta (key, value) VALUES ('watch_epoch', 1)"
            " ON CONFLICT (key) DO UPDATE SET value = value + 1")
        await self.db.commit()
        row = await self._one("SELECT value FROM meta WHERE key = 'watch_epoch'", ())
        return int(row[0])

    async def _one(self, sql: str, args: Iterable[Any]) -> Any:
        async with self.db.execute(sql, tuple(args)) as cur:
            return await cur.fetchone()

    async def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        async with self.db.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())

    async def _write(self, sql: str, args: Iterable[Any] | dict[str, Any]) -> int:
        cur = await self.db.execute(sql, args if isinstance(args, dict) else tuple(args))
        await self.db.commit()
        return cur.rowcount

    # --- pools ----------------------------------------------------------------------------

    async def insert_pool(self, p: Pool) -> Pool | None:
        """Insert a new pool, which gets its pk here; None when the account already has one
        with that id."""
        cur = await self.db.execute("INSERT INTO pool_pks DEFAULT VALUES")
        assert cur.lastrowid is not None  # set by every INSERT
        p = replace(p, pk=cur.lastrowid)
        try:
            await self._write(
                f"INSERT INTO pools ({_POOL_COLS}, id_lower)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (p.account, p.id, p.display_name, p.target_nodes, p.task_slots_per_node,
                 p.provider, p.state.value, json.dumps(p.metadata), p.create_time,
                 p.state_transition_time, p.join_token, p.resize_option.value,
                 json.dumps(p.app_packages), p.start_task, p.node_fill_type.value, p.pk,
                 p.revision, p.update_time, p.id.lower()),
            )
        except sqlite3.IntegrityError:
            # Only the failed statement is undone; no rollback, which would also discard
            # another coroutine's uncommitted writes on this shared connection. (The pk
            # taken stays taken: pks need not be dense.)
            await self.db.commit()
            return None
        return p

    async def get_pool(self, account: str, pool_id: str) -> Pool | None:
        r = await self._one(
            f"SELECT {_POOL_COLS} FROM pools WHERE account = ? AND id_lower = ?",
            (account, pool_id.lower()),
        )
        return _pool(r) if r else None

    async def pool_by_token(self, join_token: str) -> Pool | None:
        r = await self._one(f"SELECT {_POOL_COLS} FROM pools WHERE join_token = ?", (join_token,))
        return _pool(r) if r else None

    async def list_pools(
        self, account: str, after: str | None, limit: int, states: set[str] | None = None
    ) -> list[Pool]:
        """Pools ordered by id (ignoring case), those after the id `after`, at most `limit`."""
        sql = f"SELECT {_POOL_COLS} FROM pools WHERE account = ? AND id_lower > ?"
        args: list[Any] = [account, (after or "").lower()]
        if states is not None:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += sorted(states)
        sql += " ORDER BY id_lower LIMIT ?"
        return [_pool(r) for r in await self._all(sql, [*args, limit])]

    async def all_pools(self) -> list[Pool]:
        return [_pool(r) for r in await self._all(f"SELECT {_POOL_COLS} FROM pools")]

    async def resize_pool(
        self, account: str, pool_id: str, target: int, option: DeallocationOption, now: float
    ) -> bool:
        """Set the target of an ACTIVE pool (a new etag if that changes it); False if it is
        not (any more) active."""
        changed = "(target_nodes != :target OR resize_option != :option)"
        return bool(await self._write(
            f"UPDATE pools SET {_REVISED.format(changed=changed)},"
            " target_nodes = :target, resize_option = :option"
            " WHERE account = :account AND id_lower = :pool AND state = 'ACTIVE'",
            {"target": target, "option": option.value, "now": now, "account": account,
             "pool": pool_id.lower()},
        ))

    async def update_pool(self, p: Pool, revision: int) -> bool:
        """Write an updated pool's settings (UpdatePool) if it is still ACTIVE at `revision`,
        the one the update was decided on; False if it changed meanwhile."""
        return bool(await self._write(
            "UPDATE pools SET start_task = ?, app_packages = ?, metadata = ?, revision = ?,"
            " update_time = ? WHERE account = ? AND id_lower = ? AND revision = ?"
            " AND state = 'ACTIVE'",
            (p.start_task, json.dumps(p.app_packages), json.dumps(p.metadata), p.revision,
             p.update_time, p.account, p.id.lower(), revision),
        ))

    async def mark_pool_deleting(self, account: str, pool_id: str, now: float) -> None:
        await self._write(
            "UPDATE pools SET state = 'DELETING', state_transition_time = ?,"
            " revision = revision + 1, update_time = ?"
            " WHERE account = ? AND id_lower = ? AND state != 'DELETING'",
            (now, now, account, pool_id.lower()),
        )

    async def delete_pool_if_empty(self, account: str, pool_id: str) -> bool:
        return bool(await self._write(
            "DELETE FROM pools WHERE account = ? AND id_lower = ? AND state = 'DELETING'"
            " AND NOT EXISTS (SELECT 1 FROM nodes n"
            "   WHERE n.account = pools.account AND n.pool_lower = pools.id_lower)",
            (account, pool_id.lower()),
        ))

    async def node_counts(self, account: str, pool_ids: Iterable[str]) -> dict[str, NodeCounts]:
        """Node counts keyed by lower-cased pool id."""
        lowered = sorted({p.lower() for p in pool_ids})
        if not lowered:
            return {}
        rows = await self._all(
            "SELECT pool_lower, COUNT(*) AS total, SUM(state = 'LEAVING') AS leaving FROM nodes"
            f" WHERE account = ? AND pool_lower IN ({','.join('?' * len(lowered))})"
            " GROUP BY pool_lower",
            [account, *lowered],
        )
        return {r["pool_lower"]: NodeCounts(r["total"], r["leaving"] or 0) for r in rows}

    # --- nodes ----------------------------------------------------------------------------

    async def insert_node(self, n: Node) -> None:
        await self._write(
            f"INSERT INTO nodes ({_NODE_COLS}, pool_lower, node_lower)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (n.account, n.pool_id, n.node_id, n.state.value, n.create_time,
             n.state_transition_time, n.hostname, _errors(n), n.pid, n.pid_start_time,
             n.leave_option.value, int(n.leave_notified),
             "ENABLED" if n.scheduling_enabled else "DISABLED", n.scheduling_option.value,
             int(n.scheduling_notified), n.restart_time, n.pool_id.lower(), n.node_id.lower()),
        )
        self.nodes_changed(n.account, n.pool_id)

    async def get_node(self, account: str, pool_id: str, node_id: str) -> Node | None:
        r = await self._one(
            f"SELECT {_NODE_COLS} FROM nodes"
            " WHERE account = ? AND pool_lower = ? AND node_lower = ?",
            (account, pool_id.lower(), node_id.lower()),
        )
        return _node(r) if r else None

    async def list_nodes(self, account: str, pool_id: str) -> list[Node]:
        rows = await self._all(
            f"SELECT {_NODE_COLS} FROM nodes WHERE account = ? AND pool_lower = ?"
            " ORDER BY node_lower",
            (account, pool_id.lower()),
        )
        return [_node(r) for r in rows]

    async def all_nodes(self) -> list[Node]:
        return [_node(r) for r in await self._all(f"SELECT {_NODE_COLS} FROM nodes")]

    async def update_lifecycle(self, nodes: Iterable[Node]) -> None:
        """Write the lifecycle fields of several nodes in one transaction."""
        await self.db.executemany(
            "UPDATE nodes SET state = ?, state_transition_time = ?, errors = ?, pid = ?,"
            " pid_start_time = ?, leave_option = ?, leave_notified = ?"
            " WHERE account = ? AND pool_lower = ? AND node_lower = ?",
            [(n.state.value, n.state_transition_time, _errors(n), n.pid, n.pid_start_time,
              n.leave_option.value, int(n.leave_notified), n.account, n.pool_id.lower(),
              n.node_id.lower()) for n in nodes],
        )
        await self.db.commit()
        for account, pool_id in {(n.account, n.pool_id.lower()) for n in nodes}:
            self.nodes_changed(account, pool_id)

    async def set_process(
        self, account: str, pool_id: str, node_id: str, pid: int | None, start_time: int | None
    ) -> None:
        await self._write(
            "UPDATE nodes SET pid = ?, pid_start_time = ?"
            " WHERE account = ? AND pool_lower = ? AND node_lower = ?",
            (pid, start_time, account, pool_id.lower(), node_id.lower()),
        )

    async def set_notified(
        self, account: str, pool_id: str, node_ids: Iterable[str], option: DeallocationOption
    ) -> None:
        # Only rows still owed this very option: a crash may have changed it meanwhile.
        await self.db.executemany(
            "UPDATE nodes SET leave_notified = 1 WHERE account = ? AND pool_lower = ?"
            " AND node_lower = ? AND state = 'LEAVING' AND leave_option = ?",
            [(account, pool_id.lower(), n.lower(), option.value) for n in node_ids],
        )
        await self.db.commit()

    async def register_node(
        self, account: str, pool_id: str, node_id: str, hostname: str, now: float
    ) -> None:
        # A leaving node may re-register (its agent restarted) but stays leaving.
        await self._write(
            "UPDATE nodes SET hostname = ?,"
            " state_transition_time = CASE WHEN state = 'STARTING' THEN ?"
            "   ELSE state_transition_time END,"
            " state = CASE WHEN state = 'STARTING' THEN 'ACTIVE' ELSE state END"
            " WHERE account = ? AND pool_lower = ? AND node_lower = ?",
            (hostname, now, account, pool_id.lower(), node_id.lower()),
        )
        self.nodes_changed(account, pool_id)

    async def delete_node(self, account: str, pool_id: str, node_id: str) -> None:
        await self._write(
            "DELETE FROM nodes WHERE account = ? AND pool_lower = ? AND node_lower = ?",
            (account, pool_id.lower(), node_id.lower()),
        )
        self.nodes_changed(account, pool_id)

    # --- node operations --------------------------------------------------------------------

    async def set_scheduling(self, n: Node) -> bool:
        """Write a node's scheduling setting; False if it is leaving (or gone)."""
        written = bool(await self._write(
            "UPDATE nodes SET scheduling = ?, scheduling_option = ?, scheduling_notified = ?"
            " WHERE account = ? AND pool_lower = ? AND node_lower = ? AND state != 'LEAVING'",
            ("ENABLED" if n.scheduling_enabled else "DISABLED", n.scheduling_option.value,
             int(n.scheduling_notified), n.account, n.pool_id.lower(), n.node_id.lower()),
        ))
        self.nodes_changed(n.account, n.pool_id)
        return written

    async def set_scheduling_notified(self, n: Node) -> None:
        """Mark the setting `n` carries as acknowledged, unless it has changed since."""
        await self._write(
            "UPDATE nodes SET scheduling_notified = 1"
            " WHERE account = ? AND pool_lower = ? AND node_lower = ?"
            " AND scheduling = ? AND scheduling_option = ?",
            (n.account, n.pool_id.lower(), n.node_id.lower(),
             "ENABLED" if n.scheduling_enabled else "DISABLED", n.scheduling_option.value),
        )

    async def set_rebooting(self, n: Node) -> bool:
        """Write the row of a node whose agent restarts; False if it is leaving (or gone)."""
        written = bool(await self._write(
            "UPDATE nodes SET state = ?, state_transition_time = ?, errors = ?, restart_time = ?"
            " WHERE account = ? AND pool_lower = ? AND node_lower = ? AND state != 'LEAVING'",
            (n.state.value, n.state_transition_time, _errors(n), n.restart_time, n.account,
             n.pool_id.lower(), n.node_id.lower()),
        ))
        self.nodes_changed(n.account, n.pool_id)
        return written

    async def remove_nodes(self, pool: Pool, leaving: list[Node], now: float) -> None:
        """Mark nodes leaving and lower the pool's target by as many, in one transaction.
        Lowered in SQL, not set: a resize that lands meanwhile is not overwritten."""
        await self.db.executemany(
            "UPDATE nodes SET state = ?, state_transition_time = ?, leave_option = ?,"
            " leave_notified = 0 WHERE account = ? AND pool_lower = ? AND node_lower = ?",
            [(n.state.value, n.state_transition_time, n.leave_option.value, n.account,
              n.pool_id.lower(), n.node_id.lower()) for n in leaving],
        )
        await self.db.execute(
            f"UPDATE pools SET {_REVISED.format(changed='(:n > 0 AND target_nodes > 0)')},"
            " target_nodes = MAX(0, target_nodes - :n) WHERE account = :account AND id_lower = :pool",
            {"n": len(leaving), "now": now, "account": pool.account, "pool": pool.id.lower()},
        )
        await self.db.commit()
        self.nodes_changed(pool.account, pool.id)
