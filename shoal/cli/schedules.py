"""`shoal schedule ...`: job schedules."""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from shoal.cli.common import (
    CliState,
    Group,
    Paging,
    confirm,
    enum_name,
    err,
    last,
    list_options,
    output_option,
    pass_state,
    render_list,
    render_one,
    when,
    yes_option,
)
from shoal.cli.tasks import Duration, seconds
from shoal.client import TaskSpec
from shoal.task_options import parse_duration
from shoal.v1 import job_pb2, job_schedule_pb2

JobSchedule = job_schedule_pb2.JobSchedule


class Moment(click.ParamType):
    """A time: ISO 8601 (`2030-01-07T03:00:00Z`; without an offset it is local time), or
    `+DURATION` from now (`+10m`)."""

    name = "time"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if text.startswith("+"):
                return datetime.now().astimezone() + timedelta(seconds=parse_duration(text[1:]))
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is not a time: give ISO 8601 (2030-01-07T03:00:00Z) or "
                      "+DURATION (+10m)", param, ctx)
        return moment if moment.tzinfo is not None else moment.astimezone()


def _task(value: str) -> TaskSpec:
    task_id, sep, command = value.partition("=")
    if not sep or not task_id or not command.strip():
        raise click.BadParameter(f"{value!r} is not ID=COMMAND", param_hint="--task")
    return TaskSpec(task_id, command)


def _recurrence(s: job_schedule_pb2.Schedule) -> str:
    if s.HasField("recurrence_interval"):
        return f"every {seconds(s.recurrence_interval)}"
    if s.cron:
        return f"cron {s.cron} (UTC)"
    return "once"


def _row(s: job_schedule_pb2.JobSchedule) -> list[str]:
    return [
        last(s.name),
        enum_name(JobSchedule.State, s.state),
        _recurrence(s.schedule),
        when(s.next_run_time),
        last(s.recent_job),
        str(s.jobs_created),
        when(s.create_time),
    ]


def show_schedule(s: job_schedule_pb2.JobSchedule, output: str) -> None:
    spec = s.job_specification
    render_one(s, output, [
        ("id", last(s.name)),
        ("name", s.name),
        ("display name", s.display_name or "-"),
        ("state", enum_name(JobSchedule.State, s.state)),
        ("runs", _recurrence(s.schedule)),
        ("not before", when(s.schedule.do_not_run_until)),
        ("not after", when(s.schedule.do_not_run_after)),
        ("next run", when(s.next_run_time)),
        ("recent job", last(s.recent_job)),
        ("jobs created", str(s.jobs_created)),
        ("pool", last(spec.job.pool)),
        ("when all tasks complete",
         enum_name(job_pb2.OnAllTasksComplete, spec.job.on_all_tasks_complete)),
        ("tasks", ", ".join(t.task_id for t in spec.tasks) or "-"),
        ("created", when(s.create_time)),
        ("state since", when(s.state_transition_time)),
    ])


@click.group("schedule", cls=Group)
def schedule() -> None:
    """Job schedules: a job made on a recurrence or a cron expression.

    At most one job of a schedule is active: a run that comes due while the previous job
    has not completed waits for it. Use --terminate-on-complete so that each job completes
    when its tasks have.
    """


@schedule.command("create")
@click.argument("schedule_id")
@click.option("--pool", "pool_id", required=True, help="Pool that runs each job's tasks.")
@click.option("--every", type=Duration(positive=True), metavar="DURATION",
              help="A job every this long (10m, 1h, 1d); at least 1 minute.")
@click.option("--cron", default="", metavar="EXPR",
              help='Or: a job at each match of a 5-field cron expression, UTC ("0 3 * * *").')
@click.option("--not-before", type=Moment(), help="No job before this time (+10m, ISO 8601).")
@click.option("--not-after", type=Moment(), help="No job after this time; then it completes.")
@click.option("--task", "tasks", multiple=True, metavar="ID=COMMAND",
              help="A task of each job; repeatable.")
@click.option("--terminate-on-complete", is_flag=True,
              help="Each job completes once all its tasks have completed.")
@click.option("--priority", type=click.IntRange(-1000, 1000), default=0, show_default=True,
              help="Priority of each job.")
@click.option("--display-name", default="", help="Free text shown to people.")
@output_option
@pass_state
def schedule_create(
    state: CliState,
    schedule_id: str,
    pool_id: str,
    every: float | None,
    cron: str,
    not_before: datetime | None,
    not_after: datetime | None,
    tasks: tuple[str, ...],
    terminate_on_complete: bool,
    priority: int,
    display_name: str,
    output: str,
) -> None:
    """Create a schedule. With neither --every nor --cron it makes one job (at --not-before,
    or now)."""
    if every is not None and cron:
        raise click.UsageError("give --every or --cron, not both")
    specs = [_task(t) for t in tasks]
    s = state.client().create_job_schedule(
        schedule_id,
        pool_id=pool_id,
        every=every,
        cron=cron,
        do_not_run_until=not_before,
        do_not_run_after=not_after,
        tasks=specs,
        priority=priority,
        on_all_tasks_complete="terminate_job" if terminate_on_complete else "no_action",
        display_name=display_name,
    )
    show_schedule(s, output)


@schedule.command("list")
@list_options
@output_option
@pass_state
def schedule_list(state: CliState, paging: Paging, output: str) -> None:
    """List job schedules, by id."""
    render_list(
        paging.take(state.client().list_job_schedules()),
        output,
        ["ID", "STATE", "RUNS", "NEXT RUN", "RECENT JOB", "JOBS", "CREATED"],
        _row,
        "no job schedules",
    )


@schedule.command("show")
@click.argument("schedule_id")
@output_option
@pass_state
def schedule_show(state: CliState, schedule_id: str, output: str) -> None:
    """Show one job schedule."""
    show_schedule(state.client().get_job_schedule(schedule_id), output)


@schedule.command("disable")
@click.argument("schedule_id")
@output_option
@pass_state
def schedule_disable(state: CliState, schedule_id: str, output: str) -> None:
    """Make no more jobs until enabled; the current job goes on."""
    show_schedule(state.client().disable_job_schedule(schedule_id), output)


@schedule.command("enable")
@click.argument("schedule_id")
@output_option
@pass_state
def schedule_enable(state: CliState, schedule_id: str, output: str) -> None:
    """Make jobs again; a run that came due while disabled is made at once."""
    show_schedule(state.client().enable_job_schedule(schedule_id), output)


@schedule.command("terminate")
@click.argument("schedule_id")
@output_option
@pass_state
def schedule_terminate(state: CliState, schedule_id: str, output: str) -> None:
    """Complete the schedule and terminate its active job."""
    show_schedule(state.client().terminate_job_schedule(schedule_id), output)


@schedule.command("delete")
@click.argument("schedule_id")
@yes_option
@pass_state
def schedule_delete(state: CliState, schedule_id: str, yes: bool) -> None:
    """Delete a schedule and every job it made."""
    confirm(f"job schedule {schedule_id} and every job it made", yes)
    state.client().delete_job_schedule(schedule_id)
    err.print(f"deleted job schedule {schedule_id}", markup=False)
