"""Tasks and their files: Azure Batch's operations on Shoal's TaskService."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web

from gateway.rest import listing
from gateway.rest.backend import Caller
from gateway.rest.errors import RestError, invalid_header
from gateway.rest.http import (
    Resource,
    Versioned,
    base_url,
    caller,
    empty,
    json_response,
    precondition,
    read_body,
)
from gateway.rest.wire import tasks as wire
from gateway.rest.wire.common import Body, has_time, http_date, latest
from shoal.v1 import job_pb2, task_pb2

routes = web.RouteTableDef()
T = TypeVar("T")

TASK = "tasks"
FILE = "files"
MAX_COLLECTION = 100
"""Tasks in one add-collection call, as in Azure (Shoal's own BatchCreateTasks takes more)."""
TASK_STATES = {azure: [task_pb2.Task.State.Name(s)] for s, azure in wire.TASK_STATES.items()}
_INDEX = re.compile(r"^requests\[(\d+)\]")
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def version(task: task_pb2.Task, base: str) -> Versioned:
    return Versioned.of(wire.task_json(task, base), task.create_time, task.state_transition_time,
                        tag=task.etag, modified=task.update_time)


def _job(request: web.Request) -> str:
    return f"jobs/{request.match_info['job']}"


def _name(request: web.Request) -> str:
    return f"jobs/{request.match_info['job']}/tasks/{request.match_info['task']}"


TASKS = Resource(_name, lambda c: c.backend.tasks.GetTask, task_pb2.GetTaskRequest, version, TASK)

routes.get("/jobs/{job}/tasks/{task}")(TASKS.serve)
routes.delete("/jobs/{job}/tasks/{task}")(TASKS.change(
    lambda c: c.backend.tasks.DeleteTask, task_pb2.DeleteTaskRequest, 200))
routes.post("/jobs/{job}/tasks/{task}/terminate")(TASKS.change(
    lambda c: c.backend.tasks.TerminateTask, task_pb2.TerminateTaskRequest, 204, answers=True))
routes.post("/jobs/{job}/tasks/{task}/reactivate")(TASKS.change(
    lambda c: c.backend.tasks.ReactivateTask, task_pb2.ReactivateTaskRequest, 204, answers=True))


@routes.put("/jobs/{job}/tasks/{task}")
async def update_task(request: web.Request) -> web.Response:
    """Task - Update (its constraints) on UpdateTask, If-Match checked in the same step."""
    call = caller(request)
    update = wire.update_request(_name(request), await read_body(request))
    await precondition(request, lambda: TASKS.current(request), skip=("if-match",))
    update.if_match = request.headers.get("If-Match", "")
    task = await call(call.backend.tasks.UpdateTask, update, wire.TASK_FIELDS)
    return empty(200, version=version(task, base_url(request)))


# What Azure answers for adding tasks to a job that takes none, by the job's state.
_CLOSED = {
    job_pb2.Job.COMPLETED: "JobCompleted",
    job_pb2.Job.TERMINATING: "JobBeingTerminated",
    job_pb2.Job.DELETING: "JobBeingDeleted",
}


async def _adding(call: Caller, job: str, add: Awaitable[T]) -> T:
    """`add`, with Shoal's JOB_NOT_ACTIVE answered as Azure names the job's state."""
    try:
        return await add
    except RestError as e:
        if ("ShoalReason", "JOB_NOT_ACTIVE") not in e.values:
            raise
        state = (await call(call.backend.jobs.GetJob, job_pb2.GetJobRequest(name=job))).state
        raise RestError(409, _CLOSED.get(state, e.code), e.message, e.values) from None


@routes.post("/jobs/{job}/tasks")
async def add_task(request: web.Request) -> web.Response:
    call = caller(request)
    create = wire.task_in(await read_body(request))
    create.parent = _job(request)
    task = await _adding(call, create.parent, call(call.backend.tasks.CreateTask, create, wire.TASK_FIELDS))
    v = version(task, base_url(request))
    return empty(201, url=v.json["url"], version=v)


@routes.post("/jobs/{job}/addtaskcollection")
async def add_task_collection(request: web.Request) -> web.Response:
    """Azure's partial success on Shoal's all-or-nothing BatchCreateTasks: a task Shoal
    refuses (its error names it by index) is answered as that task's clienterror, and the
    others are added without it."""
    body = await read_body(request)
    items = body.items("value")
    if not items:
        body.string("value", required=True)
    if len(items) > MAX_COLLECTION:
        raise RestError(413, "RequestBodyTooLarge",
                        f"The request adds {len(items)} tasks; at most {MAX_COLLECTION} per call",
                        (("PropertyName", "value"),))
    results: dict[int, dict[str, Any]] = {}
    pending: dict[int, task_pb2.CreateTaskRequest] = {}
    ids: dict[int, str] = {}
    for i, raw in enumerate(items):
        task_body = Body.of(raw, f"value[{i}]")
        ids[i] = task_body.text("id")
        try:
            pending[i] = wire.task_in(task_body)
        except RestError as e:
            results[i] = wire.not_added(ids[i], e)
    base, job_id = base_url(request), request.match_info["job"]
    call = caller(request)
    await _adding(call, _job(request), _add_all(call, _job(request), pending, results, ids))
    for i in pending:
        results[i] = wire.added(ids[i], f"{base}/jobs/{job_id}/tasks/{ids[i]}")
    return json_response({"value": [results[i] for i in sorted(results)]})


async def _add_all(call: Caller, job: str, pending: dict[int, task_pb2.CreateTaskRequest],
                   results: dict[int, dict[str, Any]], ids: dict[int, str]) -> None:
    """Add `pending` in one call, taking out (into `results`) each task the call names as at
    fault, until a call succeeds or fails for all of them alike (which is raised). Shoal's
    "already exists" names no index: then each task is added on its own."""
    while pending:
        order = sorted(pending)
        try:
            await call(call.backend.tasks.BatchCreateTasks, task_pb2.BatchCreateTasksRequest(
                parent=job, requests=[pending[i] for i in order]), wire.TASK_FIELDS)
            return
        except RestError as e:
            culprit = _culprit(e)
            if culprit is None and ("ShoalReason", "TASK_ALREADY_EXISTS") in e.values:
                await _add_each(call, job, pending, results, ids)
                return
            if culprit is None or culprit >= len(order):
                raise
            index = order[culprit]
            results[index] = wire.not_added(ids[index], _one_task(e))
            del pending[index]


async def _add_each(call: Caller, job: str, pending: dict[int, task_pb2.CreateTaskRequest],
                    results: dict[int, dict[str, Any]], ids: dict[int, str]) -> None:
    for index in sorted(pending):
        request = pending[index]
        request.parent = job
        try:
            await call(call.backend.tasks.CreateTask, request, wire.TASK_FIELDS)
        except RestError as e:
            results[index] = wire.not_added(ids[index], e)
            del pending[index]


def _culprit(e: RestError) -> int | None:
    """Which request of a BatchCreateTasks call an error is about, by its field."""
    for key, value in e.values:
        if key == "PropertyName":
            m = _INDEX.match(value)
            if m:
                return int(m.group(1))
    return None


def _one_task(e: RestError) -> RestError:
    """An error about requests[i].task.x, as the error of that one task (task.x -> x)."""
    values = tuple((k, _INDEX.sub("", v).removeprefix(".").removeprefix("task.") if k == "PropertyName" else v)
                   for k, v in e.values)
    return RestError(e.status, e.code, _INDEX.sub("", e.message).removeprefix("."), values)


routes.get("/jobs/{job}/tasks")(listing.lister(
    TASKS, lambda c: c.backend.tasks.ListTasks,
    lambda request, size, token, flt: task_pb2.ListTasksRequest(
        parent=_job(request), page_size=size, page_token=token, filter=flt),
    "tasks", schema=wire.TASK_FILTER, states=TASK_STATES))


# Files: a task's stdout.txt and stderr.txt, which is what Shoal keeps of its directory.

def _file(request: web.Request) -> str:
    path = request.match_info["path"]
    if path not in wire.STD_FILES:
        raise RestError(404, "FileNotFound",
                        f"The file {path!r} does not exist: Shoal serves a task's "
                        f"{' and '.join(wire.STD_FILES)}",
                        (("FilePath", path),))
    return path


async def _size(call: Caller, name: str, path: str) -> int:
    """A file's size, by reading it: Shoal's API streams files and does not stat them."""
    size = 0
    async for chunk in call.stream(call.backend.tasks.ReadTaskFile,
                                   task_pb2.ReadTaskFileRequest(name=name, path=path)):
        size += len(chunk.data)
    return size


def _range(request: web.Request) -> tuple[int, int | None]:
    raw = request.headers.get("ocp-range") or request.headers.get("Range") or ""
    if not raw:
        return 0, None
    m = _RANGE.fullmatch(raw.strip())
    if m is None or (m.group(2) and int(m.group(2)) < int(m.group(1))):
        raise invalid_header("ocp-range", raw, "must be bytes=START-END")
    return int(m.group(1)), int(m.group(2)) + 1 if m.group(2) else None


@routes.get("/jobs/{job}/tasks/{task}/files/{path:.+}", allow_head=False)
async def get_file(request: web.Request) -> web.StreamResponse:
    call = caller(request)
    path = _file(request)
    start, end = _range(request)
    chunks = call.stream(call.backend.tasks.ReadTaskFile,
                         task_pb2.ReadTaskFileRequest(name=_name(request), path=path, offset=start))
    # The first chunk before the answer's status: a missing task or file is an error, not a
    # 200 with an empty body.
    first = await anext(chunks, None)
    response = web.StreamResponse(status=200, headers=_file_headers(request))
    response.content_type = "application/octet-stream"
    await response.prepare(request)
    sent = start
    chunk = first
    while chunk is not None:
        data = chunk.data if end is None else chunk.data[: max(end - sent, 0)]
        await response.write(data)
        sent += len(data)
        if end is not None and sent >= end:
            break
        chunk = await anext(chunks, None)
    await chunks.aclose()
    await response.write_eof()
    return response


def _file_headers(request: web.Request, task: task_pb2.Task | None = None) -> dict[str, str]:
    out = {
        "ocp-batch-file-isdirectory": "false",
        "ocp-batch-file-url": f"{base_url(request)}{request.rel_url.raw_path}",
        "ocp-batch-file-mode": "0o100644",
    }
    if task is not None:
        # Shoal does not stat a task's files: they were written while its last attempt ran.
        info = task.execution_info
        started = info.start_time if has_time(info.start_time) else task.create_time
        out["ocp-creation-time"] = http_date(started)
        out["Last-Modified"] = http_date(latest(info.end_time, task.state_transition_time))
    return out


@routes.head("/jobs/{job}/tasks/{task}/files/{path:.+}")
async def file_properties(request: web.Request) -> web.StreamResponse:
    call = caller(request)
    path = _file(request)
    task = await TASKS.read(request)
    size = await _size(call, _name(request), path)
    response = web.StreamResponse(status=200, headers=_file_headers(request, task))
    response.content_type = "application/octet-stream"
    response.content_length = size
    await response.prepare(request)
    await response.write_eof()
    return response


@routes.get("/jobs/{job}/tasks/{task}/files")
async def list_files(request: web.Request) -> web.Response:
    call = caller(request)
    base = base_url(request)
    job_id, task_id = request.match_info["job"], request.match_info["task"]
    task = await TASKS.read(request)
    modified = wire.task_json(task, base).get("stateTransitionTime")
    found: list[dict[str, Any]] = []
    for path in wire.STD_FILES:
        try:
            size = await _size(call, _name(request), path)
        except RestError as e:
            if e.status == 404:
                continue  # not written yet (the task has not run)
            raise
        found.append(wire.file_json(path, size, base, job_id, task_id, modified))

    async def fetch(size: int, token: str, flt: str) -> tuple[list[dict[str, Any]], str]:
        return found[:size], ""

    return await listing.list_page(request, fetch, lambda f: f, schema=wire.FILE_FILTER,
                                   metadata=FILE)

