"""Job schedule calls of the client: `Client` inherits these methods.

    client.create_job_schedule("nightly", pool_id="p", cron="0 3 * * *",
                               tasks=[{"id": "render", "command_line": "render.sh"}],
                               on_all_tasks_complete="terminate_job")

A schedule creates a job `{schedule}-{n}` at each run time, with the template's tasks, and at
most one active job at a time: a run that comes due while its previous job has not completed
waits for it. Give the template `on_all_tasks_complete="terminate_job"` (or end its jobs
yourself), or the first job never completes and no second one is made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf import timestamp_pb2

from shoal.enums import enum_name
from shoal.errors import ShoalError, StatusCode
from shoal.listing import Listing
from shoal.specs import SpecError
from shoal.task_options import duration_proto
from shoal.task_specs import TaskSpec, create_task_request
from shoal.v1 import job_pb2, job_schedule_pb2, job_schedule_pb2_grpc, task_pb2

T = TypeVar("T")
Moment = datetime | float
"""A time: an aware datetime (a naive one is taken as local time), or seconds since the epoch."""


def schedule_name(schedule_id: str) -> str:
    return f"jobSchedules/{schedule_id}"


def _timestamp(value: Moment | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    seconds = value.timestamp() if isinstance(value, datetime) else float(value)
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(round(seconds * 1e9)))
    return ts


def _template_tasks(
    tasks: Iterable[TaskSpec | Mapping[str, Any] | task_pb2.CreateTaskRequest],
) -> list[task_pb2.CreateTaskRequest]:
    out = []
    for i, item in enumerate(tasks):
        try:
            if isinstance(item, task_pb2.CreateTaskRequest):
                out.append(item)
            else:
                out.append(create_task_request(
                    item if isinstance(item, TaskSpec) else TaskSpec.from_dict(item)))
        except (SpecError, ValueError) as e:
            field = f"tasks[{i}]"
            raise ShoalError(StatusCode.INVALID_ARGUMENT, f"{field}: {e}",
                             reason="INVALID_ARGUMENT", field=field) from None
    return out


class JobScheduleMethods:
    """Job schedules. Mixed into `Client`."""

    if TYPE_CHECKING:
        _channel: Any

        def _call(
            self, method: Callable[..., T], request: Any, timeout: float | None = None
        ) -> T: ...

        def _pages(
            self, method: Callable[..., Any], request: Any, items: str, max_page: int = ...
        ) -> Listing[Any]: ...

    @cached_property
    def _job_schedules(self) -> job_schedule_pb2_grpc.JobScheduleServiceStub:
        return job_schedule_pb2_grpc.JobScheduleServiceStub(self._channel)

    def create_job_schedule(
        self,
        schedule_id: str,
        *,
        pool_id: str = "",
        every: float | None = None,
        cron: str = "",
        do_not_run_until: Moment | None = None,
        do_not_run_after: Moment | None = None,
        tasks: Iterable[TaskSpec | Mapping[str, Any] | task_pb2.CreateTaskRequest] = (),
        priority: int = 0,
        on_all_tasks_complete: str | int = "no_action",
        display_name: str = "",
        job: job_pb2.Job | None = None,
    ) -> job_schedule_pb2.JobSchedule:
        """A schedule that creates a job on `pool_id` every `every` seconds, or at the matches
        of a 5-field `cron` expression (UTC), or once (neither) — from `do_not_run_until` (else
        now) and never after `do_not_run_after`. Each job gets `tasks` (TaskSpec, mappings
        like add_tasks takes, or CreateTaskRequest). `job` gives the whole job template
        instead of pool_id, priority and on_all_tasks_complete."""
        if job is None:
            job = job_pb2.Job(
                pool=f"pools/{pool_id}" if pool_id else "",
                priority=priority,
                on_all_tasks_complete=enum_name(
                    job_pb2.OnAllTasksComplete, on_all_tasks_complete, "on_all_tasks_complete",
                    {"TERMINATE": "TERMINATE_JOB"}),
            )
        schedule = job_schedule_pb2.Schedule(
            do_not_run_until=_timestamp(do_not_run_until),
            do_not_run_after=_timestamp(do_not_run_after),
            cron=cron,
        )
        interval = duration_proto(every)
        if interval is not None:
            schedule.recurrence_interval.CopyFrom(interval)
        request = job_schedule_pb2.CreateJobScheduleRequest(
            job_schedule_id=schedule_id,
            job_schedule=job_schedule_pb2.JobSchedule(
                display_name=display_name,
                schedule=schedule,
                job_specification=job_schedule_pb2.JobSpecification(
                    job=job, tasks=_template_tasks(tasks)),
            ),
        )
        return self._call(self._job_schedules.CreateJobSchedule, request)

    def get_job_schedule(self, schedule_id: str) -> job_schedule_pb2.JobSchedule:
        request = job_schedule_pb2.GetJobScheduleRequest(name=schedule_name(schedule_id))
        return self._call(self._job_schedules.GetJobSchedule, request)

    def list_job_schedules(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> Listing[job_schedule_pb2.JobSchedule]:
        request = job_schedule_pb2.ListJobSchedulesRequest(
            page_size=page_size, page_token=page_token)
        return self._pages(self._job_schedules.ListJobSchedules, request, "job_schedules")

    def disable_job_schedule(self, schedule_id: str) -> job_schedule_pb2.JobSchedule:
        """No more jobs until enabled; its current job goes on."""
        request = job_schedule_pb2.DisableJobScheduleRequest(name=schedule_name(schedule_id))
        return self._call(self._job_schedules.DisableJobSchedule, request)

    def enable_job_schedule(self, schedule_id: str) -> job_schedule_pb2.JobSchedule:
        """Jobs again; a run that came due while disabled is made at once (once)."""
        request = job_schedule_pb2.EnableJobScheduleRequest(name=schedule_name(schedule_id))
        return self._call(self._job_schedules.EnableJobSchedule, request)

    def terminate_job_schedule(self, schedule_id: str) -> job_schedule_pb2.JobSchedule:
        """Complete the schedule and terminate its active job."""
        request = job_schedule_pb2.TerminateJobScheduleRequest(name=schedule_name(schedule_id))
        return self._call(self._job_schedules.TerminateJobSchedule, request)

    def delete_job_schedule(self, schedule_id: str) -> None:
        """Delete the schedule and every job it created."""
        request = job_schedule_pb2.DeleteJobScheduleRequest(name=schedule_name(schedule_id))
        self._call(self._job_schedules.DeleteJobSchedule, request)
