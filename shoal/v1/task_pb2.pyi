import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import application_pb2 as _application_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskConstraints(_message.Message):
    __slots__ = ("max_wall_clock_time", "max_task_retry_count", "retention_time")
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    RETENTION_TIME_FIELD_NUMBER: _ClassVar[int]
    max_wall_clock_time: _duration_pb2.Duration
    max_task_retry_count: int
    retention_time: _duration_pb2.Duration
    def __init__(self, max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_task_retry_count: _Optional[int] = ..., retention_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TaskDependencies(_message.Message):
    __slots__ = ("task_ids", "task_id_ranges")
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_RANGES_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    task_id_ranges: _containers.RepeatedCompositeFieldContainer[TaskIdRange]
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ..., task_id_ranges: _Optional[_Iterable[_Union[TaskIdRange, _Mapping]]] = ...) -> None: ...

class TaskIdRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class ExitOptions(_message.Message):
    __slots__ = ("job_action", "dependency_action")
    class DependencyAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DEPENDENCY_ACTION_UNSPECIFIED: _ClassVar[ExitOptions.DependencyAction]
        SATISFY: _ClassVar[ExitOptions.DependencyAction]
        BLOCK: _ClassVar[ExitOptions.DependencyAction]
    DEPENDENCY_ACTION_UNSPECIFIED: ExitOptions.DependencyAction
    SATISFY: ExitOptions.DependencyAction
    BLOCK: ExitOptions.DependencyAction
    class JobAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        JOB_ACTION_UNSPECIFIED: _ClassVar[ExitOptions.JobAction]
        NONE: _ClassVar[ExitOptions.JobAction]
        DISABLE: _ClassVar[ExitOptions.JobAction]
        TERMINATE: _ClassVar[ExitOptions.JobAction]
    JOB_ACTION_UNSPECIFIED: ExitOptions.JobAction
    NONE: ExitOptions.JobAction
    DISABLE: ExitOptions.JobAction
    TERMINATE: ExitOptions.JobAction
    JOB_ACTION_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCY_ACTION_FIELD_NUMBER: _ClassVar[int]
    job_action: ExitOptions.JobAction
    dependency_action: ExitOptions.DependencyAction
    def __init__(self, job_action: _Optional[_Union[ExitOptions.JobAction, str]] = ..., dependency_action: _Optional[_Union[ExitOptions.DependencyAction, str]] = ...) -> None: ...

class ExitCodeMapping(_message.Message):
    __slots__ = ("code", "exit_options")
    CODE_FIELD_NUMBER: _ClassVar[int]
    EXIT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    code: int
    exit_options: ExitOptions
    def __init__(self, code: _Optional[int] = ..., exit_options: _Optional[_Union[ExitOptions, _Mapping]] = ...) -> None: ...

class ExitCodeRangeMapping(_message.Message):
    __slots__ = ("start", "end", "exit_options")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    EXIT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    exit_options: ExitOptions
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., exit_options: _Optional[_Union[ExitOptions, _Mapping]] = ...) -> None: ...

class ExitConditions(_message.Message):
    __slots__ = ("exit_codes", "exit_code_ranges", "pre_processing_error", "file_upload_error", "default")
    EXIT_CODES_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_RANGES_FIELD_NUMBER: _ClassVar[int]
    PRE_PROCESSING_ERROR_FIELD_NUMBER: _ClassVar[int]
    FILE_UPLOAD_ERROR_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    exit_codes: _containers.RepeatedCompositeFieldContainer[ExitCodeMapping]
    exit_code_ranges: _containers.RepeatedCompositeFieldContainer[ExitCodeRangeMapping]
    pre_processing_error: ExitOptions
    file_upload_error: ExitOptions
    default: ExitOptions
    def __init__(self, exit_codes: _Optional[_Iterable[_Union[ExitCodeMapping, _Mapping]]] = ..., exit_code_ranges: _Optional[_Iterable[_Union[ExitCodeRangeMapping, _Mapping]]] = ..., pre_processing_error: _Optional[_Union[ExitOptions, _Mapping]] = ..., file_upload_error: _Optional[_Union[ExitOptions, _Mapping]] = ..., default: _Optional[_Union[ExitOptions, _Mapping]] = ...) -> None: ...

