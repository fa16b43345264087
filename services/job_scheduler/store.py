"""The job-scheduler's SQLite file: SQL only, model objects out.

Writes are group-committed: the app changes its in-memory state at once and queues the
matching statements here; `commit()` returns once they are durable, and everything queued
while a transaction was running goes into the next one. One transaction per batch, not per
task, is what lets thousands of transitions a second through.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from services.common.db import disk_full_error, is_disk_full, open_db
from services.common.filters import Filter, Term
from services.job_scheduler.core.plan import (
    AssignTask,
    DeleteJob,
    DeleteTask,
    EndAttempt,
    FailTasks,
    InsertJob,
    Reactivate,
    Row,
    SetBlocked,
    StartAttempt,
    TaskInfo,
    TaskOutcome,
    Unblock,
    UpdateJob,
    UpdateJobSettings,
    UpdateTaskSettings,
)
from services.job_scheduler.model import (
    ActiveRow,
    AttemptRecord,
    Category,
    DepRow,
    EndedAttempt,
    Failure,
    Job,
    JobState,
    LiveRow,
    OnAllTasksComplete,
    Result,
    TaskCounts,
    TaskDefinition,
    TaskRecord,
    TaskState,
)
from services.job_scheduler.task_filter import NodeRef

log = structlog.get_logger()

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  job_pk INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL,
  id TEXT NOT NULL,
  id_lower TEXT NOT NULL,
  pool_id TEXT NOT NULL,
  priority INTEGER NOT NULL,
  on_all_tasks_complete INTEGER NOT NULL,
  state INTEGER NOT NULL,
  display_name TEXT NOT NULL DEFAULT '',
  metadata TEXT NOT NULL DEFAULT '{}',
  terminate_reason TEXT NOT NULL DEFAULT '',
  create_time REAL NOT NULL,
  state_time REAL NOT NULL,
  end_time REAL,
  n_active INTEGER NOT NULL DEFAULT 0,
  n_running INTEGER NOT NULL DEFAULT 0,
  n_completed INTEGER NOT NULL DEFAULT 0,
  n_succeeded INTEGER NOT NULL DEFAULT 0,
  n_failed INTEGER NOT NULL DEFAULT 0,
  prep BLOB,
  release BLOB,
  schedule_id TEXT NOT NULL DEFAULT '',
  settings TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL DEFAULT 1,
  update_time REAL,
  UNIQUE (account, id_lower)
);
CREATE TABLE IF NOT EXISTS tasks (
  task_pk INTEGER PRIMARY KEY AUTOINCREMENT,
  job_pk INTEGER NOT NULL,
  id TEXT NOT NULL,
  id_lower TEXT NOT NULL,
  display_name TEXT NOT NULL DEFAULT '',
  command_line TEXT NOT NULL,
  environment TEXT NOT NULL DEFAULT '{}',
  max_wall_clock REAL,
  max_retries INTEGER,
  files BLOB,
  deps TEXT,
  deps_spec BLOB,
  exits BLOB,
  slots INTEGER NOT NULL DEFAULT 1,
  priority INTEGER NOT NULL DEFAULT 0,
  retention REAL,
  blocked TEXT,
  unblocked INTEGER NOT NULL DEFAULT 0,
  state INTEGER NOT NULL,
  create_time REAL NOT NULL,
  state_time REAL NOT NULL,
  retry_count INTEGER NOT NULL DEFAULT 0,
  requeue_count INTEGER NOT NULL DEFAULT 0,
  attempt_id TEXT,
  attempt_number INTEGER NOT NULL DEFAULT 0,
  node TEXT,
  start_time REAL,
  end_time REAL,
  exit_code INTEGER,
  result INTEGER,
  failure_category INTEGER,
  failure_code TEXT,
  failure_message TEXT,
  revision INTEGER NOT NULL DEFAULT 1,
  settings_time REAL,
  UNIQUE (job_pk, id_lower)
);
-- Tasks are listed in the order of their lower-cased ids (unique per job): the UNIQUE index
-- serves both the duplicate check and paging, one index fewer to keep on every insert.
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (job_pk, state, id_lower);
CREATE TABLE IF NOT EXISTS attempts (
  attempt_id TEXT PRIMARY KEY,
  task_pk INTEGER NOT NULL,
  number INTEGER NOT NULL,
  node TEXT NOT NULL,
  assign_time REAL NOT NULL,
  start_time REAL,
  end_time REAL,
  exit_code INTEGER,
  failure_category INTEGER,
  failure_code TEXT,
  failure_message TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_task ON attempts (task_pk, number);
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
"""


