"""Protobuf <-> model for job schedules, with request validation (pure).

The template's job and tasks are checked by the very functions CreateJob and CreateTask use
(services.job_scheduler.convert), with their field names nested under
`job_schedule.job_specification.`, so a template that is accepted makes jobs that are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from services.common.errors import ShoalError, invalid
from services.common.ids import check_display_name, check_id
from services.common.timeutil import from_duration, from_timestamp, to_duration, to_timestamp
from services.job_scheduler import convert
from services.job_scheduler.dependencies import find_cycle
from services.job_scheduler.model import TaskDefinition
from services.job_scheduler.schedules import CronError, JobSchedule, Rule, ScheduleState, check_cron
from shoal.v1 import job_pb2, job_schedule_pb2

MAX_SCHEDULE_ID = 56
"""So that `{id}-{n}` is still a valid job id (64 characters) for n up to 9,999,999."""
MAX_TEMPLATE_TASKS = 1000
SPEC = "job_schedule.job_specification."
SCHEDULE = "job_schedule.schedule"

# Output-only fields of a template: dropped, so a schedule read back shows what it creates.
_JOB_OUTPUT_ONLY = ("name", "state", "task_counts", "terminate_reason", "create_time",
                    "state_transition_time", "end_time", "job_schedule")
_TASK_OUTPUT_ONLY = ("name", "state", "execution_info", "create_time", "state_transition_time",
                     "state_reason")

T = TypeVar("T")


def nested(prefix: str, check: Callable[..., T], *args: object) -> T:
    """Run a check written for a top-level request, naming its fields under `prefix`."""
    try:
        return check(*args)
    except ShoalError as e:
        if e.field is None:
            raise
        field = prefix + e.field
        why = e.message.removeprefix(f"{e.field}: ")
        raise ShoalError(e.code, e.reason, f"{field}: {why}", field) from None


def create_request(
    req: job_schedule_pb2.CreateJobScheduleRequest, min_interval: float
) -> tuple[str, str, Rule, bytes]:
    """(id, display name, rule, serialized template) of a valid CreateJobScheduleRequest."""
    sid = schedule_id(req.job_schedule_id)
    js = req.job_schedule
    check_display_name(js.display_name, "job_schedule.display_name")
    if not js.HasField("job_specification"):
        raise invalid("job_schedule.job_specification", "is required")
    return sid, js.display_name, rule(js.schedule, min_interval), job_specification(
        sid, js.job_specification)


def schedule_id(value: str, field: str = "job_schedule_id") -> str:
    check_id(value, field)
    if len(value) > MAX_SCHEDULE_ID:
        raise invalid(field, f"must be at most {MAX_SCHEDULE_ID} characters (its jobs are "
                             f"'{{id}}-{{n}}'), got {len(value)}")
    return value


def rule(s: job_schedule_pb2.Schedule, min_interval: float) -> Rule:
    not_before = from_timestamp(s.do_not_run_until) if s.HasField("do_not_run_until") else None
    not_after = from_timestamp(s.do_not_run_after) if s.HasField("do_not_run_after") else None
    if not_before is not None and not_after is not None and not_after <= not_before:
        raise invalid(f"{SCHEDULE}.do_not_run_after", "must be after do_not_run_until")
    interval = None
    if s.HasField("recurrence_interval"):
        if s.cron:
            raise invalid(SCHEDULE, "set recurrence_interval or cron, not both")
        interval = from_duration(s.recurrence_interval)
        if interval < min_interval:
            raise invalid(f"{SCHEDULE}.recurrence_interval",
                          f"must be at least {min_interval:g}s, got {interval:g}s")
    if s.cron:
        try:
            check_cron(s.cron)
        except CronError as e:
            raise invalid(f"{SCHEDULE}.cron", str(e)) from None
    return Rule(not_before, not_after, interval, s.cron)


def job_specification(schedule_id_: str, spec: job_schedule_pb2.JobSpecification) -> bytes:
    """Check the template as CreateJob and CreateTask would; return it serialized, without its
    output-only fields."""
    if not spec.HasField("job"):
        raise invalid(f"{SPEC}job", "is required")
    req = job_pb2.CreateJobRequest(job_id=f"{schedule_id_}-1", job=spec.job)
    nested(SPEC, convert.job_fields, req)
    nested(SPEC, convert.job_commands, spec.job)
    nested(SPEC, convert.job_settings, spec.job)
    if len(spec.tasks) > MAX_TEMPLATE_TASKS:
        raise invalid(f"{SPEC}tasks", f"at most {MAX_TEMPLATE_TASKS} tasks, got {len(spec.tasks)}")
    specs = template_tasks(spec)
    _check_dependencies(spec.job, specs)
    out = job_schedule_pb2.JobSpecification()
    out.CopyFrom(spec)
    for f in _JOB_OUTPUT_ONLY:
        out.job.ClearField(f)
    for t in out.tasks:
        t.ClearField("parent")
        for f in _TASK_OUTPUT_ONLY:
            if f in t.task.DESCRIPTOR.fields_by_name:
                t.task.ClearField(f)
    return out.SerializeToString()


def template_tasks(spec: job_schedule_pb2.JobSpecification) -> list[TaskDefinition]:
    """The template's tasks as CreateTask checks them; a duplicate id is refused."""
    specs = []
    seen: dict[str, int] = {}
    for i, r in enumerate(spec.tasks):
        specs.append(convert.task_spec(r.task_id, r.task, f"{SPEC}tasks[{i}]."))
        low = r.task_id.lower()
        if low in seen:
            raise invalid(f"{SPEC}tasks[{i}].task_id",
                          f"{r.task_id!r} appears twice (also tasks[{seen[low]}])",
                          "DUPLICATE_TASK_ID")
        seen[low] = i
    return specs


