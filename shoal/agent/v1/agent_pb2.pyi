import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import application_pb2 as _application_pb2
from shoal.v1 import pool_pb2 as _pool_pb2
from shoal.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobTaskKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK: _ClassVar[JobTaskKind]
    JOB_PREPARATION: _ClassVar[JobTaskKind]

class StagingKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGING_KIND_UNSPECIFIED: _ClassVar[StagingKind]
    DOWNLOADS: _ClassVar[StagingKind]
    UPLOADS: _ClassVar[StagingKind]
TASK: JobTaskKind
JOB_PREPARATION: JobTaskKind
STAGING_KIND_UNSPECIFIED: StagingKind
DOWNLOADS: StagingKind
UPLOADS: StagingKind

class RegisterNodeRequest(_message.Message):
    __slots__ = ("join_token", "node_id", "hostname")
    JOIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    join_token: str
    node_id: str
    hostname: str
    def __init__(self, join_token: _Optional[str] = ..., node_id: _Optional[str] = ..., hostname: _Optional[str] = ...) -> None: ...

class RegisterNodeResponse(_message.Message):
    __slots__ = ("node", "credential", "scheduler_address", "task_slots", "application_packages", "setup_failure", "start_task")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TASK_SLOTS_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    SETUP_FAILURE_FIELD_NUMBER: _ClassVar[int]
    START_TASK_FIELD_NUMBER: _ClassVar[int]
    node: str
    credential: str
    scheduler_address: str
    task_slots: int
    application_packages: _containers.RepeatedCompositeFieldContainer[PackageGrant]
    setup_failure: _task_pb2.FailureInfo
    start_task: StartTaskRun
    def __init__(self, node: _Optional[str] = ..., credential: _Optional[str] = ..., scheduler_address: _Optional[str] = ..., task_slots: _Optional[int] = ..., application_packages: _Optional[_Iterable[_Union[PackageGrant, _Mapping]]] = ..., setup_failure: _Optional[_Union[_task_pb2.FailureInfo, _Mapping]] = ..., start_task: _Optional[_Union[StartTaskRun, _Mapping]] = ...) -> None: ...

class StartTaskRun(_message.Message):
    __slots__ = ("spec", "downloads", "failure")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    DOWNLOADS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    spec: _task_pb2.StartTask
    downloads: _containers.RepeatedCompositeFieldContainer[Download]
    failure: _task_pb2.FailureInfo
    def __init__(self, spec: _Optional[_Union[_task_pb2.StartTask, _Mapping]] = ..., downloads: _Optional[_Iterable[_Union[Download, _Mapping]]] = ..., failure: _Optional[_Union[_task_pb2.FailureInfo, _Mapping]] = ...) -> None: ...