# Every write, and the order a transaction applies them in. Rows of one kind become one
# executemany, which is what makes a transaction per batch cheap. The order is safe for what
# one batch can hold: a job's rows are deleted first (its id may be taken again in the same
# batch); a task is inserted before it is assigned, started before it ends, and its outcome is
# written before a terminate fails what is still ACTIVE; job rows (counts) are written last.
# Tasks are inserted outside the group commit (insert_tasks), so a duplicate id is refused by
# its own transaction instead of failing everyone's.
DELETE_ATTEMPTS = "DELETE FROM attempts WHERE task_pk IN (SELECT task_pk FROM tasks WHERE job_pk=?)"
DELETE_TASKS = "DELETE FROM tasks WHERE job_pk=?"
DELETE_JOB = "DELETE FROM jobs WHERE job_pk=?"
INSERT_JOB = (
    "INSERT INTO jobs (job_pk, account, id, id_lower, pool_id, priority, on_all_tasks_complete, "
    "state, display_name, metadata, create_time, state_time, prep, release, schedule_id, settings, "
    "revision, update_time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
INSERT_TASK = (
    "INSERT INTO tasks (task_pk, job_pk, id, id_lower, display_name, command_line, environment, "
    "max_wall_clock, max_retries, files, state, create_time, state_time) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
INSERT_BARE_TASK = (
    "INSERT INTO tasks (task_pk, job_pk, id, id_lower, command_line, state, create_time, "
    "state_time) VALUES (?,?,?,?,?,?,?,?)"
)
"""A task that is only an id and a command line (most of a 100,000-task batch): the other
columns keep their defaults. Binding a value costs about as much as inserting it, so 8 values
instead of 13 make the insert about a third cheaper."""
INSERT_TASK_EXTRAS = (
    "UPDATE tasks SET deps=?, deps_spec=?, exits=?, slots=?, priority=?, retention=? "
    "WHERE task_pk=?"
)
"""The rarer columns, for the few tasks of a batch that have them: plain tasks (most of a
100,000-task batch) are inserted with the same 13 values as ever."""
# Every statement that changes a task's state moves its revision (its etag) in SQL: the core
# keeps no per-task record for it, and the hot path binds no extra value.
ASSIGN_TASK = (
    "UPDATE tasks SET state=?, state_time=?, revision=revision+1, attempt_id=?, attempt_number=?, node=?, "
    "start_time=NULL, end_time=NULL, exit_code=NULL, failure_category=NULL, failure_code=NULL, "
    "failure_message=NULL WHERE task_pk=?"
)
INSERT_ATTEMPT = "INSERT INTO attempts (attempt_id, task_pk, number, node, assign_time) VALUES (?,?,?,?,?)"
START_TASK = (
    "UPDATE tasks SET state=?, state_time=?, revision=revision+1, start_time=? "
    "WHERE task_pk=? AND attempt_id=?"
)
START_ATTEMPT = "UPDATE attempts SET start_time=? WHERE attempt_id=?"
END_ATTEMPT = (
    "UPDATE attempts SET start_time=coalesce(?, start_time), end_time=?, exit_code=?, "
    "failure_category=?, failure_code=?, failure_message=? WHERE attempt_id=?"
)
TASK_OUTCOME = (
    "UPDATE tasks SET state=?, state_time=?, revision=revision+1, result=?, retry_count=?, requeue_count=?, "
    "start_time=coalesce(?, start_time), end_time=?, exit_code=?, failure_category=?, "
    "failure_code=?, failure_message=? WHERE task_pk=?"
)
SET_BLOCKED = "UPDATE tasks SET blocked=? WHERE task_pk=?"
UNBLOCK_TASK = "UPDATE tasks SET blocked=NULL, unblocked=1 WHERE task_pk=?"
REACTIVATE_TASK = (
    "UPDATE tasks SET state=?, state_time=?, revision=revision+1, result=NULL, retry_count=0, requeue_count=0, "
    "end_time=NULL, exit_code=NULL, failure_category=NULL, failure_code=NULL, "
    "failure_message=NULL WHERE task_pk=?"
)
DELETE_TASK_ATTEMPTS = "DELETE FROM attempts WHERE task_pk=?"
DELETE_TASK = "DELETE FROM tasks WHERE task_pk=?"
FAIL_TASK = (
    "UPDATE tasks SET state=?, state_time=?, revision=revision+1, result=?, end_time=?, failure_category=?, "
    "failure_code=?, failure_message=? WHERE task_pk=? AND state=?"
)
UPDATE_JOB = (
    "UPDATE jobs SET state=?, terminate_reason=?, state_time=?, end_time=?, n_active=?, "
    "n_running=?, n_completed=?, n_succeeded=?, n_failed=?, revision=?, update_time=? "
    "WHERE job_pk=?"
)
UPDATE_JOB_SETTINGS = (
    "UPDATE jobs SET priority=?, on_all_tasks_complete=?, metadata=?, settings=? WHERE job_pk=?"
)
UPDATE_TASK_SETTINGS = (
    "UPDATE tasks SET max_wall_clock=?, max_retries=?, retention=?, revision=revision+1, "
    "settings_time=? WHERE task_pk=?"
)
FLUSH_ORDER = (
    DELETE_ATTEMPTS, DELETE_TASKS, DELETE_JOB, DELETE_TASK_ATTEMPTS, DELETE_TASK, INSERT_JOB,
    UPDATE_JOB_SETTINGS, UPDATE_TASK_SETTINGS, REACTIVATE_TASK, ASSIGN_TASK, INSERT_ATTEMPT, START_TASK, START_ATTEMPT, END_ATTEMPT,
    TASK_OUTCOME, FAIL_TASK, SET_BLOCKED, UNBLOCK_TASK, UPDATE_JOB,
)
_ORDER = {sql: i for i, sql in enumerate(FLUSH_ORDER)}
_PER_JOB = frozenset({UPDATE_JOB, UPDATE_JOB_SETTINGS})
_DELETES = frozenset({DELETE_ATTEMPTS, DELETE_TASKS, DELETE_JOB, DELETE_TASK_ATTEMPTS, DELETE_TASK})

_TASK_COLUMNS = (
    "t.task_pk, j.id AS job_id, t.id, t.display_name, t.command_line, t.environment, "
    "t.max_wall_clock, t.max_retries, t.state, t.create_time, t.state_time, t.retry_count, "
    "t.requeue_count, t.attempt_id, t.node, t.start_time, t.end_time, t.exit_code, t.result, "
    "t.failure_category, t.failure_code, t.failure_message, t.files, t.deps_spec, t.exits, "
    "t.slots, t.priority, t.retention, t.attempt_number, t.revision, t.settings_time"
)


def _last_per_job(rows: list[Sequence[Any]]) -> list[Sequence[Any]]:
    """A job's row is written whole by every event that touches it: of a group's, only its
    last need reach the database (a burst of results would otherwise update one row
    thousands of times in one transaction). The job's pk is each row's last value."""
    return list({r[-1]: r for r in rows}.values())


_ADDED_COLUMNS = {
    "jobs": {"revision": "INTEGER NOT NULL DEFAULT 1", "update_time": "REAL"},
    "tasks": {"revision": "INTEGER NOT NULL DEFAULT 1", "settings_time": "REAL"},
}
"""Columns added since a table's first schema: a file from before gets them on open."""


async def _migrate(db: aiosqlite.Connection) -> None:
    for table, added in _ADDED_COLUMNS.items():
        have = {r["name"] for r in await db.execute_fetchall(f"PRAGMA table_info({table})")}
        for name, definition in added.items():
            if name not in have:
                await db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
    await db.commit()


def _rollback(w: sqlite3.Connection) -> None:
    """Roll back what is left of a failed transaction: on a full disk SQLite may already
    have rolled it back itself, and a second ROLLBACK would raise over the real error."""
    if w.in_transaction:
        w.execute("ROLLBACK")


def _failure(category: int | None, code: str | None, message: str | None) -> Failure | None:
    if not code:
        return None
    return Failure(Category(category or Category.SERVER_ERROR), code, message or "")


def _failure_cols(f: Failure | None) -> tuple[int | None, str | None, str | None]:
    return (int(f.category), f.code, f.message) if f else (None, None, None)


class Store:
    def __init__(self, writer: sqlite3.Connection, reader: aiosqlite.Connection) -> None:
        # Writes go through a plain sqlite3 connection owned by one thread: a whole batch is
        # one hop to that thread (aiosqlite would make every statement a hop of its own).
        # Reads stay on aiosqlite; WAL lets them run beside the writer.
        self._w = writer
        self._wthread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._r = reader
        self._pending: list[dict[str, list[Sequence[Any]]]] = []
        self._batch_done: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[None] | None = None
        self.next_job_pk = 1
        self.next_task_pk = 1
        self.path: Path | None = None
        self.disk_full = False
        """A commit is waiting for disk space: it is retried until it is durable, and new
        writes from clients are refused meanwhile (`check_writable`)."""

    @classmethod
    async def open(cls, path: Path) -> Store:
        reader = await open_db(path, SCHEMA)  # creates the schema
        await _migrate(reader)
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        writer.execute("PRAGMA synchronous=NORMAL")
        writer.execute("PRAGMA busy_timeout=5000")
        store = cls(writer, reader)
        store.path = path
        # AUTOINCREMENT's sequence remembers ids of deleted rows too: an id is never reused,
        # so nothing left behind by a deleted job can ever be mistaken for a new one's.
        store.next_job_pk = await store._next_pk("jobs", "job_pk")
        store.next_task_pk = await store._next_pk("tasks", "task_pk")
        return store

    async def start_epoch(self) -> int:
        """Count this start: the watch API's revisions begin a new epoch (see
        services/common/changes.py)."""
        return await asyncio.get_running_loop().run_in_executor(self._wthread, self._next_epoch)

    def _next_epoch(self) -> int:
        w = self._w
        w.execute("BEGIN IMMEDIATE")
        try:
            w.execute("INSERT INTO meta (key, value) VALUES ('watch_epoch', 1) "
                      "ON CONFLICT (key) DO UPDATE SET value = value + 1")
            (epoch,) = w.execute("SELECT value FROM meta WHERE key = 'watch_epoch'").fetchone()
        except BaseException:
            w.execute("ROLLBACK")
            raise
        w.execute("COMMIT")
        return int(epoch)

    async def task_ids(self, task_pks: Sequence[int]) -> dict[int, str]:
        """Ids of these tasks (those that still exist)."""
        out: dict[int, str] = {}
        for i in range(0, len(task_pks), 900):
            chunk = task_pks[i : i + 900]
            for r in await self._all(
                f"SELECT task_pk, id FROM tasks WHERE task_pk IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[r[0]] = r[1]
        return out

    async def _next_pk(self, table: str, column: str) -> int:
        async with self._r.execute(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), "
            f"coalesce((SELECT max({column}) FROM {table}), 0)) + 1"
        ) as cur:
            row = await cur.fetchone()
        assert row is not None  # an aggregate always returns a row
        return int(row[0])

    async def close(self) -> None:
        await self.commit()
        await self._r.close()
        await asyncio.get_running_loop().run_in_executor(self._wthread, self._w.close)
        self._wthread.shutdown()

    def _apply(self, ops: list[tuple[str, list[Sequence[Any]]]]) -> None:
        """One transaction, on the writer thread."""
        w = self._w
        w.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in ops:
                w.executemany(sql, rows)
            w.execute("COMMIT")
        except BaseException:
            _rollback(w)
            raise

    def check_writable(self) -> None:
        """Refuse a client's write while a commit waits for disk space: it could not be
        made durable, and each one accepted would grow what memory holds ahead of the file."""
        if self.disk_full:
            raise disk_full_error(self.path or "")

    # -- group commit -----------------------------------------------------------------------

    def queue(self, sql: str, *rows: Sequence[Any]) -> None:
        """Queue rows of one statement for the next transaction. Within a group statements run
        in the order of FLUSH_ORDER, not in the order queued: rows of one kind become one
        executemany. A delete queued after other statements starts a new group (a barrier), so
        it never runs before writes queued ahead of it."""
        if sql not in _ORDER:
            raise ValueError(f"statement not in FLUSH_ORDER: {sql[:60]}")
        group = self._pending[-1] if self._pending else None
        if group is None or (sql in _DELETES and any(k not in _DELETES for k in group)):
            group = {}
            self._pending.append(group)
        group.setdefault(sql, []).extend(rows)

    async def commit(self) -> None:
        """Return once everything queued so far is durable."""
        if self._pending:
            if self._batch_done is None:
                self._batch_done = asyncio.get_running_loop().create_future()
            done = self._batch_done
            if self._flusher is None:
                self._flusher = asyncio.create_task(self._flush_loop())
        elif self._inflight is not None:
            # Nothing new, but what was queued before may still be in the running transaction.
            done = self._inflight
        else:
            return
        await asyncio.shield(done)

    async def _flush_loop(self) -> None:
        try:
            while self._pending:
                groups, self._pending = self._pending, []
                ops = [(sql, _last_per_job(rows) if sql in _PER_JOB else rows)
                       for g in groups for sql, rows in sorted(g.items(), key=lambda kv: _ORDER[kv[0]])]
                done, self._batch_done = self._batch_done, None
                self._inflight = done
                try:
                    await self._apply_until_durable(ops)
                except asyncio.CancelledError:
                    raise  # the loop is shutting down: the writer thread finishes the batch
                except BaseException as e:
                    # The in-memory state is ahead of a database that refused it: the only safe
                    # way on is to stop and rebuild from the file on restart.
                    log.critical("commit failed; exiting to recover from the database", error=repr(e))
                    os._exit(70)
                if done is not None and not done.done():
                    done.set_result(None)
        finally:
            self._inflight = None
            self._flusher = None


    async def _apply_until_durable(self, ops: list[tuple[str, list[Sequence[Any]]]]) -> None:
        """Commit the batch, waiting out a full disk: memory already holds these rows and
        later plans are queued behind them, so the batch is retried as it is (it was rolled
        back whole) until it is durable, never dropped or overtaken."""
        loop = asyncio.get_running_loop()
        delay = 0.1
        while True:
            try:
                await loop.run_in_executor(self._wthread, self._apply, ops)
            except sqlite3.OperationalError as e:
                if not is_disk_full(e):
                    raise
                if not self.disk_full:
                    self.disk_full = True
                    log.error("disk full: commit waits for space; client writes refused",
                              path=str(self.path), error=str(e))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if self.disk_full:
                self.disk_full = False
                log.warning("disk space back: commit durable; writes accepted again",
                            path=str(self.path))
            return

    # -- jobs -------------------------------------------------------------------------------

    async def load_jobs(self) -> list[Job]:
        rows = await self._all("SELECT * FROM jobs ORDER BY job_pk")
        return [
            Job(
                pk=r["job_pk"], account=r["account"], id=r["id"], pool_id=r["pool_id"],
                priority=r["priority"],
                on_all_tasks_complete=OnAllTasksComplete(r["on_all_tasks_complete"]),
                state=JobState(r["state"]), create_time=r["create_time"],
                state_time=r["state_time"], display_name=r["display_name"],
                metadata=json.loads(r["metadata"]), terminate_reason=r["terminate_reason"],
                end_time=r["end_time"], prep=r["prep"], release=r["release"],
                schedule_id=r["schedule_id"], **json.loads(r["settings"]),
                revision=r["revision"],
                # A row from before updates existed: its state was all that could change.
                update_time=r["state_time"] if r["update_time"] is None else r["update_time"],
                counts=TaskCounts(r["n_active"], r["n_running"], r["n_completed"],
                                  r["n_succeeded"], r["n_failed"]),
            )
            for r in rows
        ]

    async def count_tasks(self) -> dict[int, TaskCounts]:
        """Task counts per job from the rows themselves: at start, so counts can never drift."""
        counts: dict[int, TaskCounts] = {}
        for job_pk, state, result, n in await self._all(
            "SELECT job_pk, state, result, count(*) FROM tasks GROUP BY job_pk, state, result"
        ):
            counts.setdefault(job_pk, TaskCounts()).move(
                None, TaskState(state), n=n, result=Result(result) if result else None)
        return counts

    # -- tasks: writes ----------------------------------------------------------------------

    async def insert_tasks(
        self, job_pk: int, tasks: Iterable[tuple[int, TaskDefinition]], now: float
    ) -> list[str]:
        """Insert a batch of tasks in a transaction of its own, committed when this returns.
        Returns [] on success; on a duplicate id nothing is inserted and the ids the job
        already has are returned. The UNIQUE index is the duplicate check: no query first."""
        active = int(TaskState.ACTIVE)
        tasks = list(tasks)
        bare = [
            (pk, job_pk, s.id, s.id.lower(), s.command_line, active, now, now)
            for pk, s in tasks if s.bare
        ]
        rows = [
            (pk, job_pk, s.id, s.id.lower(), s.display_name, s.command_line,
             json.dumps(s.environment) if s.environment else "{}", s.max_wall_clock_time,
             s.max_task_retry_count, s.files, active, now, now)
            for pk, s in tasks if not s.bare
        ]
        extras = [
            (json.dumps(s.dep_keys) if s.deps else None, s.deps_spec, s.exits, s.slots, s.priority,
             s.retention, pk)
            for pk, s in tasks if s.extra
        ]
        self.check_writable()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._wthread, self._insert_checked, job_pk, bare, rows, extras)
        except sqlite3.OperationalError as e:
            if is_disk_full(e):
                # Rolled back whole: nothing of the batch is anywhere, so refusing it is exact.
                raise disk_full_error(self.path or "") from None
            raise

    def _insert_checked(
        self, job_pk: int, bare: list[tuple[Any, ...]], rows: list[tuple[Any, ...]],
        extras: list[tuple[Any, ...]],
    ) -> list[str]:
        w = self._w
        w.execute("BEGIN IMMEDIATE")
        try:
            if bare:
                w.executemany(INSERT_BARE_TASK, bare)
            if rows:
                w.executemany(INSERT_TASK, rows)
            if extras:
                w.executemany(INSERT_TASK_EXTRAS, extras)
            w.execute("COMMIT")
        except sqlite3.IntegrityError:
            _rollback(w)
            ids = [r[3] for r in bare] + [r[3] for r in rows]
            taken: list[str] = []
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                cur = w.execute(
                    f"SELECT id FROM tasks WHERE job_pk=? AND id_lower IN ({','.join('?' * len(chunk))})",
                    (job_pk, *chunk),
                )
                taken.extend(r[0] for r in cur.fetchall())
            return taken or ["(one of this batch)"]
        except BaseException:
            _rollback(w)
            raise
        return []

    def write(self, rows: Iterable[Row]) -> None:
        """Queue a plan's rows for the next transaction."""
        q = self.queue
        for r in rows:
            match r:
                case AssignTask(task_pk, attempt_id, number, node, now):
                    q(ASSIGN_TASK, (int(TaskState.PREPARING), now, attempt_id, number, node, task_pk))
                    q(INSERT_ATTEMPT, (attempt_id, task_pk, number, node, now))
                case StartAttempt(task_pk, attempt_id, start_time, now):
                    q(START_TASK, (int(TaskState.RUNNING), now, start_time, task_pk, attempt_id))
                    q(START_ATTEMPT, (start_time, attempt_id))
                case EndAttempt(attempt_id, start_time, end_time, exit_code, failure):
                    q(END_ATTEMPT, (start_time, end_time, exit_code, *_failure_cols(failure),
                                    attempt_id))
                case TaskOutcome():
                    q(TASK_OUTCOME, (
                        int(r.state), r.time, int(r.result) if r.result else None, r.retry_count,
                        r.requeue_count, r.start_time, r.end_time, r.exit_code,
                        *_failure_cols(r.failure), r.task_pk))
                case UpdateJob(job_pk, state, reason, state_time, end_time, counts, revision,
                               update_time):
                    q(UPDATE_JOB, (int(state), reason, state_time, end_time, *counts, revision,
                                   update_time, job_pk))
                case UpdateTaskSettings(task_pk, spec, now):
                    q(UPDATE_TASK_SETTINGS, (spec.max_wall_clock_time, spec.max_task_retry_count,
                                             spec.retention, now, task_pk))
                case UpdateJobSettings(job):
                    q(UPDATE_JOB_SETTINGS, (job.priority, int(job.on_all_tasks_complete),
                                            json.dumps(job.metadata),
                                            json.dumps(job_settings(job)), job.pk))
                case FailTasks(task_pks, failure, now):
                    cols = _failure_cols(failure)
                    q(FAIL_TASK, *[(int(TaskState.COMPLETED), now, int(Result.FAILURE), now, *cols,
                                    pk, int(TaskState.ACTIVE)) for pk in task_pks])
                case SetBlocked(task_pk, reason):
                    q(SET_BLOCKED, (reason, task_pk))
                case Unblock(task_pk):
                    q(UNBLOCK_TASK, (task_pk,))
                case Reactivate(task_pk, now):
                    q(REACTIVATE_TASK, (int(TaskState.ACTIVE), now, task_pk))
                case DeleteTask(task_pk):
                    q(DELETE_TASK_ATTEMPTS, (task_pk,))
                    q(DELETE_TASK, (task_pk,))
                case InsertJob(job):
                    q(INSERT_JOB, (
                        job.pk, job.account, job.id, job.id.lower(), job.pool_id, job.priority,
                        int(job.on_all_tasks_complete), int(job.state), job.display_name,
                        json.dumps(job.metadata), job.create_time, job.state_time, job.prep,
                        job.release, job.schedule_id, json.dumps(job_settings(job)),
                        job.revision, job.update_time,
                    ))
                case DeleteJob(job_pk):
                    q(DELETE_ATTEMPTS, (job_pk,))
                    q(DELETE_TASKS, (job_pk,))
                    q(DELETE_JOB, (job_pk,))
                case _:
                    raise TypeError(f"not a row: {r!r}")

    # -- tasks: reads -----------------------------------------------------------------------

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        """A query run to its end in one hop to the reader's thread. A cursor left open
        across an await would hold its read transaction, and a concurrent read on the same
        connection would see that older snapshot: a task just added would not be found."""
        return list(await self._r.execute_fetchall(sql, args))

    async def active_tasks(self) -> list[ActiveRow]:
        """Every ACTIVE task, oldest first: the ready queues at start."""
        rows = await self._all(
            "SELECT job_pk, task_pk, retry_count, requeue_count, attempt_number, slots, priority, "
            "deps, unblocked FROM tasks WHERE state=? ORDER BY task_pk", (int(TaskState.ACTIVE),))
        return [ActiveRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                          tuple(json.loads(r[7])) if r[7] else (), bool(r[8])) for r in rows]

    async def dep_rows(self, job_pk: int, ids_lower: Sequence[str]) -> dict[str, DepRow]:
        """These tasks of a job, by lower-case id."""
        out: dict[str, DepRow] = {}
        for i in range(0, len(ids_lower), 900):
            chunk = list(ids_lower[i : i + 900])
            for r in await self._all(
                "SELECT id_lower, task_pk, id, state, result, exit_code, failure_code, exits "
                f"FROM tasks WHERE job_pk=? AND id_lower IN ({','.join('?' * len(chunk))})",
                (job_pk, *chunk),
            ):
                out[r[0]] = DepRow(r[1], r[2], TaskState(r[3]), Result(r[4]) if r[4] else None,
                                   r[5], r[6], r[7])
        return out

    async def live_attempts(self) -> list[LiveRow]:
        """Attempts of PREPARING/RUNNING tasks: the running set at start."""
        rows = await self._all(
            "SELECT t.task_pk, t.job_pk, t.attempt_id, t.attempt_number, t.node, t.start_time, "
            "t.retry_count, t.requeue_count, t.max_retries, a.assign_time, t.id, t.files, "
            "t.exits, t.slots, t.priority, t.max_wall_clock, t.retention, t.settings_time "
            "FROM tasks t JOIN attempts a ON a.attempt_id = t.attempt_id "
            "WHERE t.state IN (?, ?)",
            (int(TaskState.PREPARING), int(TaskState.RUNNING)),
        )
        return [LiveRow(*r) for r in rows]

    async def dispatch_info(self, task_pks: Sequence[int]) -> dict[int, TaskInfo]:
        """What an Assignment needs, for a batch of tasks about to be assigned."""
        out: dict[int, TaskInfo] = {}
        for i in range(0, len(task_pks), 900):
            chunk = task_pks[i : i + 900]
            sql = (
                "SELECT t.task_pk, j.id, t.id, t.command_line, t.environment, "
                "t.max_wall_clock, t.max_retries, t.files, t.exits, t.priority, t.retention, "
                "t.state_time FROM tasks t JOIN jobs j ON j.job_pk = t.job_pk "
                f"WHERE t.task_pk IN ({','.join('?' * len(chunk))})"
            )
            for r in await self._all(sql, chunk):
                out[r[0]] = TaskInfo(*r[1:])
        return out

    async def job_nodes(self, job_pks: Sequence[int]) -> list[tuple[int, str]]:
        """(job, node name) of every node that was given a task of these jobs."""
        out: list[tuple[int, str]] = []
        for i in range(0, len(job_pks), 900):
            chunk = job_pks[i : i + 900]
            out += [(r[0], r[1]) for r in await self._all(
                "SELECT DISTINCT t.job_pk, a.node FROM attempts a JOIN tasks t "
                f"ON t.task_pk = a.task_pk WHERE t.job_pk IN ({','.join('?' * len(chunk))})",
                chunk,
            )]
        return out

    async def ended_attempts(self, attempt_ids: Sequence[str]) -> dict[str, EndedAttempt]:
        """The ended attempts among these (a late log upload asks for them)."""
        out: dict[str, EndedAttempt] = {}
        for i in range(0, len(attempt_ids), 900):
            chunk = attempt_ids[i : i + 900]
            for r in await self._all(
                "SELECT a.attempt_id, t.job_pk, t.id, a.node FROM attempts a JOIN tasks t "
                "ON t.task_pk = a.task_pk WHERE a.end_time IS NOT NULL "
                f"AND a.attempt_id IN ({','.join('?' * len(chunk))})", chunk,
            ):
                out[r[0]] = EndedAttempt(r[1], r[2], r[3])
        return out

    async def get_task(self, job_pk: int, task_id: str) -> TaskRecord | None:
        found = await self._all(
            f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN jobs j ON j.job_pk = t.job_pk "
            "WHERE t.job_pk=? AND t.id_lower=?",
            (job_pk, task_id.lower()),
        )
        if not found:
            return None
        row = found[0]
        attempts = tuple(
            AttemptRecord(
                a["attempt_id"], a["number"], a["node"], a["start_time"], a["end_time"],
                a["exit_code"],
                _failure(a["failure_category"], a["failure_code"], a["failure_message"]),
            )
            # The task's row and its attempts are two reads: an attempt assigned between
            # them is newer than the row, not a previous one.
            for a in await self._all(
                "SELECT * FROM attempts WHERE task_pk=? AND number <= ? ORDER BY number",
                (row["task_pk"], row["attempt_number"]))
        )
        return _task_record(row, attempts)

    async def list_tasks(
        self, job_pk: int, where: Filter, after_id: str | None, limit: int
    ) -> list[TaskRecord]:
        """A page of a job's tasks in id order (ignoring case) after `after_id`, those that
        match `where` (task_filter's conditions: AND-groups of OR-ed terms)."""
        clauses: list[str] = ["t.job_pk=?"]
        args: list[object] = [job_pk]
        for group in where:
            sql, values = _filter_group(group)
            clauses.append(sql)
            args.extend(values)
        if after_id is not None:
            clauses.append("t.id_lower > ?")
            args.append(after_id.lower())
        sql = (
            f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN jobs j ON j.job_pk = t.job_pk "
            f"WHERE {' AND '.join(clauses)} ORDER BY t.id_lower LIMIT ?"
        )
        return [_task_record(r, ()) for r in await self._all(sql, (*args, limit))]


