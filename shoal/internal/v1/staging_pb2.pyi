from google.protobuf import empty_pb2 as _empty_pb2
from shoal.agent.v1 import agent_pb2 as _agent_pb2
from shoal.v1 import application_pb2 as _application_pb2
from shoal.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DownloadSpec(_message.Message):
    __slots__ = ("resource_files", "application_packages")
    RESOURCE_FILES_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_PACKAGES_FIELD_NUMBER: _ClassVar[int]
    resource_files: _containers.RepeatedCompositeFieldContainer[_task_pb2.ResourceFile]
    application_packages: _containers.RepeatedCompositeFieldContainer[_application_pb2.ApplicationPackageReference]
    def __init__(self, resource_files: _Optional[_Iterable[_Union[_task_pb2.ResourceFile, _Mapping]]] = ..., application_packages: _Optional[_Iterable[_Union[_application_pb2.ApplicationPackageReference, _Mapping]]] = ...) -> None: ...

class GrantDownloadsRequest(_message.Message):
    __slots__ = ("specs",)
    SPECS_FIELD_NUMBER: _ClassVar[int]
    specs: _containers.RepeatedCompositeFieldContainer[DownloadSpec]
    def __init__(self, specs: _Optional[_Iterable[_Union[DownloadSpec, _Mapping]]] = ...) -> None: ...

class DownloadGrant(_message.Message):
    __slots__ = ("downloads", "packages", "failure")
    DOWNLOADS_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    downloads: _containers.RepeatedCompositeFieldContainer[_agent_pb2.Download]
    packages: _containers.RepeatedCompositeFieldContainer[_agent_pb2.PackageGrant]
    failure: _task_pb2.FailureInfo
    def __init__(self, downloads: _Optional[_Iterable[_Union[_agent_pb2.Download, _Mapping]]] = ..., packages: _Optional[_Iterable[_Union[_agent_pb2.PackageGrant, _Mapping]]] = ..., failure: _Optional[_Union[_task_pb2.FailureInfo, _Mapping]] = ...) -> None: ...

class GrantDownloadsResponse(_message.Message):
    __slots__ = ("grants",)
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[DownloadGrant]
    def __init__(self, grants: _Optional[_Iterable[_Union[DownloadGrant, _Mapping]]] = ...) -> None: ...

class UploadSpec(_message.Message):
    __slots__ = ("job_uid", "job_id", "task_id", "attempt_id", "output_files", "uploads")
    JOB_UID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    job_uid: str
    job_id: str
    task_id: str
    attempt_id: str
    output_files: _containers.RepeatedCompositeFieldContainer[_task_pb2.OutputFile]
    uploads: _containers.RepeatedCompositeFieldContainer[_agent_pb2.UploadWanted]
    def __init__(self, job_uid: _Optional[str] = ..., job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., output_files: _Optional[_Iterable[_Union[_task_pb2.OutputFile, _Mapping]]] = ..., uploads: _Optional[_Iterable[_Union[_agent_pb2.UploadWanted, _Mapping]]] = ...) -> None: ...

class GrantUploadsRequest(_message.Message):
    __slots__ = ("specs",)
    SPECS_FIELD_NUMBER: _ClassVar[int]
    specs: _containers.RepeatedCompositeFieldContainer[UploadSpec]
    def __init__(self, specs: _Optional[_Iterable[_Union[UploadSpec, _Mapping]]] = ...) -> None: ...

class UploadGrant(_message.Message):
    __slots__ = ("urls", "failure")
    URLS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedScalarFieldContainer[str]
    failure: _task_pb2.FailureInfo
    def __init__(self, urls: _Optional[_Iterable[str]] = ..., failure: _Optional[_Union[_task_pb2.FailureInfo, _Mapping]] = ...) -> None: ...

class GrantUploadsResponse(_message.Message):
    __slots__ = ("grants",)
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[UploadGrant]
    def __init__(self, grants: _Optional[_Iterable[_Union[UploadGrant, _Mapping]]] = ...) -> None: ...

class ReadTaskLogRequest(_message.Message):
    __slots__ = ("job_uid", "job_id", "task_id", "attempt_id", "file", "offset")
    JOB_UID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    job_uid: str
    job_id: str
    task_id: str
    attempt_id: str
    file: str
    offset: int
    def __init__(self, job_uid: _Optional[str] = ..., job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., file: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class DeleteJobLogsRequest(_message.Message):
    __slots__ = ("job_uid", "job_id")
    JOB_UID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_uid: str
    job_id: str
    def __init__(self, job_uid: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...