class ResourceFile(_message.Message):
    __slots__ = ("container", "object_key", "blob_prefix", "http_url", "file_path", "file_mode")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    BLOB_PREFIX_FIELD_NUMBER: _ClassVar[int]
    HTTP_URL_FIELD_NUMBER: _ClassVar[int]
    FILE_PATH_FIELD_NUMBER: _ClassVar[int]
    FILE_MODE_FIELD_NUMBER: _ClassVar[int]
    container: str
    object_key: str
    blob_prefix: str
    http_url: str
    file_path: str
    file_mode: str
    def __init__(self, container: _Optional[str] = ..., object_key: _Optional[str] = ..., blob_prefix: _Optional[str] = ..., http_url: _Optional[str] = ..., file_path: _Optional[str] = ..., file_mode: _Optional[str] = ...) -> None: ...

class OutputFile(_message.Message):
    __slots__ = ("file_pattern", "container", "path", "upload_condition")
    class UploadCondition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UPLOAD_CONDITION_UNSPECIFIED: _ClassVar[OutputFile.UploadCondition]
        TASK_SUCCESS: _ClassVar[OutputFile.UploadCondition]
        TASK_FAILURE: _ClassVar[OutputFile.UploadCondition]
        TASK_COMPLETION: _ClassVar[OutputFile.UploadCondition]
    UPLOAD_CONDITION_UNSPECIFIED: OutputFile.UploadCondition
    TASK_SUCCESS: OutputFile.UploadCondition
    TASK_FAILURE: OutputFile.UploadCondition
    TASK_COMPLETION: OutputFile.UploadCondition
    FILE_PATTERN_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_CONDITION_FIELD_NUMBER: _ClassVar[int]
    file_pattern: str
    container: str
    path: str
    upload_condition: OutputFile.UploadCondition
    def __init__(self, file_pattern: _Optional[str] = ..., container: _Optional[str] = ..., path: _Optional[str] = ..., upload_condition: _Optional[_Union[OutputFile.UploadCondition, str]] = ...) -> None: ...

