import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import pool_pb2 as _pool_pb2
from shoal.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchNodeSessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeSessionsChanged(_message.Message):
    __slots__ = ("pools", "resync")
    class Pool(_message.Message):
        __slots__ = ("account", "pool_id")
        ACCOUNT_FIELD_NUMBER: _ClassVar[int]
        POOL_ID_FIELD_NUMBER: _ClassVar[int]
        account: str
        pool_id: str
        def __init__(self, account: _Optional[str] = ..., pool_id: _Optional[str] = ...) -> None: ...
    POOLS_FIELD_NUMBER: _ClassVar[int]
    RESYNC_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[NodeSessionsChanged.Pool]
    resync: bool
    def __init__(self, pools: _Optional[_Iterable[_Union[NodeSessionsChanged.Pool, _Mapping]]] = ..., resync: _Optional[bool] = ...) -> None: ...

class SetNodeSchedulingRequest(_message.Message):
    __slots__ = ("pool_id", "node_id", "enabled", "option")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    OPTION_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    node_id: str
    enabled: bool
    option: _pool_pb2.NodeDeallocationOption
    def __init__(self, pool_id: _Optional[str] = ..., node_id: _Optional[str] = ..., enabled: _Optional[bool] = ..., option: _Optional[_Union[_pool_pb2.NodeDeallocationOption, str]] = ...) -> None: ...

class ListNodeSessionsRequest(_message.Message):
    __slots__ = ("pool_id",)
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    def __init__(self, pool_id: _Optional[str] = ...) -> None: ...

class NodeSession(_message.Message):
    __slots__ = ("node_id", "state", "total_slots", "running_slots", "running_tasks", "completed_tasks", "last_heartbeat_time", "hostname", "removing", "setup_failure", "start_task_info", "errors", "scheduling_disabled")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[NodeSession.State]
        CONNECTED: _ClassVar[NodeSession.State]
        UNREACHABLE: _ClassVar[NodeSession.State]
        LOST: _ClassVar[NodeSession.State]
    STATE_UNSPECIFIED: NodeSession.State
    CONNECTED: NodeSession.State
    UNREACHABLE: NodeSession.State
    LOST: NodeSession.State
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASKS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_TASKS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    REMOVING_FIELD_NUMBER: _ClassVar[int]
    SETUP_FAILURE_FIELD_NUMBER: _ClassVar[int]
    START_TASK_INFO_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_DISABLED_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    state: NodeSession.State
    total_slots: int
    running_slots: int
    running_tasks: int
    completed_tasks: int
    last_heartbeat_time: _timestamp_pb2.Timestamp
    hostname: str
    removing: bool
    setup_failure: _task_pb2.FailureInfo
    start_task_info: _task_pb2.NodeTaskInfo
    errors: _containers.RepeatedCompositeFieldContainer[_pool_pb2.NodeError]
    scheduling_disabled: bool
    def __init__(self, node_id: _Optional[str] = ..., state: _Optional[_Union[NodeSession.State, str]] = ..., total_slots: _Optional[int] = ..., running_slots: _Optional[int] = ..., running_tasks: _Optional[int] = ..., completed_tasks: _Optional[int] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., hostname: _Optional[str] = ..., removing: _Optional[bool] = ..., setup_failure: _Optional[_Union[_task_pb2.FailureInfo, _Mapping]] = ..., start_task_info: _Optional[_Union[_task_pb2.NodeTaskInfo, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[_pool_pb2.NodeError, _Mapping]]] = ..., scheduling_disabled: _Optional[bool] = ...) -> None: ...

class ListNodeSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[NodeSession]
    def __init__(self, sessions: _Optional[_Iterable[_Union[NodeSession, _Mapping]]] = ...) -> None: ...

class RemoveNodesRequest(_message.Message):
    __slots__ = ("pool_id", "node_ids", "option")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    OPTION_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    option: _pool_pb2.NodeDeallocationOption
    def __init__(self, pool_id: _Optional[str] = ..., node_ids: _Optional[_Iterable[str]] = ..., option: _Optional[_Union[_pool_pb2.NodeDeallocationOption, str]] = ...) -> None: ...
