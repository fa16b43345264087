"""The job schedules' SQLite file: SQL only, model objects out.

A file of its own (`job-scheduler-schedules.db`) beside the scheduler's: the scheduler's
store group-commits the hot path with long write transactions of its own, which a second
writer on the same file would have to queue behind (or make wait), and the two tables share
no transaction anyway (a job and the schedule row that recorded it are written by different
connections). Schedules change a few times a minute; every write commits at once.
"""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from services.common.db import open_db
from services.job_scheduler.schedules import JobSchedule, Rule, ScheduleState

SCHEMA = """
CREATE TABLE IF NOT EXISTS job_schedules (
  account TEXT NOT NULL,
  id TEXT NOT NULL,
  id_lower TEXT NOT NULL,
  display_name TEXT NOT NULL DEFAULT '',
  not_before REAL,
  not_after REAL,
  interval REAL,
  cron TEXT NOT NULL DEFAULT '',
  spec BLOB NOT NULL,
  state INTEGER NOT NULL,
  create_time REAL NOT NULL,
  state_time REAL NOT NULL,
  next_run REAL,
  jobs_created INTEGER NOT NULL DEFAULT 0,
  job_number INTEGER NOT NULL DEFAULT 0,
  recent_job TEXT NOT NULL DEFAULT '',
  pending INTEGER NOT NULL DEFAULT 0,
  deleting INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (account, id_lower)
);
"""

_MUTABLE = ("state", "state_time", "next_run", "jobs_created", "job_number", "recent_job",
            "pending", "deleting")


class ScheduleStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: Path) -> ScheduleStore:
        return cls(await open_db(path, SCHEMA))

    async def close(self) -> None:
        await self.db.close()

    async def load(self) -> list[JobSchedule]:
        async with self.db.execute("SELECT * FROM job_schedules ORDER BY account, id") as cur:
            rows = await cur.fetchall()
        return [_schedule(r) for r in rows]

    async def insert(self, s: JobSchedule) -> None:
        await self.db.execute(
            "INSERT INTO job_schedules (account, id, id_lower, display_name, not_before, "
            "not_after, interval, cron, spec, state, create_time, state_time, next_run, "
            "jobs_created, job_number, recent_job, pending, deleting) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (s.account, s.id, s.id.lower(), s.display_name, s.rule.not_before, s.rule.not_after,
             s.rule.interval, s.rule.cron, s.spec, int(s.state), s.create_time, s.state_time,
             s.next_run, s.jobs_created, s.job_number, s.recent_job, int(s.pending),
             int(s.deleting)),
        )
        await self.db.commit()

    async def save(self, s: JobSchedule) -> None:
        """Write what changes over a schedule's life."""
        await self.db.execute(
            f"UPDATE job_schedules SET {', '.join(f'{c} = ?' for c in _MUTABLE)} "
            "WHERE account = ? AND id_lower = ?",
            (int(s.state), s.state_time, s.next_run, s.jobs_created, s.job_number, s.recent_job,
             int(s.pending), int(s.deleting), s.account, s.id.lower()),
        )
        await self.db.commit()

    async def delete(self, s: JobSchedule) -> None:
        await self.db.execute(
            "DELETE FROM job_schedules WHERE account = ? AND id_lower = ?",
            (s.account, s.id.lower()),
        )
        await self.db.commit()


def _schedule(r: aiosqlite.Row) -> JobSchedule:
    return JobSchedule(
        account=r["account"], id=r["id"],
        rule=Rule(r["not_before"], r["not_after"], r["interval"], r["cron"]),
        spec=bytes(r["spec"]), state=ScheduleState(r["state"]), create_time=r["create_time"],
        state_time=r["state_time"], next_run=r["next_run"], display_name=r["display_name"],
        jobs_created=r["jobs_created"], job_number=r["job_number"], recent_job=r["recent_job"],
        pending=bool(r["pending"]), deleting=bool(r["deleting"]),
    )
