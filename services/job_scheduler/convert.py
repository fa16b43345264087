"""Protobuf <-> model for the job-scheduler, with request validation (pure).

Validation lives here because it is about the wire: which field of the request is wrong.
"""

from __future__ import annotations

import functools
import json

from services.common.cmdline import split_command
from services.common.command_specs import (
    MAX_COMMAND_LINE,
    check_command_line,
    check_environment,
    check_node_command,
    check_retries,
    check_wall_clock,
)
from services.common.errors import invalid
from services.common.file_specs import check_output_files, check_package_refs, check_resource_files
from services.common.ids import ID_RE, check_display_name, check_id, check_metadata, parse_name
from services.common.timeutil import set_time, to_timestamp
from services.common.updates import check_if_match, check_name, mask_fields
from services.job_scheduler.core.nodes import AgentReport, Hello
from services.job_scheduler.core.plan import (
    AckResults,
    Assign,
    AssignTask,
    CancelAttempts,
    Drain,
    FailTasks,
    Message,
    NewConstraints,
    Reactivate,
    StartAttempt,
    TaskChanged,
    TaskDeleted,
    TaskInfo,
    TaskOutcome,
    UpdateJob,
)
from services.job_scheduler.dependencies import MAX_IDS as MAX_DEP_IDS
from services.job_scheduler.dependencies import MAX_RANGE as MAX_DEP_RANGE
from services.job_scheduler.dependencies import MAX_RANGES as MAX_DEP_RANGES
from services.job_scheduler.dependencies import expand
from services.job_scheduler.model import (
    TASK_UPDATABLE,
    UPDATABLE,
    Attempt,
    Category,
    Failure,
    Job,
    JobChanges,
    JobState,
    OnAllTasksComplete,
    Report,
    Result,
    TaskChanges,
    TaskDefinition,
    TaskRecord,
    etag,
)
from services.job_scheduler.outcomes import DependencyAction, ExitOptions, ExitRules, JobAction
from shoal.agent.v1 import agent_pb2
from shoal.v1 import job_pb2, task_pb2

MAX_SLOTS = 256
MAX_EXIT_MAPPINGS = 256


# -- requests -> model --------------------------------------------------------------------


def _splits(cmd: str) -> bool:
    """Whether the command line has at least one word (the fast path of the full check)."""
    try:
        return bool(split_command(cmd))
    except ValueError:
        return False


def task_spec(task_id: str, task: task_pb2.Task, prefix: str = "") -> TaskDefinition:
    """Validate a task as sent by a client. `prefix` names it inside a batch (`requests[3].`).

    This runs once per task of a 100,000-task batch: the common case is kept to a few cheap
    checks, and field names are only built on the way to an error.
    """
    if ID_RE.fullmatch(task_id) is None:
        check_id(task_id, f"{prefix}task_id")
    fields = task.ListFields()
    if len(fields) == 1 and fields[0][0].name == "command_line":
        # The common case of a big batch: a command line and nothing else. One ListFields
        # call instead of a dozen probes of fields that are not there.
        cmd = fields[0][1]
        if len(cmd) > MAX_COMMAND_LINE or "\x00" in cmd or not _splits(cmd):
            check_command_line(cmd, f"{prefix}task.command_line")
        return TaskDefinition(task_id, cmd, {}, None, None)
    display = task.display_name
    if display:
        check_display_name(display, f"{prefix}task.display_name")
    cmd = task.command_line
    if len(cmd) > MAX_COMMAND_LINE or "\x00" in cmd or not _splits(cmd):
        check_command_line(cmd, f"{prefix}task.command_line")
    env = check_environment(task.environment, f"{prefix}task.environment") if len(task.environment) else {}
    wall: float | None = None
    retries: int | None = None
    if task.HasField("constraints"):
        wall = _task_wall_clock(task.constraints, prefix)
        retries = _task_retries(task.constraints, prefix)
    files = None
    if task.resource_files or task.output_files or task.application_package_references:
        files = task_files(task, prefix)
    if not (task.HasField("depends_on") or task.HasField("exit_conditions") or task.required_slots
            or task.priority or (task.HasField("constraints")
                                 and task.constraints.HasField("retention_time"))):
        return TaskDefinition(task_id, cmd, env, wall, retries, display, files)
    return task_extras(TaskDefinition(task_id, cmd, env, wall, retries, display, files), task, prefix)


