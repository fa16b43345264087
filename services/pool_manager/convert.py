"""Protobuf <-> model for the pool-manager, pure."""

from __future__ import annotations

from dataclasses import replace

from google.protobuf.timestamp_pb2 import Timestamp

from services.common.command_specs import check_node_command
from services.common.errors import invalid
from services.common.file_specs import check_package_refs
from services.common.ids import check_metadata, parse_name
from services.common.timeutil import from_timestamp, to_timestamp
from services.common.updates import check_if_match, check_name, mask_fields
from services.pool_manager.model import (
    POOL_UPDATABLE,
    DeallocationOption,
    NewPool,
    NodeError,
    NodeFillType,
    NodeView,
    PoolChanges,
    PoolView,
    ReportedSession,
    SessionState,
    validate_new_pool,
)
from services.pool_manager.node_changes import ChangeType, NodeChange
from shoal.internal.v1 import scheduler_control_pb2 as sc_pb2
from shoal.v1 import application_pb2, pool_pb2, task_pb2


def new_pool(req: pool_pb2.CreatePoolRequest) -> NewPool:
    p = req.pool
    packages = _app_packages(p)
    new = validate_new_pool(
        pool_id=req.pool_id,
        target_nodes=p.target_nodes,
        task_slots_per_node=p.task_slots_per_node,
        provider=p.provider,
        display_name=p.display_name,
        metadata=dict(p.metadata),
    )
    return replace(new, app_packages=packages, start_task=_start_task(p),
                   node_fill_type=fill_type(p.node_fill_type))


# The checks of a pool's updatable settings, shared by create and update (the same field,
# the same error).

def _app_packages(p: pool_pb2.Pool) -> tuple[tuple[str, str], ...]:
    refs = p.application_package_references
    check_package_refs(refs, "pool.application_package_references")
    return tuple((r.application_id, r.version) for r in refs)


def _start_task(p: pool_pb2.Pool) -> bytes | None:
    return check_node_command(p.start_task, "pool.start_task") if p.HasField("start_task") else None


def _metadata(p: pool_pb2.Pool) -> dict[str, str]:
    return check_metadata(dict(p.metadata), "pool.metadata")


UPDATE_PATHS: dict[str, tuple[str, ...]] = {
    "start_task": ("start_task",),
    "application_package_references": ("app_packages",),
    "metadata": ("metadata",),
    "*": POOL_UPDATABLE,
}
"""UpdatePool's mask paths -> the model.Pool settings they change."""
_CHECKS = {"start_task": _start_task, "app_packages": _app_packages, "metadata": _metadata}


def pool_changes(req: pool_pb2.UpdatePoolRequest) -> PoolChanges:
    """The changes an UpdatePoolRequest asks for, checked as CreatePool checks them. Only
    masked fields are read (AIP-134: the others are ignored, whatever they hold)."""
    check_name(req.pool.name, req.name, "pool.name")
    check_if_match(req.if_match)
    fields = mask_fields(req.update_mask.paths, UPDATE_PATHS)
    return PoolChanges(fields, **{f: _CHECKS[f](req.pool) for f in fields})  # type: ignore[arg-type]


def fill_type(value: int) -> NodeFillType:
    if value == pool_pb2.NODE_FILL_TYPE_UNSPECIFIED:
        return NodeFillType.SPREAD
    try:
        return NodeFillType(pool_pb2.NodeFillType.Name(value))
    except ValueError:
        raise invalid("pool.node_fill_type", f"unknown node fill type {value}") from None


def pool_id(name: str, field: str = "name") -> str:
    return parse_name(name, "pools/{pool}", field)[0]


def node_ids(name: str, field: str = "name") -> tuple[str, str]:
    pool, node = parse_name(name, "pools/{pool}/nodes/{node}", field)
    return pool, node


def option_from_proto(value: int, field: str = "node_deallocation_option") -> DeallocationOption:
    if value == pool_pb2.NODE_DEALLOCATION_OPTION_UNSPECIFIED:
        return DeallocationOption.REQUEUE  # Azure Batch's default
    try:
        return DeallocationOption(pool_pb2.NodeDeallocationOption.Name(value))
    except ValueError:
        raise invalid(field, f"unknown option {value}") from None


def option_to_proto(option: DeallocationOption) -> str:
    """The enum value's name, which protobuf message constructors accept."""
    return option.value


