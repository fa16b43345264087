import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import job_pb2 as _job_pb2
from shoal.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Schedule(_message.Message):
    __slots__ = ("do_not_run_until", "do_not_run_after", "recurrence_interval", "cron")
    DO_NOT_RUN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    DO_NOT_RUN_AFTER_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    do_not_run_until: _timestamp_pb2.Timestamp
    do_not_run_after: _timestamp_pb2.Timestamp
    recurrence_interval: _duration_pb2.Duration
    cron: str
    def __init__(self, do_not_run_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., do_not_run_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recurrence_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cron: _Optional[str] = ...) -> None: ...

class JobSpecification(_message.Message):
    __slots__ = ("job", "tasks")
    JOB_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    tasks: _containers.RepeatedCompositeFieldContainer[_task_pb2.CreateTaskRequest]
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[_task_pb2.CreateTaskRequest, _Mapping]]] = ...) -> None: ...

class JobSchedule(_message.Message):
    __slots__ = ("name", "display_name", "schedule", "job_specification", "state", "next_run_time", "recent_job", "jobs_created", "create_time", "state_transition_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[JobSchedule.State]
        ACTIVE: _ClassVar[JobSchedule.State]
        DISABLED: _ClassVar[JobSchedule.State]
        COMPLETED: _ClassVar[JobSchedule.State]
    STATE_UNSPECIFIED: JobSchedule.State
    ACTIVE: JobSchedule.State
    DISABLED: JobSchedule.State
    COMPLETED: JobSchedule.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    JOB_SPECIFICATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    RECENT_JOB_FIELD_NUMBER: _ClassVar[int]
    JOBS_CREATED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    schedule: Schedule
    job_specification: JobSpecification
    state: JobSchedule.State
    next_run_time: _timestamp_pb2.Timestamp
    recent_job: str
    jobs_created: int
    create_time: _timestamp_pb2.Timestamp
    state_transition_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., job_specification: _Optional[_Union[JobSpecification, _Mapping]] = ..., state: _Optional[_Union[JobSchedule.State, str]] = ..., next_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recent_job: _Optional[str] = ..., jobs_created: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateJobScheduleRequest(_message.Message):
    __slots__ = ("job_schedule_id", "job_schedule")
    JOB_SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    job_schedule_id: str
    job_schedule: JobSchedule
    def __init__(self, job_schedule_id: _Optional[str] = ..., job_schedule: _Optional[_Union[JobSchedule, _Mapping]] = ...) -> None: ...

class GetJobScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListJobSchedulesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobSchedulesResponse(_message.Message):
    __slots__ = ("job_schedules", "next_page_token")
    JOB_SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_schedules: _containers.RepeatedCompositeFieldContainer[JobSchedule]
    next_page_token: str
    def __init__(self, job_schedules: _Optional[_Iterable[_Union[JobSchedule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DisableJobScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class EnableJobScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TerminateJobScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteJobScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...