def task_extras(spec: TaskDefinition, task: task_pb2.Task, prefix: str) -> TaskDefinition:
    """Dependencies, exit conditions, slots, priority, retention: the rarer parts of a task."""
    deps: tuple[str, ...] = ()
    deps_spec = None
    if task.HasField("depends_on"):
        d = task.depends_on
        field = f"{prefix}task.depends_on"
        if len(d.task_ids) > MAX_DEP_IDS:
            raise invalid(f"{field}.task_ids", f"at most {MAX_DEP_IDS} ids, got {len(d.task_ids)}")
        if len(d.task_id_ranges) > MAX_DEP_RANGES:
            raise invalid(f"{field}.task_id_ranges", f"at most {MAX_DEP_RANGES} ranges")
        for i, dep in enumerate(d.task_ids):
            check_id(dep, f"{field}.task_ids[{i}]")
        for i, r in enumerate(d.task_id_ranges):
            if not 0 <= r.start <= r.end or r.end - r.start >= MAX_DEP_RANGE:
                raise invalid(f"{field}.task_id_ranges[{i}]",
                              f"needs 0 <= start <= end and at most {MAX_DEP_RANGE} ids, "
                              f"got {r.start}-{r.end}")
        deps = tuple(expand(d.task_ids, [(r.start, r.end) for r in d.task_id_ranges]))
        if spec.id.lower() in {d.lower() for d in deps}:
            raise invalid(field, f"task {spec.id!r} cannot depend on itself")
        deps_spec = d.SerializeToString()
    exits = None
    if task.HasField("exit_conditions"):
        exit_rules(task.exit_conditions, f"{prefix}task.exit_conditions")
        exits = task.exit_conditions.SerializeToString()
    slots = task.required_slots or 1
    if not 1 <= slots <= MAX_SLOTS:
        raise invalid(f"{prefix}task.required_slots", f"must be 1 to {MAX_SLOTS}, got {task.required_slots}")
    if not -1000 <= task.priority <= 1000:
        raise invalid(f"{prefix}task.priority", f"must be -1000 to 1000, got {task.priority}")
    retention = _task_retention(task.constraints, prefix)
    return spec._replace(deps=deps, exits=exits, slots=slots, priority=task.priority,
                         retention=retention, deps_spec=deps_spec, extra=True)


# A task's constraints, checked: shared by CreateTask and UpdateTask (the same field, the same
# error). Unset is None: no wall clock, the job's retry count, the default retention.

def _task_wall_clock(c: task_pb2.TaskConstraints, prefix: str = "") -> float | None:
    if not c.HasField("max_wall_clock_time"):
        return None
    return check_wall_clock(c.max_wall_clock_time, f"{prefix}task.constraints.max_wall_clock_time")


def _task_retries(c: task_pb2.TaskConstraints, prefix: str = "") -> int | None:
    if not c.HasField("max_task_retry_count"):
        return None
    return check_retries(c.max_task_retry_count, f"{prefix}task.constraints.max_task_retry_count")


def _task_retention(c: task_pb2.TaskConstraints, prefix: str = "") -> float | None:
    if not c.HasField("retention_time"):
        return None
    return check_wall_clock(c.retention_time, f"{prefix}task.constraints.retention_time")


TASK_UPDATE_PATHS: dict[str, tuple[str, ...]] = {
    "constraints": TASK_UPDATABLE,
    "constraints.max_wall_clock_time": ("max_wall_clock_time",),
    "constraints.max_task_retry_count": ("max_task_retry_count",),
    "constraints.retention_time": ("retention",),
    "*": TASK_UPDATABLE,
}
"""UpdateTask's mask paths -> the TaskDefinition constraints they change."""
_TASK_CHECKS = {"max_wall_clock_time": _task_wall_clock, "max_task_retry_count": _task_retries,
                "retention": _task_retention}


