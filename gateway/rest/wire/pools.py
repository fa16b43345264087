"""Pools and nodes: Azure Batch's JSON <-> Shoal's protobuf, pure."""

from __future__ import annotations

from typing import Any

from gateway.rest import odata
from gateway.rest.errors import autoscale_not_supported, invalid_property, unsupported_property
from gateway.rest.wire.common import (
    Body,
    compact,
    duration_field,
    environment_in,
    format_time,
    last_segment,
    name_value_list,
    name_values,
    packages_in,
    packages_out,
    refuse_containers,
    resource_files_in,
    resource_files_out,
)
from shoal.v1 import pool_pb2, task_pb2

Pool = pool_pb2.Pool
Node = pool_pb2.Node

POOL_STATES = {Pool.ACTIVE: "active", Pool.DELETING: "deleting"}
ALLOCATION_STATES = {Pool.STEADY: "steady", Pool.RESIZING: "resizing"}
FILL_TYPES = {"spread": pool_pb2.SPREAD, "pack": pool_pb2.PACK}
DEALLOCATION = {
    "requeue": pool_pb2.REQUEUE,
    "terminate": pool_pb2.TERMINATE,
    "taskcompletion": pool_pb2.TASK_COMPLETION,
}
NODE_STATES = {
    Node.STARTING: "starting",
    Node.IDLE: "idle",
    Node.RUNNING: "running",
    Node.UNREACHABLE: "unknown",
    Node.LOST: "unknown",
    Node.LEAVING: "leavingpool",
    Node.UNUSABLE: "unusable",
    Node.START_TASK_FAILED: "starttaskfailed",
}
SCHEDULING_STATES = {Node.ENABLED: "enabled", Node.DISABLED: "disabled"}
START_TASK_STATES = {task_pb2.NodeTaskInfo.RUNNING: "running", task_pb2.NodeTaskInfo.COMPLETED: "completed"}
RESULTS = {task_pb2.TaskExecutionInfo.SUCCESS: "success", task_pb2.TaskExecutionInfo.FAILURE: "failure"}
CATEGORIES = {task_pb2.FailureInfo.USER_ERROR: "usererror", task_pb2.FailureInfo.SERVER_ERROR: "servererror"}

POOL_FILTER: odata.Schema = {
    "id": odata.STRING,
    "displayName": odata.STRING,
    "state": odata.enum(POOL_STATES.values()),
    "allocationState": odata.enum(ALLOCATION_STATES.values()),
    "creationTime": odata.DATETIME,
    "stateTransitionTime": odata.DATETIME,
    "targetDedicatedNodes": odata.INT,
    "currentDedicatedNodes": odata.INT,
    "taskSlotsPerNode": odata.INT,
}
NODE_FILTER: odata.Schema = {
    "id": odata.STRING,
    "state": odata.enum(set(NODE_STATES.values())),
    "schedulingState": odata.enum(SCHEDULING_STATES.values()),
    "stateTransitionTime": odata.DATETIME,
    "runningTasksCount": odata.INT,
    "totalTasksRun": odata.INT,
}
# Shoal's request fields as the Azure properties they came from, for error messages.
POOL_FIELDS = {
    "pool_id": "id",
    "pool.target_nodes": "targetDedicatedNodes",
    "pool.task_slots_per_node": "taskSlotsPerNode",
    "pool.start_task.environment": "startTask.environmentSettings",
    "pool.start_task": "startTask",
    "pool.node_fill_type": "taskSchedulingPolicy.nodeFillType",
    "pool": "",
    "update_mask": "body",
    "target_nodes": "targetDedicatedNodes",
}


def create_request(body: Body) -> pool_pb2.CreatePoolRequest:
    """Azure's pool (add) body as CreatePoolRequest. vmSize, virtualMachineConfiguration,
    resizeTimeout and network settings describe Azure's machines and are not used: Shoal's
    nodes are its providers' agents."""
    pool_id = body.string("id", required=True) or ""
    if body.flag("enableAutoScale") or body.has("autoScaleFormula"):
        raise autoscale_not_supported()
    _refuse_low_priority(body)
    body.refuse("enableInterNodeCommunication", "Shoal has no multi-instance tasks", unless=False)
    body.refuse("mountConfiguration", "Shoal mounts no file systems on its nodes")
    body.refuse("userAccounts", "tasks run as the node agent's user")
    body.refuse("certificateReferences", "Shoal has no certificates")
    pool = Pool(
        display_name=body.text("displayName"),
        target_nodes=body.integer("targetDedicatedNodes") or 0,
        task_slots_per_node=body.integer("taskSlotsPerNode") or 0,
        metadata=name_values(body.objs("metadata"), "metadata"),
        application_package_references=packages_in(body),
    )
    policy = body.obj("taskSchedulingPolicy")
    if policy is not None:
        pool.node_fill_type = policy.choice("nodeFillType", FILL_TYPES, pool_pb2.SPREAD)
    start = body.obj("startTask")
    if start is not None:
        pool.start_task.CopyFrom(start_task_in(start))
    return pool_pb2.CreatePoolRequest(pool_id=pool_id, pool=pool)


def _refuse_low_priority(body: Body) -> None:
    low = body.integer("targetLowPriorityNodes")
    if low:
        raise unsupported_property(body.name("targetLowPriorityNodes"),
                                   "Shoal has no Spot or low-priority nodes; use targetDedicatedNodes")


