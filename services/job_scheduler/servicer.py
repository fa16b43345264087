"""Thin grpc.aio layer of the job-scheduler: convert the request, await the app, convert back.

Errors are not handled here: ShoalError goes up to services.common.rpc.ServiceInterceptor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import grpc
import structlog
from google.protobuf import empty_pb2

from services.common import credentials, paging
from services.common.errors import Code, ShoalError, invalid
from services.common.filters import parse_state_filter
from services.common.ids import check_id, parse_name
from services.common.rpc import account
from services.common.timeutil import to_timestamp
from services.job_scheduler import convert
from services.job_scheduler.engine import Engine
from services.job_scheduler.model import JobState, TaskState
from services.job_scheduler.task_filter import parse_task_filter
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.cluster_config import ClusterConfig
from shoal.internal.v1 import scheduler_control_pb2 as ctl_pb2
from shoal.internal.v1 import scheduler_control_pb2_grpc as ctl_grpc
from shoal.v1 import job_pb2, job_pb2_grpc, pool_pb2, task_pb2, task_pb2_grpc

log = structlog.get_logger()

JOB_STATES = {s.name for s in JobState}
TASK_STATES = {s.name for s in TaskState}
OUTBOUND_LINGER = 0.001
"""Seconds a stream's writer waits before it merges what is queued for the node."""
CONVERT_CHUNK = 100
T = TypeVar("T")


def _job_id(name: str, field: str = "name") -> str:
    (job_id,) = parse_name(name, "jobs/{job}", field)
    structlog.contextvars.bind_contextvars(job=job_id)
    return job_id


def _revised(msg: T, revision: int) -> T:
    """An answer with the revision taken when the call began: everything committed up to it
    is in the answer (maybe more), so a watch from it misses nothing."""
    msg.revision = revision  # type: ignore[attr-defined]
    return msg


class JobServicer(job_pb2_grpc.JobServiceServicer):
    def __init__(self, app: Engine) -> None:
        self.app = app

    async def CreateJob(self, request: job_pb2.CreateJobRequest, context: object) -> job_pb2.Job:
        rev = self.app.revision(account())
        return _revised(convert.job(await self.app.create_job(account(), request)), rev)

    async def GetJob(self, request: job_pb2.GetJobRequest, context: object) -> job_pb2.Job:
        rev = self.app.revision(account())
        return _revised(convert.job(self.app.get_job(account(), _job_id(request.name))), rev)

    async def ListJobs(self, request: job_pb2.ListJobsRequest, context: object) -> job_pb2.ListJobsResponse:
        rev = self.app.revision(account())
        want = paging.PageRequest.of(request.page_size, request.page_token)
        states = parse_state_filter(request.filter, JOB_STATES)
        jobs, token = want.page(self.app.list_jobs(account(), states, want.after, want.limit),
                                lambda j: j.id)
        return job_pb2.ListJobsResponse(jobs=[convert.job(j) for j in jobs], next_page_token=token,
                                        revision=rev)

    async def TerminateJob(self, request: job_pb2.TerminateJobRequest, context: object) -> job_pb2.Job:
        rev = self.app.revision(account())
        job = await self.app.terminate_job(account(), _job_id(request.name), request.reason)
        return _revised(convert.job(job), rev)

    async def DeleteJob(self, request: job_pb2.DeleteJobRequest, context: object) -> empty_pb2.Empty:
        await self.app.delete_job(account(), _job_id(request.name))
        return empty_pb2.Empty()

    async def DisableJob(self, request: job_pb2.DisableJobRequest, context: object) -> job_pb2.Job:
        rev = self.app.revision(account())
        job = await self.app.disable_job(account(), _job_id(request.name), request.disable_tasks)
        return _revised(convert.job(job), rev)

    async def EnableJob(self, request: job_pb2.EnableJobRequest, context: object) -> job_pb2.Job:
        rev = self.app.revision(account())
        return _revised(convert.job(await self.app.enable_job(account(), _job_id(request.name))),
                        rev)

    async def WatchJob(
        self, request: job_pb2.WatchJobRequest, context: object
    ) -> AsyncIterator[job_pb2.WatchJobResponse]:
        job_id = _job_id(request.name)
        if request.from_revision < 0:
            raise invalid("from_revision", "must not be negative")
        states = parse_state_filter(request.task_filter, TASK_STATES, "task_filter")
        if request.job_summary and states is not None:
            raise invalid("task_filter", "a job_summary watch sends no task changes: leave "
                                         "task_filter empty")
        async for response in self.app.watch_job(
            account(), job_id, request.from_revision, states, request.job_only,
            request.job_summary,
        ):
            yield response

    async def UpdateJob(self, request: job_pb2.UpdateJobRequest, context: object) -> job_pb2.Job:
        rev = self.app.revision(account())
        job_id = _job_id(request.name)
        changes = convert.job_changes(request)
        job = await self.app.update_job(account(), job_id, changes, request.if_match)
        return _revised(convert.job(job), rev)