def task_changes(req: task_pb2.UpdateTaskRequest) -> TaskChanges:
    """The changes an UpdateTaskRequest asks for, checked as CreateTask checks them. Only
    masked fields are read (AIP-134: the others are ignored, whatever they hold)."""
    check_name(req.task.name, req.name, "task.name")
    check_if_match(req.if_match)
    fields = mask_fields(req.update_mask.paths, TASK_UPDATE_PATHS)
    c = req.task.constraints
    return TaskChanges(fields, **{f: _TASK_CHECKS[f](c) for f in fields})  # type: ignore[arg-type]


def exit_rules(c: task_pb2.ExitConditions, field: str) -> ExitRules:
    """Exit conditions checked and turned into the pure rules."""
    def opts(o: task_pb2.ExitOptions, at: str) -> ExitOptions:
        if o.job_action not in JobAction.__members__.values():
            raise invalid(f"{at}.job_action", f"unknown value {o.job_action}")
        if o.dependency_action not in DependencyAction.__members__.values():
            raise invalid(f"{at}.dependency_action", f"unknown value {o.dependency_action}")
        return ExitOptions(JobAction(o.job_action), DependencyAction(o.dependency_action))
    if len(c.exit_codes) + len(c.exit_code_ranges) > MAX_EXIT_MAPPINGS:
        raise invalid(field, f"at most {MAX_EXIT_MAPPINGS} exit codes and ranges")
    codes = {}
    for i, m in enumerate(c.exit_codes):
        codes[m.code] = opts(m.exit_options, f"{field}.exit_codes[{i}].exit_options")
    ranges = []
    for i, r in enumerate(c.exit_code_ranges):
        if r.start > r.end:
            raise invalid(f"{field}.exit_code_ranges[{i}]", f"start {r.start} is after end {r.end}")
        ranges.append((r.start, r.end, opts(r.exit_options, f"{field}.exit_code_ranges[{i}].exit_options")))
    def maybe(name: str) -> ExitOptions | None:
        return opts(getattr(c, name), f"{field}.{name}") if c.HasField(name) else None
    return ExitRules(codes, tuple(ranges), maybe("pre_processing_error"),
                     maybe("file_upload_error"), maybe("default"))


def task_files(task: task_pb2.Task, prefix: str) -> bytes:
    check_resource_files(task.resource_files, f"{prefix}task.resource_files")
    check_output_files(task.output_files, f"{prefix}task.output_files")
    check_package_refs(task.application_package_references,
                       f"{prefix}task.application_package_references")
    return agent_pb2.TaskFiles(
        resource_files=task.resource_files, output_files=task.output_files,
        application_packages=task.application_package_references,
    ).SerializeToString()


def job_fields(req: job_pb2.CreateJobRequest) -> tuple[str, str, int, OnAllTasksComplete]:
    """(job id, pool id, priority, on_all_tasks_complete) of a valid CreateJobRequest."""
    check_id(req.job_id, "job_id")
    j = req.job
    (pool_id,) = parse_name(j.pool, "pools/{pool}", "job.pool")
    priority = _job_priority(j)
    check_display_name(j.display_name, "job.display_name")
    check_metadata(dict(j.metadata), "job.metadata")
    return req.job_id, pool_id, priority, _on_all_tasks_complete(j)


def job_settings(j: job_pb2.Job) -> dict[str, object]:
    """The job's scheduling settings, checked: keyword arguments of model.Job."""
    if j.on_task_failure not in (0, 1, 2):
        raise invalid("job.on_task_failure", f"unknown value {j.on_task_failure}")
    return {
        "uses_deps": j.uses_task_dependencies, "max_parallel": _max_parallel(j),
        "max_wall_clock": _job_wall_clock(j), "default_retries": _job_retries(j),
        "exit_job_actions": j.on_task_failure == job_pb2.PERFORM_EXIT_OPTIONS_JOB_ACTION,
    }


# The checks of a job's settings, shared by create and update (the same field, the same error).

def _job_priority(j: job_pb2.Job) -> int:
    if not -1000 <= j.priority <= 1000:
        raise invalid("job.priority", f"must be -1000 to 1000, got {j.priority}")
    return j.priority