def _ts(seconds: float | None) -> Timestamp | None:
    return to_timestamp(seconds)


def pool_to_proto(view: PoolView) -> pool_pb2.Pool:
    p = view.pool
    return pool_pb2.Pool(
        name=f"pools/{p.id}",
        display_name=p.display_name,
        target_nodes=p.target_nodes,
        task_slots_per_node=p.task_slots_per_node,
        provider=p.provider,
        state=p.state.value,
        allocation_state=view.allocation_state.value,
        current_nodes=view.current_nodes,
        metadata=p.metadata,
        create_time=_ts(p.create_time),
        state_transition_time=_ts(p.state_transition_time),
        application_package_references=[
            application_pb2.ApplicationPackageReference(application_id=a, version=v)
            for a, v in p.app_packages
        ],
        start_task=task_pb2.StartTask.FromString(p.start_task) if p.start_task else None,
        node_fill_type=p.node_fill_type.value,
        etag=p.etag,
        update_time=_ts(p.update_time),
    )


def node_to_proto(view: NodeView) -> pool_pb2.Node:
    return pool_pb2.Node(
        name=f"pools/{view.pool_id}/nodes/{view.node_id}",
        state=view.state.value,
        total_task_slots=view.total_task_slots,
        running_task_slots=view.running_task_slots,
        running_tasks=view.running_tasks,
        completed_tasks=view.completed_tasks,
        last_heartbeat_time=_ts(view.last_heartbeat_time),
        create_time=_ts(view.create_time),
        state_transition_time=_ts(view.state_transition_time),
        hostname=view.hostname,
        errors=[
            pool_pb2.NodeError(code=e.code, message=e.message, time=_ts(e.time))
            for e in view.errors
        ],
        start_task_info=task_pb2.NodeTaskInfo.FromString(view.start_task_info)
        if view.start_task_info else None,
        scheduling_state=pool_pb2.Node.ENABLED if view.scheduling_enabled
        else pool_pb2.Node.DISABLED,
    )


_SESSION_STATES = {
    sc_pb2.NodeSession.CONNECTED: SessionState.CONNECTED,
    sc_pb2.NodeSession.UNREACHABLE: SessionState.UNREACHABLE,
    sc_pb2.NodeSession.LOST: SessionState.LOST,
}


def session_from_proto(s: sc_pb2.NodeSession) -> ReportedSession:
    return ReportedSession(
        node_id=s.node_id,
        # A state this version does not know is not evidence the node works.
        state=_SESSION_STATES.get(s.state, SessionState.UNREACHABLE),
        total_slots=s.total_slots,
        running_slots=s.running_slots,
        running_tasks=s.running_tasks,
        completed_tasks=s.completed_tasks,
        last_heartbeat_time=from_timestamp(s.last_heartbeat_time),
        hostname=s.hostname,
        removing=s.removing,
        setup_failure=NodeError(s.setup_failure.code, s.setup_failure.message,
                                from_timestamp(s.last_heartbeat_time) or 0.0)
        if s.HasField("setup_failure") and s.setup_failure.code else None,
        start_task_info=s.start_task_info.SerializeToString()
        if s.HasField("start_task_info") else None,
        errors=tuple(NodeError(e.code, e.message, from_timestamp(e.time) or 0.0) for e in s.errors),
        scheduling_disabled=s.scheduling_disabled,
    )


_EVENT_TYPES = {
    ChangeType.ADDED: pool_pb2.NodeEvent.ADDED,
    ChangeType.MODIFIED: pool_pb2.NodeEvent.MODIFIED,
    ChangeType.DELETED: pool_pb2.NodeEvent.DELETED,
    ChangeType.CURRENT: pool_pb2.NodeEvent.CURRENT,
}


def node_events(changes: list[tuple[int, NodeChange]], revision: int) -> pool_pb2.WatchNodesResponse:
    out = pool_pb2.WatchNodesResponse(revision=revision)
    for rev, c in changes:
        if c.view is None:
            node = pool_pb2.Node(name=f"pools/{c.pool_id}/nodes/{c.node_id}")
        else:
            node = node_to_proto(c.view)
        node.revision = rev
        out.events.add(revision=rev, type=_EVENT_TYPES[c.type], node=node)
    return out