def _check_dependencies(job: job_pb2.Job, specs: list[TaskDefinition]) -> None:
    """Every job of the schedule starts empty: its tasks can only depend on each other."""
    ids = {s.id.lower() for s in specs}
    for i, s in enumerate(specs):
        if not s.deps:
            continue
        field = f"{SPEC}tasks[{i}].task.depends_on"
        if not job.uses_task_dependencies:
            raise invalid(field, "needs job.uses_task_dependencies", "TASK_DEPENDENCIES_NOT_ENABLED")
        unknown = next((d for d in s.deps if d.lower() not in ids), None)
        if unknown is not None:
            raise invalid(field, f"task {unknown!r} is not a task of the template",
                          "TASK_DEPENDENCY_NOT_FOUND")
    cycle = find_cycle({s.id.lower(): list(s.dep_keys) for s in specs})
    if cycle is not None:
        spelled = {s.id.lower(): s.id for s in specs}
        raise invalid(f"{SPEC}tasks",
                      f"dependency cycle: {' -> '.join(spelled[c] for c in cycle)}",
                      "TASK_DEPENDENCY_CYCLE")


def job_request(s: JobSchedule, job_id: str) -> tuple[job_pb2.CreateJobRequest, list[TaskDefinition]]:
    """What a run of the schedule creates: the job and its tasks."""
    spec = job_schedule_pb2.JobSpecification.FromString(s.spec)
    return job_pb2.CreateJobRequest(job_id=job_id, job=spec.job), template_tasks(spec)


# -- model -> responses -------------------------------------------------------------------


def job_schedule(s: JobSchedule) -> job_schedule_pb2.JobSchedule:
    r = s.rule
    out = job_schedule_pb2.JobSchedule(
        name=f"jobSchedules/{s.id}",
        display_name=s.display_name,
        schedule=job_schedule_pb2.Schedule(
            do_not_run_until=to_timestamp(r.not_before),
            do_not_run_after=to_timestamp(r.not_after),
            recurrence_interval=to_duration(r.interval),
            cron=r.cron,
        ),
        job_specification=job_schedule_pb2.JobSpecification.FromString(s.spec),
        state=int(s.state),  # type: ignore[arg-type]
        next_run_time=to_timestamp(s.next_run) if s.state != ScheduleState.COMPLETED else None,
        recent_job=f"jobs/{s.recent_job}" if s.recent_job else "",
        jobs_created=s.jobs_created,
        create_time=to_timestamp(s.create_time),
        state_transition_time=to_timestamp(s.state_time),
    )
    return out