def _on_all_tasks_complete(j: job_pb2.Job) -> OnAllTasksComplete:
    if j.on_all_tasks_complete not in (0, 1, 2):
        raise invalid("job.on_all_tasks_complete", f"unknown value {j.on_all_tasks_complete}")
    return OnAllTasksComplete(j.on_all_tasks_complete or OnAllTasksComplete.NO_ACTION)


def _max_parallel(j: job_pb2.Job) -> int:
    if j.max_parallel_tasks < 0:
        raise invalid("job.max_parallel_tasks",
                      f"must be 0 (no limit) or more, got {j.max_parallel_tasks}")
    return j.max_parallel_tasks


def _job_wall_clock(j: job_pb2.Job) -> float | None:
    c = j.constraints
    if not c.HasField("max_wall_clock_time"):
        return None
    return check_wall_clock(c.max_wall_clock_time, "job.constraints.max_wall_clock_time")


def _job_retries(j: job_pb2.Job) -> int:
    return check_retries(j.constraints.max_task_retry_count,
                         "job.constraints.max_task_retry_count")


def _job_metadata(j: job_pb2.Job) -> dict[str, str]:
    meta = dict(j.metadata)
    check_metadata(meta, "job.metadata")
    return meta


UPDATE_PATHS: dict[str, tuple[str, ...]] = {
    "priority": ("priority",),
    "on_all_tasks_complete": ("on_all_tasks_complete",),
    "max_parallel_tasks": ("max_parallel",),
    "constraints": ("max_wall_clock", "default_retries"),
    "constraints.max_wall_clock_time": ("max_wall_clock",),
    "constraints.max_task_retry_count": ("default_retries",),
    "metadata": ("metadata",),
    "*": UPDATABLE,
}
"""UpdateJob's mask paths -> the model.Job settings they change."""
_CHECKS = {
    "priority": _job_priority, "on_all_tasks_complete": _on_all_tasks_complete,
    "max_parallel": _max_parallel, "max_wall_clock": _job_wall_clock,
    "default_retries": _job_retries, "metadata": _job_metadata,
}


def job_changes(req: job_pb2.UpdateJobRequest) -> JobChanges:
    """The changes an UpdateJobRequest asks for, checked. Only masked fields are read (AIP-134:
    the others are ignored, whatever they hold)."""
    check_name(req.job.name, req.name, "job.name")
    check_if_match(req.if_match)
    fields = mask_fields(req.update_mask.paths, UPDATE_PATHS)
    return JobChanges(fields, **{f: _CHECKS[f](req.job) for f in fields})  # type: ignore[arg-type]


def job_commands(j: job_pb2.Job) -> tuple[bytes | None, bytes | None]:
    """The job's preparation and release tasks, checked and serialized (None when absent)."""
    prep = check_node_command(j.job_preparation_task, "job.job_preparation_task") \
        if j.HasField("job_preparation_task") else None
    release = check_node_command(j.job_release_task, "job.job_release_task") \
        if j.HasField("job_release_task") else None
    return prep, release


def failure(f: task_pb2.FailureInfo) -> Failure | None:
    if not f.code:
        return None
    category = Category(f.category) if f.category in (1, 2) else Category.SERVER_ERROR
    return Failure(category, f.code[:64], f.message[:4096])


def report(r: agent_pb2.TaskResult, now: float) -> Report:
    start = r.start_time.ToNanoseconds() / 1e9 if r.HasField("start_time") else None
    end = r.end_time.ToNanoseconds() / 1e9 if r.HasField("end_time") else now
    failure_ = failure(r.failure_info) if r.HasField("failure_info") else None
    return Report(r.attempt_id, r.exit_code if r.HasField("exit_code") else None, start, end, failure_)


# -- model -> responses -------------------------------------------------------------------