def start_task_in(body: Body) -> task_pb2.StartTask:
    refuse_containers(body)
    retries = body.integer("maxTaskRetryCount")
    if retries is not None and retries < 0:
        raise invalid_property(body.name("maxTaskRetryCount"), "Shoal retries at most 100 times; -1 (unlimited) is not supported")
    task = task_pb2.StartTask(
        command_line=body.string("commandLine", required=True) or "",
        resource_files=resource_files_in(body),
        environment=environment_in(body),
        max_task_retry_count=retries or 0,
    )
    wait = body.flag("waitForSuccess")
    if wait is not None:
        task.wait_for_success = wait
    constraints = body.obj("constraints")
    if constraints is not None:
        limit = constraints.duration("maxWallClockTime")
        if limit is not None:
            task.max_wall_clock_time.CopyFrom(limit)
    return task


def start_task_out(task: task_pb2.StartTask) -> dict[str, Any]:
    return compact({
        "commandLine": task.command_line,
        "resourceFiles": resource_files_out(task.resource_files),
        "environmentSettings": name_value_list(task.environment),
        "maxTaskRetryCount": task.max_task_retry_count,
        "waitForSuccess": task.wait_for_success if task.HasField("wait_for_success") else True,
        "constraints": compact({"maxWallClockTime": duration_field(task, "max_wall_clock_time")}) or None,
    })


def pool_json(pool: Pool, base: str) -> dict[str, Any]:
    pool_id = last_segment(pool.name)
    return compact({
        "id": pool_id,
        "url": f"{base}/pools/{pool_id}",
        "displayName": pool.display_name or None,
        "creationTime": format_time(pool.create_time),
        "state": POOL_STATES.get(pool.state),
        "stateTransitionTime": format_time(pool.state_transition_time),
        "allocationState": ALLOCATION_STATES.get(pool.allocation_state),
        "currentDedicatedNodes": pool.current_nodes,
        "currentLowPriorityNodes": 0,
        "targetDedicatedNodes": pool.target_nodes,
        "targetLowPriorityNodes": 0,
        "enableAutoScale": False,
        "enableInterNodeCommunication": False,
        "taskSlotsPerNode": pool.task_slots_per_node,
        "taskSchedulingPolicy": {
            "nodeFillType": "pack" if pool.node_fill_type == pool_pb2.PACK else "spread"
        },
        "startTask": start_task_out(pool.start_task) if pool.HasField("start_task") else None,
        "applicationPackageReferences": packages_out(pool.application_package_references),
        "metadata": name_value_list(pool.metadata),
    })


# Azure's updatable pool properties -> UpdatePool's mask paths.
POOL_UPDATABLE = {
    "startTask": "start_task",
    "applicationPackageReferences": "application_package_references",
    "metadata": "metadata",
}


def update_request(pool_id: str, body: Body, *, replace: bool) -> pool_pb2.UpdatePoolRequest:
    """A Pool - Patch (only the properties given change) or, with `replace`, a Pool - Update
    Properties (all three are set; one left out is cleared) as UpdatePoolRequest. What a pool
    is made of (slots, fill type, VM settings) is fixed at creation in Shoal."""
    for key in ("taskSlotsPerNode", "taskSchedulingPolicy", "targetNodeCommunicationMode",
                "userAccounts", "mountConfiguration", "networkConfiguration"):
        body.refuse(key, "a Shoal pool keeps it as created")
    pool = Pool(
        metadata=name_values(body.objs("metadata"), "metadata"),
        application_package_references=packages_in(body),
    )
    start = body.obj("startTask")
    if start is not None:
        pool.start_task.CopyFrom(start_task_in(start))
    paths = ["*"] if replace else [p for key, p in POOL_UPDATABLE.items() if key in body.raw]
    request = pool_pb2.UpdatePoolRequest(name=f"pools/{pool_id}", pool=pool)
    request.update_mask.paths.extend(paths)
    return request


def resize_request(pool_id: str, body: Body) -> pool_pb2.ResizePoolRequest:
    _refuse_low_priority(body)
    target = body.integer("targetDedicatedNodes")
    return pool_pb2.ResizePoolRequest(
        name=f"pools/{pool_id}",
        target_nodes=target or 0,
        node_deallocation_option=body.choice("nodeDeallocationOption", DEALLOCATION, pool_pb2.REQUEUE),
    )


def node_json(node: Node, base: str) -> dict[str, Any]:
    _, pool_id, _, node_id = node.name.split("/")
    url = f"{base}/pools/{pool_id}/nodes/{node_id}"
    return compact({
        "id": node_id,
        "url": url,
        "state": NODE_STATES.get(node.state),
        "schedulingState": SCHEDULING_STATES.get(node.scheduling_state, "enabled"),
        "stateTransitionTime": format_time(node.state_transition_time),
        "lastBootTime": format_time(node.create_time),
        "allocationTime": format_time(node.create_time),
        "totalTasksRun": node.completed_tasks,
        "runningTasksCount": node.running_tasks,
        "runningTaskSlotsCount": node.running_task_slots,
        "isDedicated": True,
        "errors": [compact({"code": e.code, "message": e.message}) for e in node.errors],
        "startTaskInfo": node_task_info(node.start_task_info) if node.HasField("start_task_info") else None,
        "nodeAgentInfo": {"version": "shoal", "lastUpdateTime": format_time(node.create_time)},
    })


def node_task_info(info: task_pb2.NodeTaskInfo) -> dict[str, Any]:
    return compact({
        "state": START_TASK_STATES.get(info.state),
        "startTime": format_time(info.start_time),
        "endTime": format_time(info.end_time),
        "exitCode": info.exit_code if info.HasField("exit_code") else None,
        "retryCount": info.retry_count,
        "result": RESULTS.get(info.result),
        "failureInfo": failure_info(info.failure_info) if info.HasField("failure_info") else None,
    })


def failure_info(info: task_pb2.FailureInfo) -> dict[str, Any]:
    return compact({"category": CATEGORIES.get(info.category, "servererror"), "code": info.code,
                    "message": info.message})
