"""What the dashboard shows, read through the gateway's own public gRPC API with the signed-in
account's key: the same authentication, scoping and validation as every other client.
Answers are plain dicts (protobuf's JSON mapping with proto field names), ready for JSON.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from services.common.rpc import error_info
from shoal.v1 import (
    job_pb2,
    job_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    task_pb2,
    task_pb2_grpc,
)

CALL_TIMEOUT = 15.0
"""Seconds a unary call may take."""
TASK_PAGE = 50
"""Tasks per page of the task list, unless the page asks for another size (at most 500)."""
MAX_NODES = 2000
"""Nodes read for one node map (pages of 1000)."""
LOG_TAIL = 500
"""Lines of a log shown before following what is written."""
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ApiError(Exception):
    """A call the dashboard cannot answer: an HTTP status, a message for people, a reason."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason

    @classmethod
    def of(cls, e: grpc.aio.AioRpcError) -> ApiError:
        reason, _ = error_info(e)
        return cls(_HTTP_STATUS.get(e.code(), 500), e.details() or e.code().name,
                   reason or e.code().name)


def check_id(value: str, what: str) -> str:
    """An id from the URL, before it becomes part of a resource name."""
    if not _ID.fullmatch(value):
        raise ApiError(404, f"no such {what}: {value[:80]!r}", f"{what.upper()}_NOT_FOUND")
    return value


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


@dataclass(frozen=True)
class TaskQuery:
    """The task list's filters, as the page sends them (empty: any)."""

    state: str = ""
    result: str = ""
    node: str = ""
    exit_code: str = ""

    @classmethod
    def of(cls, q: Mapping[str, str]) -> TaskQuery:
        return cls(*(q.get(k, "").strip() for k in ("state", "result", "node", "exit_code")))

    def filter(self) -> str:
        """ListTasks' filter. Values are passed on as typed (quoted): the scheduler checks
        them and names the field in its error."""
        terms = [f'{name} = "{v}"' if name == "node" else f"{name} = {v}"
                 for name, v in (("state", self.state), ("result", self.result),
                                 ("node", self.node), ("exit_code", self.exit_code)) if v]
        return " AND ".join(terms)