def job(j: Job) -> job_pb2.Job:
    c = j.counts
    out = job_pb2.Job(
        name=f"jobs/{j.id}",
        display_name=j.display_name,
        pool=f"pools/{j.pool_id}",
        priority=j.priority,
        # Our enums carry the proto's names: pass names, so the mapping is by meaning.
        on_all_tasks_complete=j.on_all_tasks_complete.name,
        state=j.state.name,
        task_counts=job_pb2.TaskCounts(
            active=c.active, running=c.running, completed=c.completed,
            succeeded=c.succeeded, failed=c.failed,
        ),
        terminate_reason=j.terminate_reason,
        metadata=j.metadata,
        create_time=to_timestamp(j.create_time),
        state_transition_time=to_timestamp(j.state_time),
        etag=j.etag,
        update_time=to_timestamp(j.update_time),
    )
    if j.end_time is not None:
        out.end_time.FromNanoseconds(int(j.end_time * 1e9))
    if j.schedule_id:
        out.job_schedule = f"jobSchedules/{j.schedule_id}"
    out.uses_task_dependencies = j.uses_deps
    out.max_parallel_tasks = j.max_parallel
    out.on_task_failure = (job_pb2.PERFORM_EXIT_OPTIONS_JOB_ACTION if j.exit_job_actions
                           else job_pb2.NO_ACTION_ON_FAILURE)
    if j.max_wall_clock is not None or j.default_retries:
        out.constraints.max_task_retry_count = j.default_retries
        if j.max_wall_clock is not None:
            out.constraints.max_wall_clock_time.FromNanoseconds(int(j.max_wall_clock * 1e9))
    if j.prep:
        out.job_preparation_task.ParseFromString(j.prep)
    if j.release:
        out.job_release_task.ParseFromString(j.release)
    return out


def failure_info(f: Failure | None) -> task_pb2.FailureInfo | None:
    return None if f is None else failure_proto(f)


def failure_proto(f: Failure) -> task_pb2.FailureInfo:
    return task_pb2.FailureInfo(category=f.category.name, code=f.code, message=f.message)


def task(t: TaskRecord) -> task_pb2.Task:
    """A task as the API shows it. A page of ListTasks converts a thousand of these on the
    event loop, so only the fields a task has are set (the rest read as their defaults)."""
    s = t.spec
    out = task_pb2.Task(
        name=f"jobs/{t.job_id}/tasks/{s.id}", command_line=s.command_line, state=t.state.name,
        required_slots=s.slots,
    )
    set_time(out.create_time, t.create_time)
    set_time(out.state_transition_time, t.state_time)
    set_time(out.update_time, t.update_time)
    out.etag = t.etag
    if s.display_name:
        out.display_name = s.display_name
    if s.environment:
        out.environment.update(s.environment)
    if s.max_task_retry_count is not None:
        out.constraints.max_task_retry_count = s.max_task_retry_count
    if s.max_wall_clock_time is not None:
        out.constraints.max_wall_clock_time.FromNanoseconds(int(s.max_wall_clock_time * 1e9))
    if s.retention is not None:
        out.constraints.retention_time.FromNanoseconds(int(s.retention * 1e9))
    if s.priority:
        out.priority = s.priority
    if t.state_reason:
        out.state_reason = t.state_reason
    info = out.execution_info
    info.retry_count, info.requeue_count = t.retry_count, t.requeue_count
    if t.result:
        info.result = t.result.name  # type: ignore[assignment]
    if t.node:
        info.node = t.node
    if t.attempt_id:
        info.attempt_id = t.attempt_id
    if t.failure is not None:
        fi = info.failure_info
        fi.category = t.failure.category.value  # type: ignore[assignment]  # same numbers
        fi.code, fi.message = t.failure.code, t.failure.message
    if t.start_time is not None:
        set_time(info.start_time, t.start_time)
    if t.end_time is not None:
        set_time(info.end_time, t.end_time)
    if t.exit_code is not None:
        info.exit_code = t.exit_code
    for a in t.attempts:
        if a.attempt_id == t.attempt_id:
            continue
        pa = info.previous_attempts.add(
            attempt_id=a.attempt_id, node=a.node, failure_info=failure_info(a.failure),
            start_time=to_timestamp(a.start_time), end_time=to_timestamp(a.end_time),
        )
        if a.exit_code is not None:
            pa.exit_code = a.exit_code
    if s.deps_spec:
        out.depends_on.ParseFromString(s.deps_spec)
    if s.exits:
        out.exit_conditions.ParseFromString(s.exits)
    if s.files:
        files = agent_pb2.TaskFiles.FromString(s.files)
        out.resource_files.extend(files.resource_files)
        out.output_files.extend(files.output_files)
        out.application_package_references.extend(files.application_packages)
    return out


