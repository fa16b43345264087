"""Jobs and job schedules: Azure Batch's JSON <-> Shoal's protobuf, pure."""

from __future__ import annotations

from typing import Any

from gateway.rest import odata
from gateway.rest.errors import invalid_property
from gateway.rest.wire.common import (
    Body,
    compact,
    duration_field,
    environment_in,
    format_time,
    last_segment,
    name_value_list,
    name_values,
    refuse_containers,
    resource_files_in,
    resource_files_out,
)
from shoal.v1 import job_pb2, job_schedule_pb2, task_pb2

Job = job_pb2.Job
Schedule = job_schedule_pb2.JobSchedule

JOB_STATES = {
    Job.ACTIVE: "active",
    Job.TERMINATING: "terminating",
    Job.COMPLETED: "completed",
    Job.DELETING: "deleting",
    Job.DISABLING: "disabling",
    Job.DISABLED: "disabled",
}
SCHEDULE_STATES = {Schedule.ACTIVE: "active", Schedule.DISABLED: "disabled", Schedule.COMPLETED: "completed"}
ALL_COMPLETE = {"noaction": job_pb2.NO_ACTION, "terminatejob": job_pb2.TERMINATE_JOB}
ON_FAILURE = {
    "noaction": job_pb2.NO_ACTION_ON_FAILURE,
    "performexitoptionsjobaction": job_pb2.PERFORM_EXIT_OPTIONS_JOB_ACTION,
}
DISABLE_TASKS = {
    "requeue": job_pb2.DISABLE_REQUEUE,
    "terminate": job_pb2.DISABLE_TERMINATE,
    "wait": job_pb2.DISABLE_WAIT,
}

JOB_FILTER: odata.Schema = {
    "id": odata.STRING,
    "displayName": odata.STRING,
    "state": odata.enum(JOB_STATES.values()),
    "priority": odata.INT,
    "creationTime": odata.DATETIME,
    "stateTransitionTime": odata.DATETIME,
    "poolInfo/poolId": odata.STRING,
    "executionInfo/poolId": odata.STRING,
    "executionInfo/terminateReason": odata.STRING,
    "executionInfo/endTime": odata.DATETIME,
}
SCHEDULE_FILTER: odata.Schema = {
    "id": odata.STRING,
    "displayName": odata.STRING,
    "state": odata.enum(SCHEDULE_STATES.values()),
    "creationTime": odata.DATETIME,
    "stateTransitionTime": odata.DATETIME,
}
JOB_FIELDS = {
    "job_id": "id",
    "update_mask": "body",
    "job.pool": "poolInfo.poolId",
    "job.job_preparation_task.environment": "jobPreparationTask.environmentSettings",
    "job.job_release_task.environment": "jobReleaseTask.environmentSettings",
    "job": "",
}
SCHEDULE_FIELDS = {
    "job_schedule_id": "id",
    "job_schedule.schedule": "schedule",
    "job_schedule.job_specification.job.pool": "jobSpecification.poolInfo.poolId",
    "job_schedule.job_specification.job": "jobSpecification",
    "job_schedule": "",
}


def job_in(body: Body) -> Job:
    """The settings of a job, as a job's add body and a schedule's jobSpecification carry them."""
    body.refuse("jobManagerTask", "Shoal has no job manager task; add the job's tasks yourself")
    body.refuse("commonEnvironmentSettings", "give each task its environmentSettings")
    body.refuse("allowTaskPreemption", "Shoal has no Spot nodes to preempt tasks on", unless=False)
    info = body.obj("poolInfo", required=True)
    assert info is not None
    info.refuse("autoPoolSpecification", "create the pool first and name it in poolId")
    parallel = body.integer("maxParallelTasks")
    if parallel is not None and (parallel == 0 or parallel < -1):
        raise invalid_property(body.name("maxParallelTasks"), "must be -1 (no limit) or 1 or more")
    job = Job(
        display_name=body.text("displayName"),
        pool=f"pools/{info.string('poolId', required=True)}",
        priority=body.integer("priority") or 0,
        on_all_tasks_complete=body.choice("onAllTasksComplete", ALL_COMPLETE, job_pb2.NO_ACTION),
        on_task_failure=body.choice("onTaskFailure", ON_FAILURE, job_pb2.NO_ACTION_ON_FAILURE),
        uses_task_dependencies=bool(body.flag("usesTaskDependencies")),
        max_parallel_tasks=max(parallel or 0, 0),
        metadata=name_values(body.objs("metadata"), "metadata"),
    )
    constraints = body.obj("constraints")
    if constraints is not None:
        job.constraints.CopyFrom(constraints_in(constraints))
    prep = body.obj("jobPreparationTask")
    if prep is not None:
        job.job_preparation_task.CopyFrom(preparation_in(prep))
    release = body.obj("jobReleaseTask")
    if release is not None:
        job.job_release_task.CopyFrom(release_in(release))
    return job


