import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DisableJobOption(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISABLE_JOB_OPTION_UNSPECIFIED: _ClassVar[DisableJobOption]
    DISABLE_REQUEUE: _ClassVar[DisableJobOption]
    DISABLE_TERMINATE: _ClassVar[DisableJobOption]
    DISABLE_WAIT: _ClassVar[DisableJobOption]

class OnTaskFailure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_TASK_FAILURE_UNSPECIFIED: _ClassVar[OnTaskFailure]
    NO_ACTION_ON_FAILURE: _ClassVar[OnTaskFailure]
    PERFORM_EXIT_OPTIONS_JOB_ACTION: _ClassVar[OnTaskFailure]

class OnAllTasksComplete(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_ALL_TASKS_COMPLETE_UNSPECIFIED: _ClassVar[OnAllTasksComplete]
    NO_ACTION: _ClassVar[OnAllTasksComplete]
    TERMINATE_JOB: _ClassVar[OnAllTasksComplete]
DISABLE_JOB_OPTION_UNSPECIFIED: DisableJobOption
DISABLE_REQUEUE: DisableJobOption
DISABLE_TERMINATE: DisableJobOption
DISABLE_WAIT: DisableJobOption
ON_TASK_FAILURE_UNSPECIFIED: OnTaskFailure
NO_ACTION_ON_FAILURE: OnTaskFailure
PERFORM_EXIT_OPTIONS_JOB_ACTION: OnTaskFailure
ON_ALL_TASKS_COMPLETE_UNSPECIFIED: OnAllTasksComplete
NO_ACTION: OnAllTasksComplete
TERMINATE_JOB: OnAllTasksComplete

class JobConstraints(_message.Message):
    __slots__ = ("max_wall_clock_time", "max_task_retry_count")
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    max_wall_clock_time: _duration_pb2.Duration
    max_task_retry_count: int
    def __init__(self, max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_task_retry_count: _Optional[int] = ...) -> None: ...

class TaskCounts(_message.Message):
    __slots__ = ("active", "running", "completed", "succeeded", "failed")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    active: int
    running: int
    completed: int
    succeeded: int
    failed: int
    def __init__(self, active: _Optional[int] = ..., running: _Optional[int] = ..., completed: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "display_name", "pool", "priority", "on_all_tasks_complete", "state", "task_counts", "terminate_reason", "metadata", "create_time", "state_transition_time", "end_time", "job_preparation_task", "job_release_task", "uses_task_dependencies", "max_parallel_tasks", "constraints", "on_task_failure", "job_schedule", "etag", "update_time", "revision")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Job.State]
        ACTIVE: _ClassVar[Job.State]
        TERMINATING: _ClassVar[Job.State]
        COMPLETED: _ClassVar[Job.State]
        DELETING: _ClassVar[Job.State]
        DISABLING: _ClassVar[Job.State]
        DISABLED: _ClassVar[Job.State]
    STATE_UNSPECIFIED: Job.State
    ACTIVE: Job.State
    TERMINATING: Job.State
    COMPLETED: Job.State
    DELETING: Job.State
    DISABLING: Job.State
    DISABLED: Job.State
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ON_ALL_TASKS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TASK_COUNTS_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_REASON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_PREPARATION_TASK_FIELD_NUMBER: _ClassVar[int]
    JOB_RELEASE_TASK_FIELD_NUMBER: _ClassVar[int]
    USES_TASK_DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_TASKS_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    ON_TASK_FAILURE_FIELD_NUMBER: _ClassVar[int]
    JOB_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    pool: str
    priority: int
    on_all_tasks_complete: OnAllTasksComplete
    state: Job.State
    task_counts: TaskCounts
    terminate_reason: str
    metadata: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    state_transition_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    job_preparation_task: _task_pb2.JobPreparationTask
    job_release_task: _task_pb2.JobReleaseTask
    uses_task_dependencies: bool
    max_parallel_tasks: int
    constraints: JobConstraints
    on_task_failure: OnTaskFailure
    job_schedule: str
    etag: str
    update_time: _timestamp_pb2.Timestamp
    revision: int
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., pool: _Optional[str] = ..., priority: _Optional[int] = ..., on_all_tasks_complete: _Optional[_Union[OnAllTasksComplete, str]] = ..., state: _Optional[_Union[Job.State, str]] = ..., task_counts: _Optional[_Union[TaskCounts, _Mapping]] = ..., terminate_reason: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_preparation_task: _Optional[_Union[_task_pb2.JobPreparationTask, _Mapping]] = ..., job_release_task: _Optional[_Union[_task_pb2.JobReleaseTask, _Mapping]] = ..., uses_task_dependencies: _Optional[bool] = ..., max_parallel_tasks: _Optional[int] = ..., constraints: _Optional[_Union[JobConstraints, _Mapping]] = ..., on_task_failure: _Optional[_Union[OnTaskFailure, str]] = ..., job_schedule: _Optional[str] = ..., etag: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("job_id", "job")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    job: Job
    def __init__(self, job_id: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token", "revision")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    revision: int
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class TerminateJobRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DisableJobRequest(_message.Message):
    __slots__ = ("name", "disable_tasks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISABLE_TASKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    disable_tasks: DisableJobOption
    def __init__(self, name: _Optional[str] = ..., disable_tasks: _Optional[_Union[DisableJobOption, str]] = ...) -> None: ...

class EnableJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UpdateJobRequest(_message.Message):
    __slots__ = ("name", "job", "update_mask", "if_match")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    IF_MATCH_FIELD_NUMBER: _ClassVar[int]
    name: str
    job: Job
    update_mask: _field_mask_pb2.FieldMask
    if_match: str
    def __init__(self, name: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., if_match: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("name", "from_revision", "task_filter", "job_only", "job_summary")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_REVISION_FIELD_NUMBER: _ClassVar[int]
    TASK_FILTER_FIELD_NUMBER: _ClassVar[int]
    JOB_ONLY_FIELD_NUMBER: _ClassVar[int]
    JOB_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    name: str
    from_revision: int
    task_filter: str
    job_only: bool
    job_summary: bool
    def __init__(self, name: _Optional[str] = ..., from_revision: _Optional[int] = ..., task_filter: _Optional[str] = ..., job_only: _Optional[bool] = ..., job_summary: _Optional[bool] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("events", "revision")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[JobEvent]
    revision: int
    def __init__(self, events: _Optional[_Iterable[_Union[JobEvent, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("revision", "type", "job", "task", "update_mask")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[JobEvent.Type]
        ADDED: _ClassVar[JobEvent.Type]
        MODIFIED: _ClassVar[JobEvent.Type]
        DELETED: _ClassVar[JobEvent.Type]
        CURRENT: _ClassVar[JobEvent.Type]
    TYPE_UNSPECIFIED: JobEvent.Type
    ADDED: JobEvent.Type
    MODIFIED: JobEvent.Type
    DELETED: JobEvent.Type
    CURRENT: JobEvent.Type
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    revision: int
    type: JobEvent.Type
    job: Job
    task: _task_pb2.Task
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, revision: _Optional[int] = ..., type: _Optional[_Union[JobEvent.Type, str]] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...