class Download(_message.Message):
    __slots__ = ("url", "file_path", "file_mode", "cache_key", "size", "sha256")
    URL_FIELD_NUMBER: _ClassVar[int]
    FILE_PATH_FIELD_NUMBER: _ClassVar[int]
    FILE_MODE_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    url: str
    file_path: str
    file_mode: int
    cache_key: str
    size: int
    sha256: str
    def __init__(self, url: _Optional[str] = ..., file_path: _Optional[str] = ..., file_mode: _Optional[int] = ..., cache_key: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class PackageGrant(_message.Message):
    __slots__ = ("application_id", "version", "format", "archive", "is_default")
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    version: str
    format: _application_pb2.ApplicationVersion.Format
    archive: Download
    is_default: bool
    def __init__(self, application_id: _Optional[str] = ..., version: _Optional[str] = ..., format: _Optional[_Union[_application_pb2.ApplicationVersion.Format, str]] = ..., archive: _Optional[_Union[Download, _Mapping]] = ..., is_default: _Optional[bool] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "started", "results", "file_chunks", "staging_requests", "start_task_info", "node_errors")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    FILE_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    STAGING_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    START_TASK_INFO_FIELD_NUMBER: _ClassVar[int]
    NODE_ERRORS_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    started: _containers.RepeatedCompositeFieldContainer[TaskStarted]
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    file_chunks: _containers.RepeatedCompositeFieldContainer[FileChunk]
    staging_requests: _containers.RepeatedCompositeFieldContainer[StagingRequest]
    start_task_info: _task_pb2.NodeTaskInfo
    node_errors: _containers.RepeatedCompositeFieldContainer[_pool_pb2.NodeError]
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., started: _Optional[_Iterable[_Union[TaskStarted, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ..., file_chunks: _Optional[_Iterable[_Union[FileChunk, _Mapping]]] = ..., staging_requests: _Optional[_Iterable[_Union[StagingRequest, _Mapping]]] = ..., start_task_info: _Optional[_Union[_task_pb2.NodeTaskInfo, _Mapping]] = ..., node_errors: _Optional[_Iterable[_Union[_pool_pb2.NodeError, _Mapping]]] = ...) -> None: ...

class UploadWanted(_message.Message):
    __slots__ = ("container", "key")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    container: str
    key: str
    def __init__(self, container: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class StagingRequest(_message.Message):
    __slots__ = ("attempt_id", "kind", "uploads", "job_task")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    JOB_TASK_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    kind: StagingKind
    uploads: _containers.RepeatedCompositeFieldContainer[UploadWanted]
    job_task: JobTaskKind
    def __init__(self, attempt_id: _Optional[str] = ..., kind: _Optional[_Union[StagingKind, str]] = ..., uploads: _Optional[_Iterable[_Union[UploadWanted, _Mapping]]] = ..., job_task: _Optional[_Union[JobTaskKind, str]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("node", "credential", "task_slots", "running_attempts", "finished_attempts", "setup_failure", "start_task_info", "agent_version", "hostname")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    TASK_SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SETUP_FAILURE_FIELD_NUMBER: _ClassVar[int]
    START_TASK_INFO_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    node: str
    credential: str
    task_slots: int
    running_attempts: _containers.RepeatedScalarFieldContainer[str]
    finished_attempts: _containers.RepeatedScalarFieldContainer[str]
    setup_failure: _task_pb2.FailureInfo
    start_task_info: _task_pb2.NodeTaskInfo
    agent_version: str
    hostname: str
    def __init__(self, node: _Optional[str] = ..., credential: _Optional[str] = ..., task_slots: _Optional[int] = ..., running_attempts: _Optional[_Iterable[str]] = ..., finished_attempts: _Optional[_Iterable[str]] = ..., setup_failure: _Optional[_Union[_task_pb2.FailureInfo, _Mapping]] = ..., start_task_info: _Optional[_Union[_task_pb2.NodeTaskInfo, _Mapping]] = ..., agent_version: _Optional[str] = ..., hostname: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sequence", "free_slots", "load_average", "disk_free_bytes")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVERAGE_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    free_slots: int
    load_average: float
    disk_free_bytes: int
    def __init__(self, sequence: _Optional[int] = ..., free_slots: _Optional[int] = ..., load_average: _Optional[float] = ..., disk_free_bytes: _Optional[int] = ...) -> None: ...

class TaskStarted(_message.Message):
    __slots__ = ("attempt_id", "start_time")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, attempt_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("attempt_id", "exit_code", "start_time", "end_time", "failure_info")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    FAILURE_INFO_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    exit_code: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    failure_info: _task_pb2.FailureInfo
    def __init__(self, attempt_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failure_info: _Optional[_Union[_task_pb2.FailureInfo, _Mapping]] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("request_id", "data", "offset", "eof", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EOF_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    data: bytes
    offset: int
    eof: bool
    error: str
    def __init__(self, request_id: _Optional[int] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ..., eof: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class SchedulerMessage(_message.Message):
    __slots__ = ("welcome", "assignments", "cancel_attempts", "ack_attempts", "file_reads", "drain", "staging_grants", "jobs_ended", "deleted_tasks", "attempt_constraints", "heartbeat_seen")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ACK_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FILE_READS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    STAGING_GRANTS_FIELD_NUMBER: _ClassVar[int]
    JOBS_ENDED_FIELD_NUMBER: _ClassVar[int]
    DELETED_TASKS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SEEN_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    cancel_attempts: _containers.RepeatedScalarFieldContainer[str]
    ack_attempts: _containers.RepeatedScalarFieldContainer[str]
    file_reads: _containers.RepeatedCompositeFieldContainer[FileRead]
    drain: Drain
    staging_grants: _containers.RepeatedCompositeFieldContainer[StagingGrant]
    jobs_ended: _containers.RepeatedCompositeFieldContainer[JobEnded]
    deleted_tasks: _containers.RepeatedCompositeFieldContainer[TaskRef]
    attempt_constraints: _containers.RepeatedCompositeFieldContainer[AttemptConstraints]
    heartbeat_seen: int
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ..., cancel_attempts: _Optional[_Iterable[str]] = ..., ack_attempts: _Optional[_Iterable[str]] = ..., file_reads: _Optional[_Iterable[_Union[FileRead, _Mapping]]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ..., staging_grants: _Optional[_Iterable[_Union[StagingGrant, _Mapping]]] = ..., jobs_ended: _Optional[_Iterable[_Union[JobEnded, _Mapping]]] = ..., deleted_tasks: _Optional[_Iterable[_Union[TaskRef, _Mapping]]] = ..., attempt_constraints: _Optional[_Iterable[_Union[AttemptConstraints, _Mapping]]] = ..., heartbeat_seen: _Optional[int] = ...) -> None: ...

class AttemptConstraints(_message.Message):
    __slots__ = ("attempt_id", "max_wall_clock_time", "retention_time")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    RETENTION_TIME_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    max_wall_clock_time: _duration_pb2.Duration
    retention_time: _duration_pb2.Duration
    def __init__(self, attempt_id: _Optional[str] = ..., max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retention_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TaskRef(_message.Message):
    __slots__ = ("job_id", "task_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    task_id: str
    def __init__(self, job_id: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class JobEnded(_message.Message):
    __slots__ = ("job_id", "job_uid", "release", "downloads", "failure")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_UID_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    DOWNLOADS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    job_uid: int
    release: _task_pb2.JobReleaseTask
    downloads: _containers.RepeatedCompositeFieldContainer[Download]
    failure: _task_pb2.FailureInfo
    def __init__(self, job_id: _Optional[str] = ..., job_uid: _Optional[int] = ..., release: _Optional[_Union[_task_pb2.JobReleaseTask, _Mapping]] = ..., downloads: _Optional[_Iterable[_Union[Download, _Mapping]]] = ..., failure: _Optional[_Union[_task_pb2.FailureInfo, _Mapping]] = ...) -> None: ...

class StagingGrant(_message.Message):
    __slots__ = ("attempt_id", "kind", "job_task", "downloads", "packages", "upload_urls", "failure")
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    JOB_TASK_FIELD_NUMBER: _ClassVar[int]
    DOWNLOADS_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_URLS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    kind: StagingKind
    job_task: JobTaskKind
    downloads: _containers.RepeatedCompositeFieldContainer[Download]
    packages: _containers.RepeatedCompositeFieldContainer[PackageGrant]
    upload_urls: _containers.RepeatedScalarFieldContainer[str]
    failure: _task_pb2.FailureInfo
    def __init__(self, attempt_id: _Optional[str] = ..., kind: _Optional[_Union[StagingKind, str]] = ..., job_task: _Optional[_Union[JobTaskKind, str]] = ..., downloads: _Optional[_Iterable[_Union[Download, _Mapping]]] = ..., packages: _Optional[_Iterable[_Union[PackageGrant, _Mapping]]] = ..., upload_urls: _Optional[_Iterable[str]] = ..., failure: _Optional[_Union[_task_pb2.FailureInfo, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("heartbeat_interval", "cancel_attempts", "upload_logs", "fence_after")
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CANCEL_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_LOGS_FIELD_NUMBER: _ClassVar[int]
    FENCE_AFTER_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval: _duration_pb2.Duration
    cancel_attempts: _containers.RepeatedScalarFieldContainer[str]
    upload_logs: bool
    fence_after: _duration_pb2.Duration
    def __init__(self, heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cancel_attempts: _Optional[_Iterable[str]] = ..., upload_logs: _Optional[bool] = ..., fence_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("attempt_id", "job_id", "task_id", "command_line", "environment", "max_wall_clock_time", "required_slots", "attempt_number", "files", "job_preparation_task", "job_uid", "retention_time")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    MAX_WALL_CLOCK_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SLOTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    JOB_PREPARATION_TASK_FIELD_NUMBER: _ClassVar[int]
    JOB_UID_FIELD_NUMBER: _ClassVar[int]
    RETENTION_TIME_FIELD_NUMBER: _ClassVar[int]
    attempt_id: str
    job_id: str
    task_id: str
    command_line: str
    environment: _containers.ScalarMap[str, str]
    max_wall_clock_time: _duration_pb2.Duration
    required_slots: int
    attempt_number: int
    files: TaskFiles
    job_preparation_task: _task_pb2.JobPreparationTask
    job_uid: int
    retention_time: _duration_pb2.Duration
    def __init__(self, attempt_id: _Optional[str] = ..., job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., command_line: _Optional[str] = ..., environment: _Optional[_Mapping[str, str]] = ..., max_wall_clock_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., required_slots: _Optional[int] = ..., attempt_number: _Optional[int] = ..., files: _Optional[_Union[TaskFiles, _Mapping]] = ..., job_preparation_task: _Optional[_Union[_task_pb2.JobPreparationTask, _Mapping]] = ..., job_uid: _Optional[int] = ..., retention_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TaskFiles(_message.Message):
    __slots__ = ("resource_files", "output_files", "application_packages")
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    resource_files: _containers.RepeatedCompositeFieldContainer[_task_pb2.ResourceFile]
    output_files: _containers.RepeatedCompositeFieldContainer[_task_pb2.OutputFile]
    application_packages: _containers.RepeatedCompositeFieldContainer[_application_pb2.ApplicationPackageReference]
    def __init__(self, resource_files: _Optional[_Iterable[_Union[_task_pb2.ResourceFile, _Mapping]]] = ..., output_files: _Optional[_Iterable[_Union[_task_pb2.OutputFile, _Mapping]]] = ..., application_packages: _Optional[_Iterable[_Union[_application_pb2.ApplicationPackageReference, _Mapping]]] = ...) -> None: ...

class FileRead(_message.Message):
    __slots__ = ("request_id", "attempt_id", "job_id", "task_id", "path", "offset", "from_end")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FROM_END_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    attempt_id: str
    job_id: str
    task_id: str
    path: str
    offset: int
    from_end: int
    def __init__(self, request_id: _Optional[int] = ..., attempt_id: _Optional[str] = ..., job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ..., from_end: _Optional[int] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ("leave",)
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    leave: bool
    def __init__(self, leave: _Optional[bool] = ...) -> None: ...
