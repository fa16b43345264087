"""Jobs and job schedules: Azure Batch's operations on Shoal's JobService and
JobScheduleService."""

from __future__ import annotations

from aiohttp import web

from gateway.rest import conditions, listing
from gateway.rest.errors import unsupported_property
from gateway.rest.http import (
    Resource,
    Versioned,
    base_url,
    caller,
    empty,
    json_response,
    precondition,
    read_body,
)
from gateway.rest.wire import jobs as wire
from shoal.v1 import job_pb2, job_schedule_pb2

routes = web.RouteTableDef()

JOB = "jobs"
SCHEDULE = "jobschedules"
JOB_STATES = {azure: [job_pb2.Job.State.Name(s)] for s, azure in wire.JOB_STATES.items()}


def version(job: job_pb2.Job, base: str) -> Versioned:
    # The scheduler versions jobs (etag, update_time): If-Match on an update is its own check.
    return Versioned.of(wire.job_json(job, base), job.create_time, job.state_transition_time,
                        tag=job.etag, modified=job.update_time)


JOBS = Resource(lambda request: f"jobs/{request.match_info['job']}",
                lambda c: c.backend.jobs.GetJob, job_pb2.GetJobRequest, version, JOB)

routes.post("/jobs")(JOBS.create(wire.create_request, lambda c: c.backend.jobs.CreateJob, wire.JOB_FIELDS))
routes.get("/jobs/{job}")(JOBS.serve)
routes.delete("/jobs/{job}")(JOBS.change(lambda c: c.backend.jobs.DeleteJob, job_pb2.DeleteJobRequest, 202))
routes.post("/jobs/{job}/enable")(JOBS.change(lambda c: c.backend.jobs.EnableJob, job_pb2.EnableJobRequest, 202))


routes.get("/jobs")(listing.lister(
    JOBS, lambda c: c.backend.jobs.ListJobs,
    lambda _, size, token, flt: job_pb2.ListJobsRequest(page_size=size, page_token=token, filter=flt),
    "jobs", schema=wire.JOB_FILTER, states=JOB_STATES))


@routes.patch("/jobs/{job}")
async def patch_job(request: web.Request) -> web.Response:
    return await _update(request, replace=False)


@routes.put("/jobs/{job}")
async def replace_job(request: web.Request) -> web.Response:
    return await _update(request, replace=True)


async def _update(request: web.Request, *, replace: bool) -> web.Response:
    """Azure's Job - Patch and Job - Update on UpdateJob: If-Match goes with the call and is
    checked in the same step as the change; the other conditions are checked by a read."""
    call = caller(request)
    update, pool = wire.update_request(request.match_info["job"], await read_body(request), replace=replace)
    await precondition(request, lambda: JOBS.current(request), skip=("if-match",))
    update.if_match = request.headers.get("If-Match", "")
    if pool is not None and f"pools/{pool}" != (current := await JOBS.read(request)).pool:
        raise unsupported_property("poolInfo.poolId", f"a job stays on its pool ({current.pool})")
    if not update.update_mask.paths:
        job = await JOBS.read(request)  # nothing to change: still a 404 or 412 where due
        conditions.evaluate({"if-match": update.if_match}, job.etag, None, read=False)
    else:
        job = await call(call.backend.jobs.UpdateJob, update, wire.JOB_FIELDS)
    return empty(200, version=version(job, base_url(request)))


@routes.post("/jobs/{job}/terminate")
async def terminate_job(request: web.Request) -> web.Response:
    call = caller(request)
    terminate = wire.terminate_request(request.match_info["job"],
                                       await read_body(request, required=False))
    await precondition(request, lambda: JOBS.current(request))
    await call(call.backend.jobs.TerminateJob, terminate)
    return empty(202)


@routes.post("/jobs/{job}/disable")
async def disable_job(request: web.Request) -> web.Response:
    call = caller(request)
    disable = wire.disable_request(request.match_info["job"], await read_body(request))
    await precondition(request, lambda: JOBS.current(request))
    await call(call.backend.jobs.DisableJob, disable, {"disable_tasks": "disableTasks"})
    return empty(202)


@routes.get("/jobs/{job}/taskcounts")
async def task_counts(request: web.Request) -> web.Response:
    job = await JOBS.read(request)
    return json_response(wire.task_counts_json(job.task_counts))


# Job schedules.

def schedule_version(s: job_schedule_pb2.JobSchedule, base: str) -> Versioned:
    return Versioned.of(wire.schedule_json(s, base), s.create_time, s.state_transition_time)


SCHEDULES = Resource(lambda request: f"jobSchedules/{request.match_info['schedule']}",
                     lambda c: c.backend.schedules.GetJobSchedule,
                     job_schedule_pb2.GetJobScheduleRequest, schedule_version, SCHEDULE)

routes.post("/jobschedules")(SCHEDULES.create(
    wire.create_schedule_request, lambda c: c.backend.schedules.CreateJobSchedule, wire.SCHEDULE_FIELDS))
routes.get("/jobschedules/{schedule}", allow_head=False)(SCHEDULES.serve)
routes.head("/jobschedules/{schedule}")(SCHEDULES.exists)
routes.delete("/jobschedules/{schedule}")(SCHEDULES.change(
    lambda c: c.backend.schedules.DeleteJobSchedule, job_schedule_pb2.DeleteJobScheduleRequest, 202))
routes.post("/jobschedules/{schedule}/disable")(SCHEDULES.change(
    lambda c: c.backend.schedules.DisableJobSchedule, job_schedule_pb2.DisableJobScheduleRequest, 204))
routes.post("/jobschedules/{schedule}/enable")(SCHEDULES.change(
    lambda c: c.backend.schedules.EnableJobSchedule, job_schedule_pb2.EnableJobScheduleRequest, 204))
routes.post("/jobschedules/{schedule}/terminate")(SCHEDULES.change(
    lambda c: c.backend.schedules.TerminateJobSchedule, job_schedule_pb2.TerminateJobScheduleRequest, 202))


routes.get("/jobschedules")(listing.lister(
    SCHEDULES, lambda c: c.backend.schedules.ListJobSchedules,
    lambda _, size, token, flt: job_schedule_pb2.ListJobSchedulesRequest(page_size=size, page_token=token),
    "job_schedules", schema=wire.SCHEDULE_FILTER))