_FILTER_COLUMNS = {"state": "t.state", "result": "t.result", "exit_code": "t.exit_code"}
# A node named by id is in the job's pool. lower(): names and ids are unique ignoring case.
_NODE_BY_NAME = "lower(t.node)"
_NODE_ID_NAME = "lower('pools/' || j.pool_id || '/nodes/' || ?)"


def _filter_group(group: list[Term]) -> tuple[str, list[object]]:
    """One OR-group of a task filter as SQL. A NULL column (no result, node or exit code
    yet) makes its comparison false, `!=` included, which is what task_filter promises."""
    if all(t.field == "state" and t.op == "=" for t in group):
        # As IN, so the (job_pk, state, id_lower) index serves it.
        states = sorted({int(t.value) for t in group})
        return f"t.state IN ({','.join('?' * len(states))})", list(states)
    parts: list[str] = []
    values: list[object] = []
    for t in group:
        if t.field == "node":
            ref: NodeRef = t.value
            parts.append(f"{_NODE_BY_NAME} {t.op} " + ("?" if ref.is_name else _NODE_ID_NAME))
            values.append(ref.value)
        else:
            parts.append(f"{_FILTER_COLUMNS[t.field]} {t.op} ?")
            values.append(int(t.value))
    return "(" + " OR ".join(parts) + ")", values


