"""Job schedules' pure rules, rule by rule: run times (interval, cron, do_not_run_until,
do_not_run_after), at most one active job, runs missed while waiting, and the validation of a
CreateJobSchedule request with the field it names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.errors import ShoalError
from services.job_scheduler.schedule_convert import create_request
from services.job_scheduler.schedules import (
    Action,
    CronError,
    JobSchedule,
    Rule,
    ScheduleState,
    check_cron,
    decide,
    first_run,
    job_created,
    run_after,
)
from shoal.v1 import job_pb2, job_schedule_pb2, task_pb2

T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC).timestamp()  # a Monday, 10:00 UTC
MIN = 60.0


def at(hour: int, minute: int = 0, day: int = 7) -> float:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC).timestamp()


def schedule(rule: Rule, created: float = T0, **kw: object) -> JobSchedule:
    s = JobSchedule(account="acct", id="s", rule=rule, spec=b"", state=ScheduleState.ACTIVE,
                    create_time=created, state_time=created, next_run=first_run(rule, created))
    for k, v in kw.items():
        setattr(s, k, v)
    return s


# -- run times ----------------------------------------------------------------------------


def test_interval_runs_at_once_then_every_interval() -> None:
    rule = Rule(interval=10 * MIN)
    assert first_run(rule, T0) == T0
    assert run_after(rule, T0, T0) == T0 + 10 * MIN
    assert run_after(rule, T0, T0 + 10 * MIN) == T0 + 20 * MIN


def test_interval_counts_from_do_not_run_until() -> None:
    rule = Rule(not_before=at(12), interval=30 * MIN)
    assert first_run(rule, T0) == at(12)
    assert run_after(rule, T0, at(12)) == at(12, 30)


def test_a_late_job_keeps_the_grid() -> None:
    # The run due at 10:10 waited for the previous job until 10:17: the next is at 10:20,
    # not at 10:27.
    rule = Rule(interval=10 * MIN)
    assert run_after(rule, T0, at(10, 17)) == at(10, 20)


def test_cron_runs_at_its_matches_in_utc() -> None:
    rule = Rule(cron="*/15 * * * *")
    assert first_run(rule, at(10, 7)) == at(10, 15)
    assert run_after(rule, at(10, 7), at(10, 15)) == at(10, 30)


def test_cron_match_exactly_at_do_not_run_until_counts() -> None:
    rule = Rule(not_before=at(3, day=8), cron="0 3 * * *")
    assert first_run(rule, T0) == at(3, day=8)


def test_cron_weekdays() -> None:
    rule = Rule(cron="0 3 * * mon-fri")
    friday = at(3, day=11)
    assert run_after(rule, T0, friday) == at(3, day=14)  # Monday, after the weekend


def test_no_recurrence_runs_once() -> None:
    rule = Rule(not_before=at(12))
    assert first_run(rule, T0) == at(12)
    assert run_after(rule, T0, at(12)) is None
    assert first_run(Rule(), T0) == T0


def test_no_run_after_do_not_run_after() -> None:
    rule = Rule(not_after=at(10, 25), interval=10 * MIN)
    assert run_after(rule, T0, at(10, 10)) == at(10, 20)
    assert run_after(rule, T0, at(10, 20)) is None
    assert first_run(Rule(not_before=at(12), not_after=at(11, 59)), T0) is None


# -- what a schedule does at a moment -----------------------------------------------------


def test_a_due_schedule_creates_a_job() -> None:
    s = schedule(Rule(interval=10 * MIN))
    assert decide(s, T0, job_active=False) == Action.CREATE_JOB
    job_created(s, T0, "s-1", 1)
    assert (s.recent_job, s.jobs_created, s.next_run) == ("s-1", 1, T0 + 10 * MIN)
    assert decide(s, T0 + 1, job_active=False) == Action.NOTHING


def test_a_due_run_waits_while_the_previous_job_is_active() -> None:
    s = schedule(Rule(interval=10 * MIN))
    job_created(s, T0, "s-1", 1)
    assert decide(s, at(10, 10), job_active=True) == Action.NOTHING
    assert decide(s, at(10, 35), job_active=True) == Action.NOTHING
    # It completed at 10:37: one job now, for all the runs it held up.
    assert decide(s, at(10, 37), job_active=False) == Action.CREATE_JOB
    job_created(s, at(10, 37), "s-2", 2)
    assert s.next_run == at(10, 40)
    assert decide(s, at(10, 38), job_active=False) == Action.NOTHING


def test_runs_missed_while_down_fire_once() -> None:
    s = schedule(Rule(interval=10 * MIN))
    job_created(s, T0, "s-1", 1)
    back = at(15, 3)  # five hours later: thirty runs were missed
    assert decide(s, back, job_active=False) == Action.CREATE_JOB
    job_created(s, back, "s-2", 2)
    assert s.next_run == at(15, 10)
    assert decide(s, back + 1, job_active=False) == Action.NOTHING


def test_disabled_creates_nothing_and_fires_once_when_enabled() -> None:
    s = schedule(Rule(interval=10 * MIN), state=ScheduleState.DISABLED)
    assert decide(s, at(11), job_active=False) == Action.NOTHING
    s.state = ScheduleState.ACTIVE
    assert decide(s, at(11), job_active=False) == Action.CREATE_JOB


def test_one_shot_completes_when_its_job_completes() -> None:
    s = schedule(Rule())
    assert decide(s, T0, job_active=False) == Action.CREATE_JOB
    job_created(s, T0, "s-1", 1)
    assert s.next_run is None
    assert decide(s, T0 + 1, job_active=True) == Action.NOTHING
    assert decide(s, T0 + 2, job_active=False) == Action.COMPLETE


def test_past_do_not_run_after_completes_once_the_job_is_done() -> None:
    s = schedule(Rule(not_after=at(10, 25), interval=10 * MIN))
    job_created(s, at(10, 20), "s-3", 3)
    assert s.next_run is None
    assert decide(s, at(10, 30), job_active=True) == Action.NOTHING
    assert decide(s, at(10, 31), job_active=False) == Action.COMPLETE


def test_a_run_held_up_past_do_not_run_after_is_not_made() -> None:
    s = schedule(Rule(not_after=at(10, 25), interval=10 * MIN))
    job_created(s, T0, "s-1", 1)
    assert s.next_run == at(10, 10)
    assert decide(s, at(10, 26), job_active=False) == Action.COMPLETE


def test_completed_and_deleting_schedules_do_nothing() -> None:
    assert decide(schedule(Rule(), state=ScheduleState.COMPLETED), T0, False) == Action.NOTHING
    assert decide(schedule(Rule(), deleting=True), T0, False) == Action.NOTHING


# -- cron expressions ---------------------------------------------------------------------


@pytest.mark.parametrize("expr, why", [
    ("* * * *", "has 4 fields"),
    ("0 0 * * * *", "has 6 fields"),
    ("@daily", "has 1 fields"),
    ("61 * * * *", "not a valid cron expression"),
    ("0 0 31 2 *", "never matches"),
    ("a b c d e", "not a valid cron expression"),
])
def test_bad_cron_expressions_are_refused(expr: str, why: str) -> None:
    with pytest.raises(CronError, match=why):
        check_cron(expr)


# -- the request --------------------------------------------------------------------------


def request(sid: str = "nightly", interval: float | None = 600, cron: str = "",
            tasks: list[task_pb2.CreateTaskRequest] | None = None, **job: object
            ) -> job_schedule_pb2.CreateJobScheduleRequest:
    sched = job_schedule_pb2.Schedule(cron=cron)
    if interval is not None:
        sched.recurrence_interval.CopyFrom(Duration(seconds=int(interval)))
    job.setdefault("pool", "pools/p")
    return job_schedule_pb2.CreateJobScheduleRequest(
        job_schedule_id=sid,
        job_schedule=job_schedule_pb2.JobSchedule(
            schedule=sched,
            job_specification=job_schedule_pb2.JobSpecification(
                job=job_pb2.Job(**job),  # type: ignore[arg-type]
                tasks=tasks if tasks is not None
                else [task_pb2.CreateTaskRequest(task_id="t", task=task_pb2.Task(command_line="echo"))],
            ),
        ),
    )


def refused(req: job_schedule_pb2.CreateJobScheduleRequest) -> ShoalError:
    with pytest.raises(ShoalError) as e:
        create_request(req, MIN)
    return e.value


def test_a_valid_request() -> None:
    sid, _, rule, spec = create_request(request(), MIN)
    assert (sid, rule.interval, rule.cron) == ("nightly", 600.0, "")
    assert job_schedule_pb2.JobSpecification.FromString(spec).tasks[0].task_id == "t"


def test_the_template_drops_output_only_fields() -> None:
    req = request(state=job_pb2.Job.COMPLETED, name="jobs/x")
    _, _, _, spec = create_request(req, MIN)
    job = job_schedule_pb2.JobSpecification.FromString(spec).job
    assert (job.name, job.state, job.pool) == ("", 0, "pools/p")


@pytest.mark.parametrize("req, field", [
    (request(sid="x" * 57), "job_schedule_id"),
    (request(sid="bad.id"), "job_schedule_id"),
    (request(interval=30), "job_schedule.schedule.recurrence_interval"),
    (request(interval=None, cron="61 * * * *"), "job_schedule.schedule.cron"),
    (request(interval=600, cron="0 3 * * *"), "job_schedule.schedule"),
    (request(pool=""), "job_schedule.job_specification.job.pool"),
    (request(priority=5000), "job_schedule.job_specification.job.priority"),
    (request(tasks=[task_pb2.CreateTaskRequest(task_id="t", task=task_pb2.Task())]),
     "job_schedule.job_specification.tasks[0].task.command_line"),
    (request(tasks=[task_pb2.CreateTaskRequest(task_id="t", task=task_pb2.Task(command_line="a")),
                    task_pb2.CreateTaskRequest(task_id="T", task=task_pb2.Task(command_line="b"))]),
     "job_schedule.job_specification.tasks[1].task_id"),
    (request(tasks=[task_pb2.CreateTaskRequest(task_id="t", task=task_pb2.Task(
        command_line="a", depends_on=task_pb2.TaskDependencies(task_ids=["nope"])))],
        uses_task_dependencies=True),
     "job_schedule.job_specification.tasks[0].task.depends_on"),
])
def test_bad_requests_name_the_field(req: job_schedule_pb2.CreateJobScheduleRequest,
                                     field: str) -> None:
    e = refused(req)
    assert e.field == field
    assert e.message.startswith(f"{field}: ")


def test_do_not_run_after_must_follow_do_not_run_until() -> None:
    req = request()
    req.job_schedule.schedule.do_not_run_until.CopyFrom(Timestamp(seconds=2_000_000_000))
    req.job_schedule.schedule.do_not_run_after.CopyFrom(Timestamp(seconds=1_999_999_999))
    assert refused(req).field == "job_schedule.schedule.do_not_run_after"


def test_the_job_specification_is_required() -> None:
    req = job_schedule_pb2.CreateJobScheduleRequest(job_schedule_id="s")
    assert refused(req).field == "job_schedule.job_specification"
