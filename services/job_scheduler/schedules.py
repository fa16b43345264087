"""Job schedules as the scheduler sees them, and the pure rules of when they create jobs.

No I/O: times are seconds since the epoch passed in by the caller. Cron expressions are
evaluated with croniter (pure Python), in UTC.

The rules, after Azure Batch's job schedules (with its default, infinite start window):
- Run times are a grid: `anchor + k * interval` (the anchor is `do_not_run_until`, else the
  creation time), or the cron expression's matches at or after the anchor, or — with neither —
  the anchor alone (one job).
- At most one active job per schedule. A run that comes due while the schedule's job has not
  completed waits; the job is created as soon as the previous one completes ("the Batch service
  will not create the new job until the previous job finishes"). Runs that fell due while it
  waited are not made up: they collapse into that one job, and the next run time is the grid's
  next point after it. A disabled schedule and a stopped service wait the same way: a run missed
  while disabled, or while the service was down, fires once, not once per missed interval.
- No job is created after `do_not_run_after`. The schedule completes once no run is left (past
  `do_not_run_after`, or its one job created) and its last job has completed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, IntEnum

from croniter import CroniterBadDateError, CroniterError, croniter


class ScheduleState(IntEnum):
    # Values match shoal.v1.JobSchedule.State.
    ACTIVE = 1
    DISABLED = 2
    COMPLETED = 3


class CronError(ValueError):
    """A cron expression that is malformed or never matches; the message says why."""


CRON_FIELDS = 5


def check_cron(expr: str) -> str:
    """Return `expr` if it is a 5-field cron expression that matches some time; CronError if not."""
    fields = expr.split()
    if len(fields) != CRON_FIELDS:
        raise CronError(
            f"{expr!r} has {len(fields)} fields; use 5: minute hour day-of-month month day-of-week"
        )
    try:
        croniter(expr, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise CronError(f"{expr!r} never matches a date") from None
    except (CroniterError, ValueError, KeyError) as e:
        raise CronError(f"{expr!r} is not a valid cron expression: {e}") from None
    return expr


def _cron_after(expr: str, t: float) -> float:
    """The first match of `expr` strictly after `t`."""
    start = datetime.fromtimestamp(t, UTC)
    return float(croniter(expr, start).get_next(datetime).timestamp())


@dataclass(frozen=True)
class Rule:
    """When a schedule creates jobs. At most one of `interval` and `cron`."""

    not_before: float | None = None
    """do_not_run_until: no job before this time."""
    not_after: float | None = None
    """do_not_run_after: no job after this time."""
    interval: float | None = None
    """Seconds between run times."""
    cron: str = ""
    """A 5-field cron expression, UTC."""

    @property
    def recurs(self) -> bool:
        return self.interval is not None or bool(self.cron)


def anchor(rule: Rule, create_time: float) -> float:
    """Where the schedule's run times start."""
    return rule.not_before if rule.not_before is not None else create_time


def _within(rule: Rule, t: float | None) -> float | None:
    if t is None or (rule.not_after is not None and t > rule.not_after):
        return None
    return t


def first_run(rule: Rule, create_time: float) -> float | None:
    """The first run time of a new schedule; None when it will never run."""
    start = anchor(rule, create_time)
    if rule.cron:
        # A match exactly at the anchor counts: "0 3 * * *" from 03:00 runs at 03:00.
        return _within(rule, _cron_after(rule.cron, start - 1e-3))
    return _within(rule, start)


def run_after(rule: Rule, create_time: float, t: float) -> float | None:
    """The first run time strictly after `t` (a job was created at `t`); None when none is left."""
    if rule.interval is not None:
        start = anchor(rule, create_time)
        k = max(0, math.floor((t - start) / rule.interval) + 1)
        nxt = start + k * rule.interval
        if nxt <= t:  # float rounding at a grid point
            nxt += rule.interval
        return _within(rule, nxt)
    if rule.cron:
        return _within(rule, _cron_after(rule.cron, t))
    return None


@dataclass
class JobSchedule:
    account: str
    id: str
    rule: Rule
    spec: bytes
    """Serialized shoal.v1.JobSpecification: the job and tasks each run creates."""
    state: ScheduleState
    create_time: float
    state_time: float
    next_run: float | None
    """When the next job is due (it may be past: it waits for the previous job); None: no more."""
    display_name: str = ""
    jobs_created: int = 0
    job_number: int = 0
    """The n of the most recent job id `{id}-{n}`; the next job gets a larger one."""
    recent_job: str = ""
    """Id of the most recent job ('' before the first)."""
    pending: bool = False
    """The recent job's creation (job, then its tasks) is not known to have finished: after a
    crash it is resumed, so a run is never half done nor done twice."""
    deleting: bool = False
    """Delete was asked for; its jobs are being deleted. Hidden from clients."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.account, self.id.lower())


class Action(Enum):
    NOTHING = "nothing"
    CREATE_JOB = "create_job"
    COMPLETE = "complete"


def decide(s: JobSchedule, now: float, job_active: bool) -> Action:
    """What a schedule does at `now`, given whether its most recent job is still active
    (created and not yet COMPLETED)."""
    if s.state == ScheduleState.COMPLETED or s.deleting or job_active:
        return Action.NOTHING
    past_end = s.rule.not_after is not None and now > s.rule.not_after
    if s.next_run is None or past_end:
        return Action.COMPLETE
    if s.state == ScheduleState.DISABLED or s.next_run > now:
        return Action.NOTHING
    return Action.CREATE_JOB


def job_created(s: JobSchedule, now: float, job_id: str, number: int) -> None:
    """Record that the run due at `s.next_run` creates job `job_id` now."""
    s.recent_job = job_id
    s.job_number = number
    s.jobs_created += 1
    s.pending = True
    s.next_run = run_after(s.rule, s.create_time, now)


def set_state(s: JobSchedule, state: ScheduleState, now: float) -> None:
    if s.state != state:
        s.state = state
        s.state_time = now
    if state == ScheduleState.COMPLETED:
        s.next_run = None


def job_id(schedule_id: str, number: int) -> str:
    return f"{schedule_id}-{number}"