class Backend:
    """The gateway's public API as one account sees it (its key on every call)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._pools = pool_pb2_grpc.PoolServiceStub(channel)
        self._jobs = job_pb2_grpc.JobServiceStub(channel)
        self._tasks = task_pb2_grpc.TaskServiceStub(channel)

    @staticmethod
    def _md(key: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key}"),)

    async def _call(self, method: Any, request: Message, key: str) -> Any:
        try:
            return await method(request, metadata=self._md(key), timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as e:
            raise ApiError.of(e) from None

    # -- pools and nodes ----------------------------------------------------------------------

    async def pools(self, key: str) -> list[dict[str, Any]]:
        out, token = [], ""
        while True:
            r = await self._call(self._pools.ListPools,
                                 pool_pb2.ListPoolsRequest(page_size=1000, page_token=token), key)
            out += [as_dict(p) for p in r.pools]
            token = r.next_page_token
            if not token:
                return out

    async def pool(self, key: str, pool_id: str) -> dict[str, Any]:
        return {"pool": as_dict(await self.pool_message(key, pool_id)),
                "nodes": await self.nodes(key, pool_id)}

    async def pool_message(self, key: str, pool_id: str) -> pool_pb2.Pool:
        name = f"pools/{check_id(pool_id, 'pool')}"
        pool: pool_pb2.Pool = await self._call(self._pools.GetPool,
                                               pool_pb2.GetPoolRequest(name=name), key)
        return pool

    async def nodes(self, key: str, pool_id: str) -> list[dict[str, Any]]:
        return (await self.nodes_at(key, pool_id))[0]

    async def nodes_at(self, key: str, pool_id: str) -> tuple[list[dict[str, Any]], int]:
        """The pool's nodes, and the node revision of the first page: WatchNodes from it
        sends every change made since."""
        name = f"pools/{check_id(pool_id, 'pool')}"
        out: list[dict[str, Any]] = []
        token, revision = "", 0
        while len(out) < MAX_NODES:
            r = await self._call(self._pools.ListNodes, pool_pb2.ListNodesRequest(
                parent=name, page_size=1000, page_token=token), key)
            revision = revision or r.revision
            out += [as_dict(n) for n in r.nodes]
            token = r.next_page_token
            if not token:
                break
        return out, revision

    async def watch_nodes(self, key: str, pool_id: str,
                          from_revision: int) -> AsyncIterator[pool_pb2.WatchNodesResponse]:
        """WatchNodes: the pool's node changes after `from_revision`, and progress messages."""
        name = f"pools/{check_id(pool_id, 'pool')}"
        stream = self._pools.WatchNodes(pool_pb2.WatchNodesRequest(
            parent=name, from_revision=from_revision), metadata=self._md(key))
        async for r in self._stream(stream):
            yield r

    async def _stream(self, stream: Any) -> AsyncIterator[Any]:
        try:
            async for r in stream:
                yield r
        except grpc.aio.AioRpcError as e:
            raise ApiError.of(e) from None
        finally:
            stream.cancel()

    # -- jobs -------------------------------------------------------------------------------

    async def jobs(self, key: str, page_token: str = "") -> dict[str, Any]:
        r = await self._call(self._jobs.ListJobs,
                             job_pb2.ListJobsRequest(page_size=100, page_token=page_token), key)
        return {"jobs": [as_dict(j) for j in r.jobs], "next_page_token": r.next_page_token}

    async def job(self, key: str, job_id: str) -> dict[str, Any]:
        return as_dict(await self.job_message(key, job_id))

    async def job_message(self, key: str, job_id: str) -> job_pb2.Job:
        name = f"jobs/{check_id(job_id, 'job')}"
        job: job_pb2.Job = await self._call(self._jobs.GetJob, job_pb2.GetJobRequest(name=name),
                                            key)
        return job

    async def watch_job(self, key: str, job_id: str,
                        from_revision: int) -> AsyncIterator[job_pb2.WatchJobResponse]:
        """WatchJob with `job_summary`: the job's latest state (state, task counts) after
        `from_revision` (0: the job as it is first), at most twice a second however busy the
        job is, and progress messages."""
        stream = self._jobs.WatchJob(job_pb2.WatchJobRequest(
            name=f"jobs/{check_id(job_id, 'job')}", from_revision=from_revision,
            job_summary=True), metadata=self._md(key))
        async for r in self._stream(stream):
            yield r

    # -- tasks ------------------------------------------------------------------------------

    async def tasks(self, key: str, job_id: str, query: TaskQuery, page_token: str = "",
                    page_size: int = TASK_PAGE) -> dict[str, Any]:
        request = task_pb2.ListTasksRequest(
            parent=f"jobs/{check_id(job_id, 'job')}", filter=query.filter(),
            page_size=max(1, min(page_size, 500)), page_token=page_token)
        r = await self._call(self._tasks.ListTasks, request, key)
        return {"tasks": [as_dict(t) for t in r.tasks], "next_page_token": r.next_page_token}

    def _task_name(self, job_id: str, task_id: str) -> str:
        return f"jobs/{check_id(job_id, 'job')}/tasks/{check_id(task_id, 'task')}"

    async def task(self, key: str, job_id: str, task_id: str) -> dict[str, Any]:
        t = await self._call(self._tasks.GetTask,
                             task_pb2.GetTaskRequest(name=self._task_name(job_id, task_id)), key)
        return as_dict(t)

    async def why(self, key: str, job_id: str, task_id: str) -> dict[str, Any]:
        e = await self._call(self._tasks.ExplainTask, task_pb2.ExplainTaskRequest(
            name=self._task_name(job_id, task_id)), key)
        return as_dict(e)

    async def follow_log(self, key: str, job_id: str, task_id: str, path: str,
                         tail: int = LOG_TAIL) -> AsyncIterator[bytes]:
        """The file's last `tail` lines, then what the task writes until its attempt ends
        (ReadTaskFile with follow); ApiError if it cannot be read."""
        if path not in ("stdout.txt", "stderr.txt"):
            raise ApiError(400, "file must be stdout.txt or stderr.txt", "INVALID_ARGUMENT")
        stream = self._tasks.ReadTaskFile(task_pb2.ReadTaskFileRequest(
            name=self._task_name(job_id, task_id), path=path, follow=True,
            tail_lines=tail), metadata=self._md(key))
        try:
            async for chunk in stream:
                yield chunk.data
        except grpc.aio.AioRpcError as e:
            raise ApiError.of(e) from None
        finally:
            stream.cancel()
