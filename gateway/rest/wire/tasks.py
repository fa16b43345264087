"""Tasks and their files: Azure Batch's JSON <-> Shoal's protobuf, pure."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gateway.rest import odata
from gateway.rest.errors import RestError, invalid_property
from gateway.rest.wire.common import (
    Body,
    compact,
    duration_field,
    environment_in,
    format_time,
    last_segment,
    name_value_list,
    packages_in,
    packages_out,
    refuse_containers,
    resource_files_in,
    resource_files_out,
)
from gateway.rest.wire.jobs import retry_count
from gateway.rest.wire.pools import CATEGORIES, RESULTS, failure_info
from shoal.v1 import task_pb2

Task = task_pb2.Task
ExitOptions = task_pb2.ExitOptions

TASK_STATES = {
    Task.ACTIVE: "active",
    Task.PREPARING: "preparing",
    Task.RUNNING: "running",
    Task.COMPLETED: "completed",
}
JOB_ACTIONS = {"none": ExitOptions.NONE, "disable": ExitOptions.DISABLE, "terminate": ExitOptions.TERMINATE}
DEPENDENCY_ACTIONS = {"satisfy": ExitOptions.SATISFY, "block": ExitOptions.BLOCK}
UPLOAD_CONDITIONS = {
    "tasksuccess": task_pb2.OutputFile.TASK_SUCCESS,
    "taskfailure": task_pb2.OutputFile.TASK_FAILURE,
    "taskcompletion": task_pb2.OutputFile.TASK_COMPLETION,
}
# Where a task's standard streams are, for reading and listing its files.
STD_FILES = ("stdout.txt", "stderr.txt")

TASK_FILTER: odata.Schema = {
    "id": odata.STRING,
    "displayName": odata.STRING,
    "state": odata.enum(TASK_STATES.values()),
    "creationTime": odata.DATETIME,
    "stateTransitionTime": odata.DATETIME,
    "commandLine": odata.STRING,
    "requiredSlots": odata.INT,
    "executionInfo/exitCode": odata.INT,
    "executionInfo/result": odata.enum(RESULTS.values()),
    "executionInfo/retryCount": odata.INT,
    "executionInfo/requeueCount": odata.INT,
    "executionInfo/startTime": odata.DATETIME,
    "executionInfo/endTime": odata.DATETIME,
    "executionInfo/failureInfo/category": odata.enum(CATEGORIES.values()),
    "executionInfo/failureInfo/code": odata.STRING,
    "nodeInfo/nodeId": odata.STRING,
}
FILE_FILTER: odata.Schema = {"name": odata.STRING, "isDirectory": odata.BOOL}
TASK_FIELDS = {
    "task_id": "id",
    "task.environment": "environmentSettings",
    "task.depends_on.task_id_ranges": "dependsOn.taskIdRanges",
    "task.depends_on": "dependsOn",
    "task.output_files": "outputFiles",
    "task": "",
    "update_mask": "body",
    "parent": "jobId",
}


def task_in(body: Body) -> task_pb2.CreateTaskRequest:
    """An Azure task (add) body as a CreateTaskRequest without its parent."""
    refuse_containers(body)
    body.refuse("multiInstanceSettings", "Shoal has no multi-instance (MPI) tasks")
    task = Task(
        display_name=body.text("displayName"),
        command_line=body.string("commandLine", required=True) or "",
        environment=environment_in(body),
        resource_files=resource_files_in(body),
        output_files=[output_file_in(f) for f in body.objs("outputFiles")],
        application_package_references=packages_in(body),
        required_slots=body.integer("requiredSlots") or 0,
    )
    constraints = body.obj("constraints")
    if constraints is not None:
        task.constraints.CopyFrom(constraints_in(constraints))
    depends = body.obj("dependsOn")
    if depends is not None:
        task.depends_on.CopyFrom(dependencies_in(depends))
    exits = body.obj("exitConditions")
    if exits is not None:
        task.exit_conditions.CopyFrom(exit_conditions_in(exits))
    return task_pb2.CreateTaskRequest(task_id=body.string("id", required=True) or "", task=task)


def constraints_in(body: Body) -> task_pb2.TaskConstraints:
    out = task_pb2.TaskConstraints()
    retries = retry_count(body)
    if retries is not None:
        out.max_task_retry_count = retries
    for key, target in (("maxWallClockTime", out.max_wall_clock_time),
                        ("retentionTime", out.retention_time)):
        found = body.duration(key)
        if found is not None:
            target.CopyFrom(found)
    return out


def update_request(name: str, body: Body) -> task_pb2.UpdateTaskRequest:
    """Azure's Task - Update: its constraints, all three at once (one left out goes to its
    default)."""
    task = Task()
    constraints = body.obj("constraints")
    if constraints is not None:
        task.constraints.CopyFrom(constraints_in(constraints))
    request = task_pb2.UpdateTaskRequest(name=name, task=task)
    request.update_mask.paths.append("constraints")
    return request


def dependencies_in(body: Body) -> task_pb2.TaskDependencies:
    ids = body.items("taskIds")
    if not all(isinstance(i, str) for i in ids):
        raise invalid_property(body.name("taskIds"), "must be a list of task ids")
    ranges = [
        task_pb2.TaskIdRange(start=r.integer("start", required=True) or 0,
                             end=r.integer("end", required=True) or 0)
        for r in body.objs("taskIdRanges")
    ]
    return task_pb2.TaskDependencies(task_ids=ids, task_id_ranges=ranges)


def _exit_options(body: Body | None) -> ExitOptions | None:
    if body is None:
        return None
    return ExitOptions(
        job_action=body.choice("jobAction", JOB_ACTIONS, ExitOptions.JOB_ACTION_UNSPECIFIED),
        dependency_action=body.choice("dependencyAction", DEPENDENCY_ACTIONS,
                                      ExitOptions.DEPENDENCY_ACTION_UNSPECIFIED),
    )


def exit_conditions_in(body: Body) -> task_pb2.ExitConditions:
    out = task_pb2.ExitConditions(
        exit_codes=[
            task_pb2.ExitCodeMapping(code=m.integer("code", required=True) or 0,
                                     exit_options=_exit_options(m.obj("exitOptions", required=True)))
            for m in body.objs("exitCodes")
        ],
        exit_code_ranges=[
            task_pb2.ExitCodeRangeMapping(
                start=m.integer("start", required=True) or 0, end=m.integer("end", required=True) or 0,
                exit_options=_exit_options(m.obj("exitOptions", required=True)),
            )
            for m in body.objs("exitCodeRanges")
        ],
    )
    for key, target in (("preProcessingError", out.pre_processing_error),
                        ("fileUploadError", out.file_upload_error), ("default", out.default)):
        found = _exit_options(body.obj(key))
        if found is not None:
            target.CopyFrom(found)
    return out


def output_file_in(body: Body) -> task_pb2.OutputFile:
    """Azure's blob destination names a Shoal container by its URL's path: the container is its
    one segment (https://any.host/CONTAINER?sas): Shoal's own storage is where files go."""
    destination = body.obj("destination", required=True)
    assert destination is not None
    blob = destination.obj("container", required=True)
    assert blob is not None
    blob.refuse("identityReference", "Shoal's nodes reach storage through signed URLs")
    blob.refuse("uploadHeaders", "Shoal sets no headers on uploaded objects")
    url = blob.string("containerUrl", required=True) or ""
    segments = [s for s in urlsplit(url).path.split("/") if s]
    if len(segments) != 1:
        raise invalid_property(blob.name("containerUrl"),
                               "must name one Shoal container as its path: https://host/CONTAINER")
    options = body.obj("uploadOptions", required=True)
    assert options is not None
    options.string("uploadCondition", required=True)
    return task_pb2.OutputFile(
        file_pattern=body.string("filePattern", required=True) or "",
        container=segments[0],
        path=blob.text("path"),
        upload_condition=options.choice("uploadCondition", UPLOAD_CONDITIONS,
                                        task_pb2.OutputFile.TASK_COMPLETION),
    )


def _options_out(o: ExitOptions) -> dict[str, Any]:
    return compact({
        "jobAction": {v: k for k, v in JOB_ACTIONS.items()}.get(o.job_action),
        "dependencyAction": {v: k for k, v in DEPENDENCY_ACTIONS.items()}.get(o.dependency_action),
    })


def _exit_conditions_out(c: task_pb2.ExitConditions) -> dict[str, Any]:
    return compact({
        "exitCodes": [{"code": m.code, "exitOptions": _options_out(m.exit_options)} for m in c.exit_codes],
        "exitCodeRanges": [
            {"start": m.start, "end": m.end, "exitOptions": _options_out(m.exit_options)}
            for m in c.exit_code_ranges
        ],
        "preProcessingError": _options_out(c.pre_processing_error) if c.HasField("pre_processing_error") else None,
        "fileUploadError": _options_out(c.file_upload_error) if c.HasField("file_upload_error") else None,
        "default": _options_out(c.default) if c.HasField("default") else None,
    })


def _output_files_out(files: list[task_pb2.OutputFile]) -> list[dict[str, Any]]:
    conditions = {v: k for k, v in UPLOAD_CONDITIONS.items()}
    return [
        {
            "filePattern": f.file_pattern,
            "destination": {"container": compact({"containerUrl": f"shoal://storage/{f.container}",
                                                  "path": f.path or None})},
            "uploadOptions": {"uploadCondition": conditions.get(f.upload_condition, "taskcompletion")},
        }
        for f in files
    ]


def task_json(task: Task, base: str) -> dict[str, Any]:
    _, job_id, _, task_id = task.name.split("/")
    url = f"{base}/jobs/{job_id}/tasks/{task_id}"
    info = task.execution_info
    c = task.constraints
    node = info.node.split("/") if info.node else None
    return compact({
        "id": task_id,
        "url": url,
        "displayName": task.display_name or None,
        "creationTime": format_time(task.create_time),
        "state": TASK_STATES.get(task.state),
        "stateTransitionTime": format_time(task.state_transition_time),
        "commandLine": task.command_line,
        "resourceFiles": resource_files_out(task.resource_files),
        "outputFiles": _output_files_out(list(task.output_files)),
        "environmentSettings": name_value_list(task.environment),
        "constraints": compact({
            "maxWallClockTime": duration_field(c, "max_wall_clock_time"),
            "retentionTime": duration_field(c, "retention_time"),
            "maxTaskRetryCount": c.max_task_retry_count if c.HasField("max_task_retry_count") else None,
        }),
        "requiredSlots": task.required_slots or 1,
        "exitConditions": _exit_conditions_out(task.exit_conditions) if task.HasField("exit_conditions") else None,
        "dependsOn": compact({
            "taskIds": list(task.depends_on.task_ids),
            "taskIdRanges": [{"start": r.start, "end": r.end} for r in task.depends_on.task_id_ranges],
        }) if task.HasField("depends_on") else None,
        "applicationPackageReferences": packages_out(task.application_package_references),
        "executionInfo": compact({
            "startTime": format_time(info.start_time),
            "endTime": format_time(info.end_time),
            "exitCode": info.exit_code if info.HasField("exit_code") else None,
            "failureInfo": failure_info(info.failure_info) if info.HasField("failure_info") else None,
            "retryCount": info.retry_count,
            "requeueCount": info.requeue_count,
            "result": RESULTS.get(info.result),
        }),
        "nodeInfo": {
            "poolId": node[1], "nodeId": node[3],
            "nodeUrl": f"{base}/pools/{node[1]}/nodes/{node[3]}",
            "taskRootDirectory": f"workitems/{job_id}/job-1/{task_id}",
        } if node and len(node) == 4 else None,
    })


def added(task_id: str, location: str) -> dict[str, Any]:
    """A task an add-collection call added (Azure's TaskAddResult)."""
    return {"status": "success", "taskId": task_id, "location": location}


def not_added(task_id: str, error: RestError) -> dict[str, Any]:
    """A task an add-collection call did not add, and why."""
    return {
        "status": "servererror" if error.status >= 500 else "clienterror",
        "taskId": task_id,
        "error": {
            "code": error.code,
            "message": {"lang": "en-US", "value": error.message},
            "values": [{"key": k, "value": v} for k, v in error.values],
        },
    }


def file_json(name: str, size: int, base: str, job_id: str, task_id: str,
              modified: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "url": f"{base}/jobs/{job_id}/tasks/{task_id}/files/{name}",
        "isDirectory": False,
        "properties": compact({
            "lastModified": modified,
            "contentLength": size,
            "contentType": "text/plain",
        }),
    }


def task_id_of(name: str) -> str:
    return last_segment(name)
