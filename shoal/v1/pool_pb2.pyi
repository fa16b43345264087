import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shoal.v1 import application_pb2 as _application_pb2
from shoal.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeFillType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_FILL_TYPE_UNSPECIFIED: _ClassVar[NodeFillType]
    SPREAD: _ClassVar[NodeFillType]
    PACK: _ClassVar[NodeFillType]

class NodeDeallocationOption(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_DEALLOCATION_OPTION_UNSPECIFIED: _ClassVar[NodeDeallocationOption]
    REQUEUE: _ClassVar[NodeDeallocationOption]
    TERMINATE: _ClassVar[NodeDeallocationOption]
    TASK_COMPLETION: _ClassVar[NodeDeallocationOption]
NODE_FILL_TYPE_UNSPECIFIED: NodeFillType
SPREAD: NodeFillType
PACK: NodeFillType
NODE_DEALLOCATION_OPTION_UNSPECIFIED: NodeDeallocationOption
REQUEUE: NodeDeallocationOption
TERMINATE: NodeDeallocationOption
TASK_COMPLETION: NodeDeallocationOption

class Pool(_message.Message):
    __slots__ = ("name", "display_name", "target_nodes", "task_slots_per_node", "provider", "state", "allocation_state", "current_nodes", "metadata", "create_time", "state_transition_time", "application_package_references", "start_task", "node_fill_type", "etag", "update_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Pool.State]
        ACTIVE: _ClassVar[Pool.State]
        DELETING: _ClassVar[Pool.State]
    STATE_UNSPECIFIED: Pool.State
    ACTIVE: Pool.State
    DELETING: Pool.State
    class AllocationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ALLOCATION_STATE_UNSPECIFIED: _ClassVar[Pool.AllocationState]
        STEADY: _ClassVar[Pool.AllocationState]
        RESIZING: _ClassVar[Pool.AllocationState]
    ALLOCATION_STATE_UNSPECIFIED: Pool.AllocationState
    STEADY: Pool.AllocationState
    RESIZING: Pool.AllocationState
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODES_FIELD_NUMBER: _ClassVar[int]
    TASK_SLOTS_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_STATE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_NODES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_PACKAGE_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    START_TASK_FIELD_NUMBER: _ClassVar[int]
    NODE_FILL_TYPE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    target_nodes: int
    task_slots_per_node: int
    provider: str
    state: Pool.State
    allocation_state: Pool.AllocationState
    current_nodes: int
    metadata: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    state_transition_time: _timestamp_pb2.Timestamp
    application_package_references: _containers.RepeatedCompositeFieldContainer[_application_pb2.ApplicationPackageReference]
    start_task: _task_pb2.StartTask
    node_fill_type: NodeFillType
    etag: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., target_nodes: _Optional[int] = ..., task_slots_per_node: _Optional[int] = ..., provider: _Optional[str] = ..., state: _Optional[_Union[Pool.State, str]] = ..., allocation_state: _Optional[_Union[Pool.AllocationState, str]] = ..., current_nodes: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., application_package_references: _Optional[_Iterable[_Union[_application_pb2.ApplicationPackageReference, _Mapping]]] = ..., start_task: _Optional[_Union[_task_pb2.StartTask, _Mapping]] = ..., node_fill_type: _Optional[_Union[NodeFillType, str]] = ..., etag: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("name", "state", "total_task_slots", "running_task_slots", "running_tasks", "completed_tasks", "last_heartbeat_time", "create_time", "state_transition_time", "hostname", "errors", "start_task_info", "scheduling_state", "revision")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Node.State]
        STARTING: _ClassVar[Node.State]
        IDLE: _ClassVar[Node.State]
        RUNNING: _ClassVar[Node.State]
        UNREACHABLE: _ClassVar[Node.State]
        LOST: _ClassVar[Node.State]
        LEAVING: _ClassVar[Node.State]
        UNUSABLE: _ClassVar[Node.State]
        START_TASK_FAILED: _ClassVar[Node.State]
    STATE_UNSPECIFIED: Node.State
    STARTING: Node.State
    IDLE: Node.State
    RUNNING: Node.State
    UNREACHABLE: Node.State
    LOST: Node.State
    LEAVING: Node.State
    UNUSABLE: Node.State
    START_TASK_FAILED: Node.State
    class SchedulingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SCHEDULING_STATE_UNSPECIFIED: _ClassVar[Node.SchedulingState]
        ENABLED: _ClassVar[Node.SchedulingState]
        DISABLED: _ClassVar[Node.SchedulingState]
    SCHEDULING_STATE_UNSPECIFIED: Node.SchedulingState
    ENABLED: Node.SchedulingState
    DISABLED: Node.SchedulingState
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TASK_SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASK_SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASKS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_TASKS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_TIME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    START_TASK_INFO_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_STATE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: Node.State
    total_task_slots: int
    running_task_slots: int
    running_tasks: int
    completed_tasks: int
    last_heartbeat_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    state_transition_time: _timestamp_pb2.Timestamp
    hostname: str
    errors: _containers.RepeatedCompositeFieldContainer[NodeError]
    start_task_info: _task_pb2.NodeTaskInfo
    scheduling_state: Node.SchedulingState
    revision: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[Node.State, str]] = ..., total_task_slots: _Optional[int] = ..., running_task_slots: _Optional[int] = ..., running_tasks: _Optional[int] = ..., completed_tasks: _Optional[int] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_transition_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., hostname: _Optional[str] = ..., errors: _Optional[_Iterable[_Union[NodeError, _Mapping]]] = ..., start_task_info: _Optional[_Union[_task_pb2.NodeTaskInfo, _Mapping]] = ..., scheduling_state: _Optional[_Union[Node.SchedulingState, str]] = ..., revision: _Optional[int] = ...) -> None: ...