def constraints_in(body: Body) -> job_pb2.JobConstraints:
    out = job_pb2.JobConstraints(max_task_retry_count=retry_count(body) or 0)
    limit = body.duration("maxWallClockTime")
    if limit is not None:
        out.max_wall_clock_time.CopyFrom(limit)
    return out


def retry_count(body: Body) -> int | None:
    value = body.integer("maxTaskRetryCount")
    if value is not None and value < 0:
        raise invalid_property(body.name("maxTaskRetryCount"),
                               "Shoal retries at most 100 times; -1 (unlimited) is not supported")
    return value


def preparation_in(body: Body) -> task_pb2.JobPreparationTask:
    refuse_containers(body)
    body.refuse("waitForSuccess", "a job's tasks on a node always wait for its preparation task",
                unless=True)
    task = task_pb2.JobPreparationTask(
        command_line=body.string("commandLine", required=True) or "",
        resource_files=resource_files_in(body),
        environment=environment_in(body),
    )
    constraints = body.obj("constraints")
    if constraints is not None:
        task.max_task_retry_count = retry_count(constraints) or 0
        limit = constraints.duration("maxWallClockTime")
        if limit is not None:
            task.max_wall_clock_time.CopyFrom(limit)
    return task


def release_in(body: Body) -> task_pb2.JobReleaseTask:
    refuse_containers(body)
    task = task_pb2.JobReleaseTask(
        command_line=body.string("commandLine", required=True) or "",
        resource_files=resource_files_in(body),
        environment=environment_in(body),
    )
    limit = body.duration("maxWallClockTime")
    if limit is not None:
        task.max_wall_clock_time.CopyFrom(limit)
    return task


def create_request(body: Body) -> job_pb2.CreateJobRequest:
    return job_pb2.CreateJobRequest(job_id=body.string("id", required=True) or "", job=job_in(body))


def job_settings_json(job: Job) -> dict[str, Any]:
    """What a job's add body and a schedule's jobSpecification share."""
    c = job.constraints
    return {
        "displayName": job.display_name or None,
        "usesTaskDependencies": job.uses_task_dependencies,
        "priority": job.priority,
        "allowTaskPreemption": False,
        "maxParallelTasks": job.max_parallel_tasks or -1,
        "constraints": compact({
            "maxWallClockTime": duration_field(c, "max_wall_clock_time"),
            "maxTaskRetryCount": c.max_task_retry_count,
        }),
        "jobPreparationTask": _preparation_out(job.job_preparation_task)
        if job.HasField("job_preparation_task") else None,
        "jobReleaseTask": _release_out(job.job_release_task)
        if job.HasField("job_release_task") else None,
        "poolInfo": {"poolId": last_segment(job.pool)},
        "onAllTasksComplete": "terminatejob" if job.on_all_tasks_complete == job_pb2.TERMINATE_JOB else "noaction",
        "onTaskFailure": "performexitoptionsjobaction"
        if job.on_task_failure == job_pb2.PERFORM_EXIT_OPTIONS_JOB_ACTION else "noaction",
        "metadata": name_value_list(job.metadata),
    }


def _preparation_out(task: task_pb2.JobPreparationTask) -> dict[str, Any]:
    return compact({
        "id": "jobpreparation",
        "commandLine": task.command_line,
        "resourceFiles": resource_files_out(task.resource_files),
        "environmentSettings": name_value_list(task.environment),
        "constraints": compact({
            "maxWallClockTime": duration_field(task, "max_wall_clock_time"),
            "maxTaskRetryCount": task.max_task_retry_count,
        }),
        "waitForSuccess": True,
    })


def _release_out(task: task_pb2.JobReleaseTask) -> dict[str, Any]:
    return compact({
        "id": "jobrelease",
        "commandLine": task.command_line,
        "resourceFiles": resource_files_out(task.resource_files),
        "environmentSettings": name_value_list(task.environment),
        "maxWallClockTime": duration_field(task, "max_wall_clock_time"),
    })


def job_json(job: Job, base: str) -> dict[str, Any]:
    job_id = last_segment(job.name)
    return compact({
        "id": job_id,
        "url": f"{base}/jobs/{job_id}",
        "creationTime": format_time(job.create_time),
        "state": JOB_STATES.get(job.state),
        "stateTransitionTime": format_time(job.state_transition_time),
        **job_settings_json(job),
        "executionInfo": compact({
            "startTime": format_time(job.create_time),
            "endTime": format_time(job.end_time),
            "poolId": last_segment(job.pool),
            "terminateReason": job.terminate_reason or None,
        }),
    })


