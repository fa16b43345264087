"""A stand-in for the gateway's public API, for testing the client and the CLI's handling of
answers and errors apart from the real services: a real gRPC server on a loopback port,
keeping pools, jobs and tasks in memory. Errors go through the services' own mapping
(`services.common.rpc.to_status`), so their details look exactly like the real ones.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from google.protobuf import empty_pb2

from services.common.errors import (
    Code,
    ShoalError,
    already_exists,
    failed_precondition,
    invalid,
    not_found,
)
from services.common.ids import check_id
from services.common.rpc import to_status
from shoal.v1 import job_pb2, job_pb2_grpc, pool_pb2, pool_pb2_grpc, task_pb2, task_pb2_grpc

KEY = "shoal_test-key"


@dataclass
class World:
    pools: dict[str, pool_pb2.Pool] = field(default_factory=dict)
    nodes: dict[str, list[pool_pb2.Node]] = field(default_factory=dict)
    jobs: dict[str, job_pb2.Job] = field(default_factory=dict)
    tasks: dict[str, dict[str, task_pb2.Task]] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    batch_sizes: list[int] = field(default_factory=list)
    """Size of every BatchCreateTasks call received."""
    authorizations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _guard(fn):
    """Check the key like the gateway does, and map ShoalError like ServiceInterceptor."""

    def wrapper(self, request, context):
        md = dict(context.invocation_metadata())
        self.world.authorizations.append(md.get("authorization", ""))
        try:
            if md.get("authorization") != f"Bearer {KEY}":
                raise ShoalError(
                    Code.UNAUTHENTICATED, "INVALID_ACCOUNT_KEY", "the account key is not valid"
                )
            with self.world.lock:
                return fn(self, request, context)
        except ShoalError as e:
            context.abort_with_status(to_status(e))

    return wrapper


def _page(items: list, page_size: int, token: str) -> tuple[list, str]:
    size = page_size or 100
    start = int(token or 0)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


class Pools(pool_pb2_grpc.PoolServiceServicer):
    def __init__(self, world: World) -> None:
        self.world = world

    @_guard
    def CreatePool(self, request, context):
        check_id(request.pool_id, "pool_id")
        if request.pool_id in self.world.pools:
            raise already_exists("pool", request.pool_id)
        pool = pool_pb2.Pool()
        pool.CopyFrom(request.pool)
        pool.name = f"pools/{request.pool_id}"
        pool.state = pool_pb2.Pool.ACTIVE
        self.world.pools[request.pool_id] = pool
        return pool

    @_guard
    def GetPool(self, request, context):
        pool_id = request.name.removeprefix("pools/")
        if pool_id not in self.world.pools:
            raise not_found("pool", request.name)
        return self.world.pools[pool_id]

    @_guard
    def ListPools(self, request, context):
        pools = [self.world.pools[k] for k in sorted(self.world.pools)]
        page, token = _page(pools, request.page_size, request.page_token)
        return pool_pb2.ListPoolsResponse(pools=page, next_page_token=token)

    @_guard
    def ListNodes(self, request, context):
        nodes = self.world.nodes.get(request.parent.removeprefix("pools/"), [])
        page, token = _page(nodes, request.page_size, request.page_token)
        return pool_pb2.ListNodesResponse(nodes=page, next_page_token=token)

    @_guard
    def DeletePool(self, request, context):
        pool_id = request.name.removeprefix("pools/")
        if any(j.pool == request.name for j in self.world.jobs.values()):
            raise failed_precondition("POOL_IN_USE", f"pool {pool_id!r} has jobs")
        if self.world.pools.pop(pool_id, None) is None:
            raise not_found("pool", request.name)
        return empty_pb2.Empty()


class Jobs(job_pb2_grpc.JobServiceServicer):
    def __init__(self, world: World) -> None:
        self.world = world

    @_guard
    def CreateJob(self, request, context):
        check_id(request.job_id, "job_id")
        job = job_pb2.Job()
        job.CopyFrom(request.job)
        job.name = f"jobs/{request.job_id}"
        job.state = job_pb2.Job.ACTIVE
        self.world.jobs[request.job_id] = job
        self.world.tasks[request.job_id] = {}
        return job

    @_guard
    def GetJob(self, request, context):
        job_id = request.name.removeprefix("jobs/")
        if job_id not in self.world.jobs:
            raise not_found("job", request.name)
        job = self.world.jobs[job_id]
        tasks = self.world.tasks[job_id].values()
        job.task_counts.CopyFrom(counts(tasks))
        return job


def counts(tasks) -> job_pb2.TaskCounts:
    c = job_pb2.TaskCounts()
    for t in tasks:
        if t.state == task_pb2.Task.ACTIVE:
            c.active += 1
        elif t.state in (task_pb2.Task.PREPARING, task_pb2.Task.RUNNING):
            c.running += 1
        else:
            c.completed += 1
            if t.execution_info.result == task_pb2.TaskExecutionInfo.SUCCESS:
                c.succeeded += 1
            else:
                c.failed += 1
    return c


class Tasks(task_pb2_grpc.TaskServiceServicer):
    def __init__(self, world: World) -> None:
        self.world = world

    def _job(self, parent: str) -> dict[str, task_pb2.Task]:
        job_id = parent.removeprefix("jobs/")
        if job_id not in self.world.tasks:
            raise not_found("job", parent)
        return self.world.tasks[job_id]

    @_guard
    def CreateTask(self, request, context):
        tasks = self._job(request.parent)
        check_id(request.task_id, "task_id")
        task = task_pb2.Task()
        task.CopyFrom(request.task)
        task.name = f"{request.parent}/tasks/{request.task_id}"
        task.state = task_pb2.Task.ACTIVE
        tasks[request.task_id] = task
        return task

    @_guard
    def BatchCreateTasks(self, request, context):
        tasks = self._job(request.parent)
        for i, r in enumerate(request.requests):
            if not r.task.command_line:
                raise invalid(f"requests[{i}].task.command_line", "is required")
        for r in request.requests:
            task = task_pb2.Task()
            task.CopyFrom(r.task)
            task.name = f"{request.parent}/tasks/{r.task_id}"
            task.state = task_pb2.Task.ACTIVE
            tasks[r.task_id] = task
        self.world.batch_sizes.append(len(request.requests))
        return task_pb2.BatchCreateTasksResponse(created_count=len(request.requests))

    @_guard
    def GetTask(self, request, context):
        job_path, _, task_id = request.name.rpartition("/tasks/")
        tasks = self._job(job_path)
        if task_id not in tasks:
            raise not_found("task", request.name)
        return tasks[task_id]

    @_guard
    def ListTasks(self, request, context):
        tasks = self._job(request.parent)
        wanted = {
            term.split("=")[1].strip() for term in request.filter.split(" OR ") if "=" in term
        }
        items = [
            tasks[k]
            for k in sorted(tasks)
            if not wanted or task_pb2.Task.State.Name(tasks[k].state) in wanted
        ]
        page, token = _page(items, request.page_size, request.page_token)
        return task_pb2.ListTasksResponse(tasks=page, next_page_token=token)

    def ReadTaskFile(self, request, context):
        data = self.world.files.get((request.name, request.path))
        if data is None:
            context.abort_with_status(
                to_status(not_found("file", f"{request.name}/{request.path}"))
            )
        # Several small chunks, so the client has to join them.
        for offset in range(request.offset, len(data), 4):
            yield task_pb2.TaskFileChunk(data=data[offset : offset + 4], offset=offset)


class StandinGateway:
    """Serve the stand-in API on a free loopback port until stopped."""

    def __init__(self) -> None:
        self.world = World()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pool_pb2_grpc.add_PoolServiceServicer_to_server(Pools(self.world), self.server)
        job_pb2_grpc.add_JobServiceServicer_to_server(Jobs(self.world), self.server)
        task_pb2_grpc.add_TaskServiceServicer_to_server(Tasks(self.world), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{port}"

    def complete(
        self, job_id: str, task_id: str, *, ok: bool, node: str = "pools/p/nodes/n1"
    ) -> None:
        """Make a task completed, as if a node had run it."""
        with self.world.lock:
            task = self.world.tasks[job_id][task_id]
            task.state = task_pb2.Task.COMPLETED
            task.execution_info.node = node
            task.execution_info.exit_code = 0 if ok else 1
            task.execution_info.result = (
                task_pb2.TaskExecutionInfo.SUCCESS if ok else task_pb2.TaskExecutionInfo.FAILURE
            )

    def __enter__(self) -> StandinGateway:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(0).wait()