JOB_SETTINGS = ("uses_deps", "max_parallel", "max_wall_clock", "default_retries",
                "exit_job_actions", "pack", "pool_slots")


def job_settings(job: Job) -> dict[str, Any]:
    """A job's scheduling settings, kept as one JSON column: read only at start."""
    return {k: getattr(job, k) for k in JOB_SETTINGS}


_STATES = {int(s): s for s in TaskState}
_RESULTS = {int(r): r for r in Result}
"""Enum lookups by value without the Enum call's cost (a thousand a page)."""


def _task_record(r: aiosqlite.Row, attempts: tuple[AttemptRecord, ...]) -> TaskRecord:
    """A row of _TASK_COLUMNS, by position: a page of ListTasks builds a thousand of these,
    and a lookup by name scans the column names each time."""
    (task_pk, job_id, id_, display, command, env, wall, retries, state, create_time,
     state_time, retry_count, requeue_count, attempt_id, node, start_time, end_time, exit_code,
     result, f_category, f_code, f_message, files, deps_spec, exits, slots, priority,
     retention, _, revision, settings_time) = r
    return TaskRecord(
        job_id=job_id,
        spec=TaskDefinition(
            id=id_, command_line=command, environment=json.loads(env) if env != "{}" else {},
            max_wall_clock_time=wall, max_task_retry_count=retries, display_name=display,
            files=files, exits=exits, slots=slots, priority=priority, retention=retention,
            deps_spec=deps_spec,
        ),
        pk=task_pk, state=_STATES[state], create_time=create_time, state_time=state_time,
        retry_count=retry_count, requeue_count=requeue_count, attempt_id=attempt_id, node=node,
        start_time=start_time, end_time=end_time, exit_code=exit_code,
        result=_RESULTS[result] if result else None,
        failure=_failure(f_category, f_code, f_message) if f_code else None,
        attempts=attempts, revision=revision, settings_time=settings_time,
    )