class DisableNodeSchedulingRequest(_message.Message):
    __slots__ = ("name", "node_disable_scheduling_option")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_DISABLE_SCHEDULING_OPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    node_disable_scheduling_option: NodeDeallocationOption
    def __init__(self, name: _Optional[str] = ..., node_disable_scheduling_option: _Optional[_Union[NodeDeallocationOption, str]] = ...) -> None: ...

class EnableNodeSchedulingRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RebootNodeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveNodesRequest(_message.Message):
    __slots__ = ("parent", "node_ids", "node_deallocation_option")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    NODE_DEALLOCATION_OPTION_FIELD_NUMBER: _ClassVar[int]
    parent: str
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    node_deallocation_option: NodeDeallocationOption
    def __init__(self, parent: _Optional[str] = ..., node_ids: _Optional[_Iterable[str]] = ..., node_deallocation_option: _Optional[_Union[NodeDeallocationOption, str]] = ...) -> None: ...

class NodeError(_message.Message):
    __slots__ = ("code", "message", "time")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePoolRequest(_message.Message):
    __slots__ = ("pool_id", "pool")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    pool: Pool
    def __init__(self, pool_id: _Optional[str] = ..., pool: _Optional[_Union[Pool, _Mapping]] = ...) -> None: ...

class GetPoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListPoolsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListPoolsResponse(_message.Message):
    __slots__ = ("pools", "next_page_token")
    POOLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[Pool]
    next_page_token: str
    def __init__(self, pools: _Optional[_Iterable[_Union[Pool, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ResizePoolRequest(_message.Message):
    __slots__ = ("name", "target_nodes", "node_deallocation_option")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODES_FIELD_NUMBER: _ClassVar[int]
    NODE_DEALLOCATION_OPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    target_nodes: int
    node_deallocation_option: NodeDeallocationOption
    def __init__(self, name: _Optional[str] = ..., target_nodes: _Optional[int] = ..., node_deallocation_option: _Optional[_Union[NodeDeallocationOption, str]] = ...) -> None: ...

class UpdatePoolRequest(_message.Message):
    __slots__ = ("name", "pool", "update_mask", "if_match")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    IF_MATCH_FIELD_NUMBER: _ClassVar[int]
    name: str
    pool: Pool
    update_mask: _field_mask_pb2.FieldMask
    if_match: str
    def __init__(self, name: _Optional[str] = ..., pool: _Optional[_Union[Pool, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., if_match: _Optional[str] = ...) -> None: ...

class DeletePoolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListNodesRequest(_message.Message):
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

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes", "next_page_token", "revision")
    NODES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    next_page_token: str
    revision: int
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class GetNodeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchNodesRequest(_message.Message):
    __slots__ = ("parent", "from_revision")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    FROM_REVISION_FIELD_NUMBER: _ClassVar[int]
    parent: str
    from_revision: int
    def __init__(self, parent: _Optional[str] = ..., from_revision: _Optional[int] = ...) -> None: ...

class WatchNodesResponse(_message.Message):
    __slots__ = ("events", "revision")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[NodeEvent]
    revision: int
    def __init__(self, events: _Optional[_Iterable[_Union[NodeEvent, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class NodeEvent(_message.Message):
    __slots__ = ("revision", "type", "node")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[NodeEvent.Type]
        ADDED: _ClassVar[NodeEvent.Type]
        MODIFIED: _ClassVar[NodeEvent.Type]
        DELETED: _ClassVar[NodeEvent.Type]
        CURRENT: _ClassVar[NodeEvent.Type]
    TYPE_UNSPECIFIED: NodeEvent.Type
    ADDED: NodeEvent.Type
    MODIFIED: NodeEvent.Type
    DELETED: NodeEvent.Type
    CURRENT: NodeEvent.Type
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    type: NodeEvent.Type
    node: Node
    def __init__(self, revision: _Optional[int] = ..., type: _Optional[_Union[NodeEvent.Type, str]] = ..., node: _Optional[_Union[Node, _Mapping]] = ...) -> None: ...