def task_counts_json(counts: job_pb2.TaskCounts) -> dict[str, Any]:
    return {
        "taskCounts": {
            "active": counts.active,
            "running": counts.running,
            "completed": counts.completed,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
        },
    }


# Azure's updatable job properties -> UpdateJob's mask paths.
UPDATABLE = {
    "priority": "priority",
    "maxParallelTasks": "max_parallel_tasks",
    "constraints": "constraints",
    "onAllTasksComplete": "on_all_tasks_complete",
    "metadata": "metadata",
}


def update_request(job_id: str, body: Body, *, replace: bool) -> tuple[job_pb2.UpdateJobRequest, str | None]:
    """A Job - Patch (only the properties given change) or, with `replace`, a Job - Update
    (every updatable property is set, the ones left out to their defaults) as UpdateJobRequest;
    and the pool the body names, if any, for the caller to check (a job stays on its pool)."""
    body.refuse("allowTaskPreemption", "Shoal has no Spot nodes to preempt tasks on", unless=False)
    body.refuse("networkConfiguration", "Shoal's jobs have no network of their own")
    parallel = body.integer("maxParallelTasks")
    if parallel is not None and (parallel == 0 or parallel < -1):
        raise invalid_property(body.name("maxParallelTasks"), "must be -1 (no limit) or 1 or more")
    constraints = body.obj("constraints")
    job = Job(
        priority=body.integer("priority") or 0,
        max_parallel_tasks=max(parallel or 0, 0),
        on_all_tasks_complete=body.choice("onAllTasksComplete", ALL_COMPLETE, job_pb2.NO_ACTION),
        metadata=name_values(body.objs("metadata"), "metadata"),
    )
    if constraints is not None:
        job.constraints.CopyFrom(constraints_in(constraints))
    info = body.obj("poolInfo", required=replace)
    pool = None
    if info is not None:
        info.refuse("autoPoolSpecification", "a job stays on the pool it was created on")
        pool = info.string("poolId", required=True)
    paths = ["*"] if replace else [path for key, path in UPDATABLE.items() if body.has(key)]
    request = job_pb2.UpdateJobRequest(name=f"jobs/{job_id}", job=job)
    request.update_mask.paths.extend(paths)
    return request, pool


def terminate_request(job_id: str, body: Body) -> job_pb2.TerminateJobRequest:
    return job_pb2.TerminateJobRequest(name=f"jobs/{job_id}", reason=body.text("terminateReason"))


def disable_request(job_id: str, body: Body) -> job_pb2.DisableJobRequest:
    body.string("disableTasks", required=True)
    return job_pb2.DisableJobRequest(
        name=f"jobs/{job_id}",
        disable_tasks=body.choice("disableTasks", DISABLE_TASKS, job_pb2.DISABLE_REQUEUE),
    )


# Job schedules.

def create_schedule_request(body: Body) -> job_schedule_pb2.CreateJobScheduleRequest:
    body.refuse("metadata", "Shoal keeps no metadata on job schedules; put it in jobSpecification")
    when = body.obj("schedule", required=True)
    spec = body.obj("jobSpecification", required=True)
    assert when is not None and spec is not None
    schedule = job_schedule_pb2.Schedule()
    for key, target in (("doNotRunUntil", schedule.do_not_run_until),
                        ("doNotRunAfter", schedule.do_not_run_after)):
        found = when.time(key)
        if found is not None:
            target.CopyFrom(found)
    every = when.duration("recurrenceInterval")
    if every is not None:
        schedule.recurrence_interval.CopyFrom(every)
    return job_schedule_pb2.CreateJobScheduleRequest(
        job_schedule_id=body.string("id", required=True) or "",
        job_schedule=Schedule(
            display_name=body.text("displayName"),
            schedule=schedule,
            job_specification=job_schedule_pb2.JobSpecification(job=job_in(spec)),
        ),
    )


def schedule_json(s: Schedule, base: str) -> dict[str, Any]:
    schedule_id = last_segment(s.name)
    when = s.schedule
    recent = last_segment(s.recent_job) if s.recent_job else None
    return compact({
        "id": schedule_id,
        "url": f"{base}/jobschedules/{schedule_id}",
        "displayName": s.display_name or None,
        "creationTime": format_time(s.create_time),
        "state": SCHEDULE_STATES.get(s.state),
        "stateTransitionTime": format_time(s.state_transition_time),
        "schedule": compact({
            "doNotRunUntil": format_time(when.do_not_run_until),
            "doNotRunAfter": format_time(when.do_not_run_after),
            "recurrenceInterval": duration_field(when, "recurrence_interval"),
        }),
        "jobSpecification": compact(job_settings_json(s.job_specification.job)),
        "executionInfo": compact({
            "nextRunTime": format_time(s.next_run_time),
            "recentJob": {"id": recent, "url": f"{base}/jobs/{recent}"} if recent else None,
        }),
    })