class TaskServicer(task_pb2_grpc.TaskServiceServicer):
    def __init__(self, app: Engine) -> None:
        self.app = app

    async def CreateTask(self, request: task_pb2.CreateTaskRequest, context: object) -> task_pb2.Task:
        rev = self.app.revision(account())
        job_id = _job_id(request.parent, "parent")
        spec = convert.task_spec(request.task_id, request.task)
        return _revised(convert.task(await self.app.create_task(account(), job_id, spec)), rev)

    async def BatchCreateTasks(
        self, request: task_pb2.BatchCreateTasksRequest, context: object
    ) -> task_pb2.BatchCreateTasksResponse:
        job_id = _job_id(request.parent, "parent")
        specs = []
        for i, r in enumerate(request.requests):
            if r.parent and r.parent != request.parent:
                raise invalid(f"requests[{i}].parent", f"must be empty or {request.parent!r}")
            specs.append(convert.task_spec(r.task_id, r.task, f"requests[{i}]."))
            if i % CONVERT_CHUNK == CONVERT_CHUNK - 1:
                # A 1,000-task batch is tens of ms of checks (more on a busy machine): other
                # calls (another account's GetJob) get in between, as in ListTasks.
                await asyncio.sleep(0)
        n = await self.app.create_tasks(account(), job_id, specs)
        return task_pb2.BatchCreateTasksResponse(created_count=n)

    async def GetTask(self, request: task_pb2.GetTaskRequest, context: object) -> task_pb2.Task:
        rev = self.app.revision(account())
        job_id, task_id = parse_name(request.name, "jobs/{job}/tasks/{task}", "name")
        return _revised(convert.task(await self.app.get_task(account(), job_id, task_id)), rev)

    async def TerminateTask(self, request: task_pb2.TerminateTaskRequest, context: object) -> task_pb2.Task:
        rev = self.app.revision(account())
        job_id, task_id = parse_name(request.name, "jobs/{job}/tasks/{task}", "name")
        return _revised(convert.task(await self.app.terminate_task(account(), job_id, task_id)),
                        rev)

    async def ReactivateTask(self, request: task_pb2.ReactivateTaskRequest, context: object) -> task_pb2.Task:
        rev = self.app.revision(account())
        job_id, task_id = parse_name(request.name, "jobs/{job}/tasks/{task}", "name")
        return _revised(convert.task(await self.app.reactivate_task(account(), job_id, task_id)),
                        rev)

    async def UnblockTask(self, request: task_pb2.UnblockTaskRequest, context: object) -> task_pb2.Task:
        rev = self.app.revision(account())
        job_id, task_id = parse_name(request.name, "jobs/{job}/tasks/{task}", "name")
        return _revised(convert.task(await self.app.unblock_task(account(), job_id, task_id)),
                        rev)

    async def UpdateTask(self, request: task_pb2.UpdateTaskRequest, context: object) -> task_pb2.Task:
        job_id, task_id = parse_name(request.name, "jobs/{job}/tasks/{task}", "name")
        changes = convert.task_changes(request)
        return convert.task(await self.app.update_task(account(), job_id, task_id, changes,
                                                       request.if_match))

    async def DeleteTask(self, request: task_pb2.DeleteTaskRequest, context: object) -> empty_pb2.Empty:
        job_id, task_id = parse_name(request.name, "jobs/{job}/tasks/{task}", "name")
        await self.app.delete_task(account(), job_id, task_id)
        return empty_pb2.Empty()

    async def ExplainTask(
        self, request: task_pb2.ExplainTaskRequest, context: object
    ) -> task_pb2.TaskExplanation:
        job_id, task_id = parse_name(request.name, "jobs/{job}/tasks/{task}", "name")
        e = await self.app.explain_task(account(), job_id, task_id)
        return task_pb2.TaskExplanation(state=e.task.state.name, summary=e.summary,
                                        reasons=e.reasons, details=e.details)

    async def ListTasks(
        self, request: task_pb2.ListTasksRequest, context: object
    ) -> task_pb2.ListTasksResponse:
        rev = self.app.revision(account())
        job_id = _job_id(request.parent, "parent")
        want = paging.PageRequest.of(request.page_size, request.page_token)
        where = parse_task_filter(request.filter)
        tasks, token = want.page(
            await self.app.list_tasks(account(), job_id, where, want.after, want.limit),
            lambda t: t.spec.id)
        out = task_pb2.ListTasksResponse(next_page_token=token, revision=rev)
        for i in range(0, len(tasks), CONVERT_CHUNK):
            if i:
                # A page of a thousand tasks is ~15 ms of conversion: let other calls (a
                # CreateTask, an agent's results) in between, not behind all of it.
                await asyncio.sleep(0)
            out.tasks.extend(convert.task(t) for t in tasks[i : i + CONVERT_CHUNK])
        return out

    async def ReadTaskFile(
        self, request: task_pb2.ReadTaskFileRequest, context: object
    ) -> AsyncIterator[task_pb2.TaskFileChunk]:
        job_id, task_id = parse_name(request.name, "jobs/{job}/tasks/{task}", "name")
        async for offset, data in self.app.read_task_file(
            account(), job_id, task_id, request.path, request.offset,
            follow=request.follow, tail_lines=request.tail_lines,
        ):
            yield task_pb2.TaskFileChunk(data=data, offset=offset)


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """One bidirectional stream per node. Authenticated by the node credential in Hello."""

    def __init__(self, app: Engine, config: ClusterConfig) -> None:
        self.app = app
        self.config = config

    async def Connect(
        self, request_iterator: AsyncIterator[agent_pb2.AgentMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.SchedulerMessage]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            return
        hello = first.hello
        pool_id, node_id = parse_name(hello.node, "pools/{pool}/nodes/{node}", "hello.node")
        ident = credentials.verify(self.config, pool_id, node_id, hello.credential)
        if ident is None:
            raise ShoalError(Code.UNAUTHENTICATED, "INVALID_NODE_CREDENTIAL",
                             f"hello.credential: not valid for {hello.node}", "hello.credential")
        structlog.contextvars.bind_contextvars(account=ident.account, node=hello.node)
        key = (ident.account, pool_id.lower(), node_id)
        session, stream_id, out, welcome = await self.app.connect(key, pool_id, node_id, ident.slots, hello)

        async def take(msg: agent_pb2.AgentMessage) -> None:
            await self.app.on_agent_message(session, stream_id, msg)
            if msg.heartbeat.sequence and session.stream_id == stream_id:
                out.heard(msg.heartbeat.sequence)  # the node is heard: tell it so

        async def pump() -> None:
            try:
                if first.results or first.started or first.heartbeat.sequence:
                    await take(first)
                async for msg in request_iterator:
                    await take(msg)
            except (asyncio.CancelledError, grpc.aio.AioRpcError):
                pass
            except Exception:
                log.exception("agent stream failed")
            finally:
                out.close()

        reader: asyncio.Task[None] | None = None
        try:
            # Inside the try: a stream cancelled at any point still disconnects its session.
            yield out.stamp(welcome)
            reader = asyncio.create_task(pump())
            while True:
                msg = await out.queue.get()
                if msg is None:
                    break
                # Linger a moment, then merge whatever else is waiting (the acks of one batch,
                # the assignments of the next) into one message: one write for a burst.
                await asyncio.sleep(OUTBOUND_LINGER)
                while not out.queue.empty():
                    more = out.queue.get_nowait()
                    if more is None:
                        out.close()
                        break
                    msg.MergeFrom(more)
                yield out.stamp(msg)
        finally:
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            await self.app.disconnect(session, stream_id)


class ControlServicer(ctl_grpc.SchedulerControlServiceServicer):
    def __init__(self, app: Engine) -> None:
        self.app = app

    async def ListNodeSessions(
        self, request: ctl_pb2.ListNodeSessionsRequest, context: object
    ) -> ctl_pb2.ListNodeSessionsResponse:
        check_id(request.pool_id, "pool_id")
        return ctl_pb2.ListNodeSessionsResponse(sessions=[
            ctl_pb2.NodeSession(
                node_id=s.node_id, state=s.observed.name,
                total_slots=s.total_slots, running_slots=s.used_slots,
                running_tasks=len(s.attempts), completed_tasks=s.completed_tasks,
                last_heartbeat_time=to_timestamp(s.last_seen), hostname=s.hostname,
                removing=s.removing, setup_failure=convert.failure_info(s.setup_failure),
                start_task_info=task_pb2.NodeTaskInfo.FromString(s.start_task_info)
                if s.start_task_info else None,
                errors=[*(pool_pb2.NodeError.FromString(e) for e in s.errors),
                        *convert.disk_errors(s, self.app.timing.node_min_free_bytes)],
                scheduling_disabled=s.scheduling_disabled,
            )
            for s in self.app.node_sessions(account(), request.pool_id)
        ])

    async def RemoveNodes(self, request: ctl_pb2.RemoveNodesRequest, context: object) -> empty_pb2.Empty:
        check_id(request.pool_id, "pool_id")
        for i, n in enumerate(request.node_ids):
            check_id(n, f"node_ids[{i}]")
        option = request.option or pool_pb2.REQUEUE
        if option not in pool_pb2.NodeDeallocationOption.values():
            raise invalid("option", f"unknown node deallocation option {option}")
        await self.app.remove_nodes(account(), request.pool_id, list(request.node_ids), option)
        return empty_pb2.Empty()

    async def WatchNodeSessions(
        self, request: ctl_pb2.WatchNodeSessionsRequest, context: object
    ) -> AsyncIterator[ctl_pb2.NodeSessionsChanged]:
        """For the pool-manager: which pools' sessions changed, of every account."""
        async for pools in self.app.feed.sessions.stream():
            if pools is None:
                yield ctl_pb2.NodeSessionsChanged(resync=True)
            else:
                yield ctl_pb2.NodeSessionsChanged(pools=[
                    ctl_pb2.NodeSessionsChanged.Pool(account=a, pool_id=p) for a, p in pools])

    async def SetNodeScheduling(
        self, request: ctl_pb2.SetNodeSchedulingRequest, context: object
    ) -> empty_pb2.Empty:
        check_id(request.pool_id, "pool_id")
        check_id(request.node_id, "node_id")
        option = request.option or pool_pb2.REQUEUE
        if option not in pool_pb2.NodeDeallocationOption.values():
            raise invalid("option", f"unknown node deallocation option {option}")
        await self.app.set_node_scheduling(
            account(), request.pool_id, request.node_id, request.enabled, option)
        return empty_pb2.Empty()