# -- watch events -------------------------------------------------------------------------


def job_as_written(j: Job, row: UpdateJob) -> job_pb2.Job:
    """The job as its row was written (the object has moved on since). Its settings are as
    they are now: an update that changed them also wrote the row, later."""
    out = job(j)
    out.state = row.state.name  # type: ignore[assignment]
    out.terminate_reason = row.terminate_reason
    out.etag = etag(j.pk, row.revision)
    out.update_time.FromNanoseconds(int(row.update_time * 1e9))
    out.state_transition_time.FromNanoseconds(int(row.state_time * 1e9))
    out.ClearField("end_time")
    if row.end_time is not None:
        out.end_time.FromNanoseconds(int(row.end_time * 1e9))
    c = out.task_counts
    c.active, c.running, c.completed, c.succeeded, c.failed = row.counts
    return out


def job_as_created(j: Job) -> job_pb2.Job:
    return job_as_written(j, UpdateJob(j.pk, JobState.ACTIVE, "", j.create_time, None,
                                       (0, 0, 0, 0, 0), 1, j.create_time))


_CLEARED_ON_ASSIGN = ("execution_info.start_time", "execution_info.end_time",
                      "execution_info.exit_code", "execution_info.failure_info")
_CLEARED_ON_REACTIVATE = ("execution_info.end_time", "execution_info.exit_code",
                          "execution_info.failure_info")


def task_change(e: TaskChanged, task_id: str) -> tuple[task_pb2.Task, list[str]]:
    """The fields a task row wrote, as a Task and the paths of its update mask: exactly the
    columns the row's statement sets (services/job_scheduler/store.py), so a copy that
    applies them equals what GetTask reads after the commit."""
    t = task_pb2.Task(name=f"jobs/{e.job_id}/tasks/{task_id}", state=e.state.name)
    info = t.execution_info
    info.SetInParent()  # present even when every field is cleared: merging needs the parent
    paths = ["state", "state_transition_time"]
    r = e.row
    if isinstance(r, AssignTask):
        set_time(t.state_transition_time, r.time)
        info.attempt_id, info.node = r.attempt_id, r.node
        paths += ["execution_info.attempt_id", "execution_info.node", *_CLEARED_ON_ASSIGN]
    elif isinstance(r, StartAttempt):
        set_time(t.state_transition_time, r.time)
        set_time(info.start_time, r.start_time)
        paths.append("execution_info.start_time")
    elif isinstance(r, TaskOutcome):
        set_time(t.state_transition_time, r.time)
        if r.result is not None:
            info.result = r.result.name  # type: ignore[assignment]
        info.retry_count, info.requeue_count = r.retry_count, r.requeue_count
        paths += ["execution_info.result", "execution_info.retry_count",
                  "execution_info.requeue_count", "execution_info.end_time",
                  "execution_info.exit_code", "execution_info.failure_info"]
        if r.start_time is not None:  # written as coalesce(start_time, ...)
            set_time(info.start_time, r.start_time)
            paths.append("execution_info.start_time")
        if r.end_time is not None:
            set_time(info.end_time, r.end_time)
        if r.exit_code is not None:
            info.exit_code = r.exit_code
        if r.failure is not None:
            info.failure_info.CopyFrom(failure_proto(r.failure))
    elif isinstance(r, FailTasks):
        set_time(t.state_transition_time, r.time)
        info.result = Result.FAILURE.name  # type: ignore[assignment]
        set_time(info.end_time, r.time)
        info.failure_info.CopyFrom(failure_proto(r.failure))
        paths += ["execution_info.result", "execution_info.end_time",
                  "execution_info.failure_info"]
    elif isinstance(r, Reactivate):
        set_time(t.state_transition_time, r.time)
        paths += ["execution_info.result", "execution_info.retry_count",
                  "execution_info.requeue_count", *_CLEARED_ON_REACTIVATE]
    else:
        raise TypeError(f"not a task row: {r!r}")
    return t, paths


