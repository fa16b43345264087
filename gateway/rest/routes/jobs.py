"""Jobs and job schedules: Azure Batch's operations on Shoal's JobService and
JobScheduleService."""

from __future__ import annotations

from aiohttp import web

from gateway.rest import listing
from gateway.rest.http import (
    Versioned,
    base_url,
    caller,
    empty,
    entity,
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
    return Versioned.of(wire.job_json(job, base), job.create_time, job.state_transition_time)


def _name(request: web.Request) -> str:
    return f"jobs/{request.match_info['job']}"


async def _current(request: web.Request) -> Versioned:
    call = caller(request)
    job = await call(call.backend.jobs.GetJob, job_pb2.GetJobRequest(name=_name(request)))
    return version(job, base_url(request))


@routes.post("/jobs")
async def add_job(request: web.Request) -> web.Response:
    call = caller(request)
    create = wire.create_request(await read_body(request))
    job = await call(call.backend.jobs.CreateJob, create, wire.JOB_FIELDS)
    v = version(job, base_url(request))
    return empty(201, url=v.json["url"], version=v)


@routes.get("/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    call = caller(request)
    base = base_url(request)

    async def fetch(size: int, token: str, flt: str) -> tuple[list[job_pb2.Job], str]:
        page = await call(call.backend.jobs.ListJobs,
                          job_pb2.ListJobsRequest(page_size=size, page_token=token, filter=flt))
        return list(page.jobs), page.next_page_token

    return await listing.list_page(request, fetch, lambda j: version(j, base).body(),
                                   schema=wire.JOB_FILTER, metadata=JOB, states=JOB_STATES)


@routes.get("/jobs/{job}")
async def get_job(request: web.Request) -> web.Response:
    return entity(request, await _current(request), JOB)


@routes.delete("/jobs/{job}")
async def delete_job(request: web.Request) -> web.Response:
    call = caller(request)
    await precondition(request, lambda: _current(request))
    await call(call.backend.jobs.DeleteJob, job_pb2.DeleteJobRequest(name=_name(request)))
    return empty(202)


@routes.post("/jobs/{job}/terminate")
async def terminate_job(request: web.Request) -> web.Response:
    call = caller(request)
    terminate = wire.terminate_request(request.match_info["job"],
                                       await read_body(request, required=False))
    await precondition(request, lambda: _current(request))
    await call(call.backend.jobs.TerminateJob, terminate)
    return empty(202)


@routes.post("/jobs/{job}/disable")
async def disable_job(request: web.Request) -> web.Response:
    call = caller(request)
    disable = wire.disable_request(request.match_info["job"], await read_body(request))
    await precondition(request, lambda: _current(request))
    await call(call.backend.jobs.DisableJob, disable, {"disable_tasks": "disableTasks"})
    return empty(202)


@routes.post("/jobs/{job}/enable")
async def enable_job(request: web.Request) -> web.Response:
    call = caller(request)
    await precondition(request, lambda: _current(request))
    await call(call.backend.jobs.EnableJob, job_pb2.EnableJobRequest(name=_name(request)))
    return empty(202)


@routes.get("/jobs/{job}/taskcounts")
async def task_counts(request: web.Request) -> web.Response:
    call = caller(request)
    job = await call(call.backend.jobs.GetJob, job_pb2.GetJobRequest(name=_name(request)))
    return json_response(wire.task_counts_json(job.task_counts))


# Job schedules.

def schedule_version(s: job_schedule_pb2.JobSchedule, base: str) -> Versioned:
    return Versioned.of(wire.schedule_json(s, base), s.create_time, s.state_transition_time)


def _schedule_name(request: web.Request) -> str:
    return f"jobSchedules/{request.match_info['schedule']}"


async def _current_schedule(request: web.Request) -> Versioned:
    call = caller(request)
    s = await call(call.backend.schedules.GetJobSchedule,
                   job_schedule_pb2.GetJobScheduleRequest(name=_schedule_name(request)))
    return schedule_version(s, base_url(request))


@routes.post("/jobschedules")
async def add_schedule(request: web.Request) -> web.Response:
    call = caller(request)
    create = wire.create_schedule_request(await read_body(request))
    s = await call(call.backend.schedules.CreateJobSchedule, create, wire.SCHEDULE_FIELDS)
    v = schedule_version(s, base_url(request))
    return empty(201, url=v.json["url"], version=v)


@routes.get("/jobschedules")
async def list_schedules(request: web.Request) -> web.Response:
    call = caller(request)
    base = base_url(request)

    async def fetch(size: int, token: str, flt: str) -> tuple[list[job_schedule_pb2.JobSchedule], str]:
        page = await call(call.backend.schedules.ListJobSchedules,
                          job_schedule_pb2.ListJobSchedulesRequest(page_size=size, page_token=token))
        return list(page.job_schedules), page.next_page_token

    return await listing.list_page(request, fetch, lambda s: schedule_version(s, base).body(),
                                   schema=wire.SCHEDULE_FILTER, metadata=SCHEDULE)


@routes.get("/jobschedules/{schedule}", allow_head=False)
async def get_schedule(request: web.Request) -> web.Response:
    return entity(request, await _current_schedule(request), SCHEDULE)


@routes.head("/jobschedules/{schedule}")
async def schedule_exists(request: web.Request) -> web.Response:
    return empty(200, version=await _current_schedule(request))


@routes.delete("/jobschedules/{schedule}")
async def delete_schedule(request: web.Request) -> web.Response:
    call = caller(request)
    await precondition(request, lambda: _current_schedule(request))
    await call(call.backend.schedules.DeleteJobSchedule,
               job_schedule_pb2.DeleteJobScheduleRequest(name=_schedule_name(request)))
    return empty(202)


@routes.post("/jobschedules/{schedule}/disable")
async def disable_schedule(request: web.Request) -> web.Response:
    call = caller(request)
    await precondition(request, lambda: _current_schedule(request))
    await call(call.backend.schedules.DisableJobSchedule,
               job_schedule_pb2.DisableJobScheduleRequest(name=_schedule_name(request)))
    return empty(204)


@routes.post("/jobschedules/{schedule}/enable")
async def enable_schedule(request: web.Request) -> web.Response:
    call = caller(request)
    await precondition(request, lambda: _current_schedule(request))
    await call(call.backend.schedules.EnableJobSchedule,
               job_schedule_pb2.EnableJobScheduleRequest(name=_schedule_name(request)))
    return empty(204)


@routes.post("/jobschedules/{schedule}/terminate")
async def terminate_schedule(request: web.Request) -> web.Response:
    call = caller(request)
    await precondition(request, lambda: _current_schedule(request))
    await call(call.backend.schedules.TerminateJobSchedule,
               job_schedule_pb2.TerminateJobScheduleRequest(name=_schedule_name(request)))
    return empty(202)