class StartTask(_message.Message):
    __slots__ = ("command_line", "resource_files", "environment", "wait_for_success", "max_task_retry_count", "max_wall_clock_time")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    command_line: str
    resource_files: _containers.RepeatedCompositeFieldContainer[ResourceFile]
    environment: _containers.ScalarMap[str, str]
    wait_for_success: bool
    max_task_retry_count: int
    max_wall_clock_time: _duration_pb2.Duration
    def __init__(self, command_line: _Optional[str] = ..., resource_files: _Optional[_Iterable[_Union[ResourceFile, _Mapping]]] = ..., environment: _Optional[_Mapping[str, str]] = ..., wait_for_success: _Optional[bool] = ..., max_task_retry_count: _Optional[int] = ..., max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class JobPreparationTask(_message.Message):
    __slots__ = ("command_line", "resource_files", "environment", "max_task_retry_count", "max_wall_clock_time")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    command_line: str
    resource_files: _containers.RepeatedCompositeFieldContainer[ResourceFile]
    environment: _containers.ScalarMap[str, str]
    max_task_retry_count: int
    max_wall_clock_time: _duration_pb2.Duration
    def __init__(self, command_line: _Optional[str] = ..., resource_files: _Optional[_Iterable[_Union[ResourceFile, _Mapping]]] = ..., environment: _Optional[_Mapping[str, str]] = ..., max_task_retry_count: _Optional[int] = ..., max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class JobReleaseTask(_message.Message):
    __slots__ = ("command_line", "resource_files", "environment", "max_wall_clock_time")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    command_line: str
    resource_files: _containers.RepeatedCompositeFieldContainer[ResourceFile]
    environment: _containers.ScalarMap[str, str]
    max_wall_clock_time: _duration_pb2.Duration
    def __init__(self, command_line: _Optional[str] = ..., resource_files: _Optional[_Iterable[_Union[ResourceFile, _Mapping]]] = ..., environment: _Optional[_Mapping[str, str]] = ..., max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class NodeTaskInfo(_message.Message):
    __slots__ = ("state", "result", "exit_code", "failure_info", "retry_count", "start_time", "end_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[NodeTaskInfo.State]
        RUNNING: _ClassVar[NodeTaskInfo.State]
        COMPLETED: _ClassVar[NodeTaskInfo.State]
    STATE_UNSPECIFIED: NodeTaskInfo.State
    RUNNING: NodeTaskInfo.State
    COMPLETED: NodeTaskInfo.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_INFO_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    state: NodeTaskInfo.State
    result: TaskExecutionInfo.Result
    exit_code: int
    failure_info: FailureInfo
    retry_count: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[NodeTaskInfo.State, str]] = ..., result: _Optional[_Union[TaskExecutionInfo.Result, str]] = ..., exit_code: _Optional[int] = ..., failure_info: _Optional[_Union[FailureInfo, _Mapping]] = ..., retry_count: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FailureInfo(_message.Message):
    __slots__ = ("category", "code", "message")
    class Category(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CATEGORY_UNSPECIFIED: _ClassVar[FailureInfo.Category]
        USER_ERROR: _ClassVar[FailureInfo.Category]
        SERVER_ERROR: _ClassVar[FailureInfo.Category]
    CATEGORY_UNSPECIFIED: FailureInfo.Category
    USER_ERROR: FailureInfo.Category
    SERVER_ERROR: FailureInfo.Category
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    category: FailureInfo.Category
    code: str
    message: str
    def __init__(self, category: _Optional[_Union[FailureInfo.Category, str]] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class TaskAttempt(_message.Message):
    __slots__ = ("attempt_id", "node", "start_time", "end_time", "exit_code", "failure_info")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_INFO_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    node: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    exit_code: int
    failure_info: FailureInfo
    def __init__(self, attempt_id: _Optional[str] = ..., node: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., failure_info: _Optional[_Union[FailureInfo, _Mapping]] = ...) -> None: ...

class TaskExecutionInfo(_message.Message):
    __slots__ = ("start_time", "end_time", "exit_code", "result", "failure_info", "retry_count", "requeue_count", "node", "attempt_id", "previous_attempts")
    class Result(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RESULT_UNSPECIFIED: _ClassVar[TaskExecutionInfo.Result]
        SUCCESS: _ClassVar[TaskExecutionInfo.Result]
        FAILURE: _ClassVar[TaskExecutionInfo.Result]
    RESULT_UNSPECIFIED: TaskExecutionInfo.Result
    SUCCESS: TaskExecutionInfo.Result
    FAILURE: TaskExecutionInfo.Result
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_INFO_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    REQUEUE_COUNT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    exit_code: int
    result: TaskExecutionInfo.Result
    failure_info: FailureInfo
    retry_count: int
    requeue_count: int
    node: str
    attempt_id: str
    previous_attempts: _containers.RepeatedCompositeFieldContainer[TaskAttempt]
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., result: _Optional[_Union[TaskExecutionInfo.Result, str]] = ..., failure_info: _Optional[_Union[FailureInfo, _Mapping]] = ..., retry_count: _Optional[int] = ..., requeue_count: _Optional[int] = ..., node: _Optional[str] = ..., attempt_id: _Optional[str] = ..., previous_attempts: _Optional[_Iterable[_Union[TaskAttempt, _Mapping]]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("name", "display_name", "command_line", "environment", "constraints", "state", "execution_info", "create_time", "state_transition_time", "resource_files", "output_files", "application_package_references", "depends_on", "exit_conditions", "required_slots", "priority", "state_reason", "etag", "update_time", "revision")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Task.State]
        ACTIVE: _ClassVar[Task.State]
        PREPARING: _ClassVar[Task.State]
        RUNNING: _ClassVar[Task.State]
        COMPLETED: _ClassVar[Task.State]
    STATE_UNSPECIFIED: Task.State
    ACTIVE: Task.State
    PREPARING: Task.State
    RUNNING: Task.State
    COMPLETED: Task.State
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_INFO_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_PACKAGE_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    EXIT_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SLOTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    command_line: str
    environment: _containers.ScalarMap[str, str]
    constraints: TaskConstraints
    state: Task.State
    execution_info: TaskExecutionInfo
    create_time: _timestamp_pb2.Timestamp
    state_transition_time: _timestamp_pb2.Timestamp
    resource_files: _containers.RepeatedCompositeFieldContainer[ResourceFile]
    output_files: _containers.RepeatedCompositeFieldContainer[OutputFile]
    application_package_references: _containers.RepeatedCompositeFieldContainer[_application_pb2.ApplicationPackageReference]
    depends_on: TaskDependencies
    exit_conditions: ExitConditions
    required_slots: int
    priority: int
    state_reason: str
    etag: str
    update_time: _timestamp_pb2.Timestamp
    revision: int
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., command_line: _Optional[str] = ..., environment: _Optional[_Mapping[str, str]] = ..., constraints: _Optional[_Union[TaskConstraints, _Mapping]] = ..., state: _Optional[_Union[Task.State, str]] = ..., execution_info: _Optional[_Union[TaskExecutionInfo, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resource_files: _Optional[_Iterable[_Union[ResourceFile, _Mapping]]] = ..., output_files: _Optional[_Iterable[_Union[OutputFile, _Mapping]]] = ..., application_package_references: _Optional[_Iterable[_Union[_application_pb2.ApplicationPackageReference, _Mapping]]] = ..., depends_on: _Optional[_Union[TaskDependencies, _Mapping]] = ..., exit_conditions: _Optional[_Union[ExitConditions, _Mapping]] = ..., required_slots: _Optional[int] = ..., priority: _Optional[int] = ..., state_reason: _Optional[str] = ..., etag: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class CreateTaskRequest(_message.Message):
    __slots__ = ("parent", "task_id", "task")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    parent: str
    task_id: str
    task: Task
    def __init__(self, parent: _Optional[str] = ..., task_id: _Optional[str] = ..., task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class BatchCreateTasksRequest(_message.Message):
    __slots__ = ("parent", "requests")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    parent: str
    requests: _containers.RepeatedCompositeFieldContainer[CreateTaskRequest]
    def __init__(self, parent: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[CreateTaskRequest, _Mapping]]] = ...) -> None: ...

class BatchCreateTasksResponse(_message.Message):
    __slots__ = ("created_count",)
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    created_count: int
    def __init__(self, created_count: _Optional[int] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "filter")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    filter: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token", "revision")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    next_page_token: str
    revision: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class TerminateTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ReactivateTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnblockTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UpdateTaskRequest(_message.Message):
    __slots__ = ("name", "task", "update_mask", "if_match")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    IF_MATCH_FIELD_NUMBER: _ClassVar[int]
    name: str
    task: Task
    update_mask: _field_mask_pb2.FieldMask
    if_match: str
    def __init__(self, name: _Optional[str] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., if_match: _Optional[str] = ...) -> None: ...

class ExplainTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TaskExplanation(_message.Message):
    __slots__ = ("state", "summary", "reasons", "details")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    state: Task.State
    summary: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    details: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, state: _Optional[_Union[Task.State, str]] = ..., summary: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., details: _Optional[_Iterable[str]] = ...) -> None: ...

class ReadTaskFileRequest(_message.Message):
    __slots__ = ("name", "path", "offset", "follow", "tail_lines")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    offset: int
    follow: bool
    tail_lines: int
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ..., tail_lines: _Optional[int] = ...) -> None: ...

class TaskFileChunk(_message.Message):
    __slots__ = ("data", "offset")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ...) -> None: ...