def assignment(a: Attempt, info: TaskInfo, job: Job) -> agent_pb2.Assignment:
    out = agent_pb2.Assignment(
        attempt_id=a.attempt_id,
        job_uid=job.pk,
        job_id=info.job_id,
        task_id=info.id,
        command_line=info.command_line,
        required_slots=a.slots,
        attempt_number=a.number,
    )
    if info.environment and info.environment != "{}":
        out.environment.update(json.loads(info.environment))
    if info.files:
        out.files.ParseFromString(info.files)
    # The attempt's limits, not the row's: an update may have changed them since the read.
    if a.retention is not None:
        out.retention_time.FromNanoseconds(int(a.retention * 1e9))
    if job.prep:
        out.job_preparation_task.CopyFrom(_prep(job.prep))
    if a.max_wall_clock is not None:
        out.max_wall_clock_time.FromNanoseconds(int(a.max_wall_clock * 1e9))
    return out


def constraints(a: Attempt) -> agent_pb2.AttemptConstraints:
    out = agent_pb2.AttemptConstraints(attempt_id=a.attempt_id)
    if a.max_wall_clock is not None:
        out.max_wall_clock_time.FromNanoseconds(int(a.max_wall_clock * 1e9))
    if a.retention is not None:
        out.retention_time.FromNanoseconds(int(a.retention * 1e9))
    return out


# -- the agent stream -----------------------------------------------------------------------


def hello(h: agent_pb2.Hello, pool_id: str, node_id: str, slots: int) -> Hello:
    return Hello(
        pool_id, node_id, slots, h.hostname,
        failure(h.setup_failure) if h.HasField("setup_failure") else None,
        h.start_task_info.SerializeToString() if h.HasField("start_task_info") else None,
        tuple(h.running_attempts), tuple(h.finished_attempts),
    )


def agent_report(m: agent_pb2.AgentMessage, now: float) -> AgentReport:
    return AgentReport(
        started=[(st.attempt_id, st.start_time.ToNanoseconds() / 1e9) for st in m.started],
        results=[report(r, now) for r in m.results],
        start_task_info=m.start_task_info.SerializeToString()
        if m.HasField("start_task_info") else None,
        node_errors=tuple(e.SerializeToString() for e in m.node_errors),
    )


def message(m: Message) -> agent_pb2.SchedulerMessage:
    """A core's message to a node, as sent (JobEnded is built by the engine: it needs grants)."""
    match m:
        case Assign(attempt, info, job):
            return agent_pb2.SchedulerMessage(assignments=[assignment(attempt, info, job)])
        case CancelAttempts(ids):
            return agent_pb2.SchedulerMessage(cancel_attempts=ids)
        case AckResults(ids):
            return agent_pb2.SchedulerMessage(ack_attempts=ids)
        case TaskDeleted(job_id, task_id):
            return agent_pb2.SchedulerMessage(
                deleted_tasks=[agent_pb2.TaskRef(job_id=job_id, task_id=task_id)])
        case Drain():
            return agent_pb2.SchedulerMessage(drain=agent_pb2.Drain(leave=False))
        case NewConstraints(attempts):
            return agent_pb2.SchedulerMessage(
                attempt_constraints=[constraints(a) for a in attempts])
    raise TypeError(f"no wire form for {m!r}")


@functools.lru_cache(maxsize=256)
def _prep(prep: bytes) -> task_pb2.JobPreparationTask:
    """A job's preparation task, parsed once per job rather than once per assignment (the
    copy into each assignment is the message's own)."""
    return task_pb2.JobPreparationTask.FromString(prep)


@functools.lru_cache(maxsize=1024)
def rules_of(exits: bytes) -> ExitRules:
    """Stored exit conditions as rules: parsed once per distinct value, since a job's tasks
    mostly share theirs."""
    return exit_rules(task_pb2.ExitConditions.FromString(exits), "exit_conditions")
