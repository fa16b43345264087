"""Thin grpc.aio layer of job schedules: convert the request, await the use case, convert back.

Errors are not handled here: ShoalError goes up to services.common.rpc.ServiceInterceptor.
"""

from __future__ import annotations

import structlog
from google.protobuf import empty_pb2

from services.common import paging
from services.common.ids import parse_name
from services.common.rpc import account
from services.job_scheduler import schedule_convert
from services.job_scheduler.schedule_app import JobSchedules
from shoal.v1 import job_schedule_pb2 as pb
from shoal.v1 import job_schedule_pb2_grpc


def _schedule_id(name: str) -> str:
    (sid,) = parse_name(name, "jobSchedules/{schedule}", "name")
    structlog.contextvars.bind_contextvars(job_schedule=sid)
    return sid


class JobScheduleServicer(job_schedule_pb2_grpc.JobScheduleServiceServicer):
    def __init__(self, app: JobSchedules) -> None:
        self.app = app

    async def CreateJobSchedule(
        self, request: pb.CreateJobScheduleRequest, context: object
    ) -> pb.JobSchedule:
        structlog.contextvars.bind_contextvars(job_schedule=request.job_schedule_id)
        return schedule_convert.job_schedule(await self.app.create(account(), request))

    async def GetJobSchedule(self, request: pb.GetJobScheduleRequest, context: object) -> pb.JobSchedule:
        return schedule_convert.job_schedule(self.app.get(account(), _schedule_id(request.name)))

    async def ListJobSchedules(
        self, request: pb.ListJobSchedulesRequest, context: object
    ) -> pb.ListJobSchedulesResponse:
        want = paging.PageRequest.of(request.page_size, request.page_token)
        found, token = want.page(self.app.list(account(), want.after, want.limit), lambda s: s.id)
        return pb.ListJobSchedulesResponse(
            job_schedules=[schedule_convert.job_schedule(s) for s in found], next_page_token=token)

    async def DisableJobSchedule(
        self, request: pb.DisableJobScheduleRequest, context: object
    ) -> pb.JobSchedule:
        s = await self.app.disable(account(), _schedule_id(request.name))
        return schedule_convert.job_schedule(s)

    async def EnableJobSchedule(
        self, request: pb.EnableJobScheduleRequest, context: object
    ) -> pb.JobSchedule:
        s = await self.app.enable(account(), _schedule_id(request.name))
        return schedule_convert.job_schedule(s)

    async def TerminateJobSchedule(
        self, request: pb.TerminateJobScheduleRequest, context: object
    ) -> pb.JobSchedule:
        s = await self.app.terminate(account(), _schedule_id(request.name))
        return schedule_convert.job_schedule(s)

    async def DeleteJobSchedule(
        self, request: pb.DeleteJobScheduleRequest, context: object
    ) -> empty_pb2.Empty:
        await self.app.delete(account(), _schedule_id(request.name))
        return empty_pb2.Empty()
