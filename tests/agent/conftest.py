"""Fixtures for the agent's tests: a deadline wait, assignments, and for the end-to-end tests
test doubles of the pool-manager's NodeRegistryService and the scheduler's AgentService on a
real grpc.aio server, plus the agent itself as a real `python -m agent` subprocess."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from services.common.node_processes import RootLock, kill_leftovers
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")


@pytest.fixture
def wait_for() -> Callable[..., Awaitable[Any]]:
    return eventually


def make_assignment(
    attempt_id: str, command_line: str, *, job: str = "j1", task: str | None = None, **kw: Any
) -> agent_pb2.Assignment:
    return agent_pb2.Assignment(
        attempt_id=attempt_id,
        job_id=job,
        task_id=task or f"t-{attempt_id}",
        command_line=command_line,
        required_slots=kw.pop("required_slots", 1),
        attempt_number=kw.pop("attempt_number", 1),
        **kw,
    )


@pytest.fixture
def assignment() -> Callable[..., agent_pb2.Assignment]:
    return make_assignment


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return False
    return text[text.rfind(")") + 2] not in "ZX"


@pytest.fixture
def is_alive() -> Callable[[int], bool]:
    return alive


# --- test doubles of the control plane (other components), speaking the real protocol ---


class FakeRegistry(agent_pb2_grpc.NodeRegistryServiceServicer):
    def __init__(self) -> None:
        self.requests: list[agent_pb2.RegisterNodeRequest] = []
        self.token = "join-me"
        self.scheduler_address = ""
        self.unavailable_first = 0
        self.task_slots = 2
        self.generation = 0
        self.node_gone = False
        self.start_task: agent_pb2.StartTaskRun | None = None
        """The pool's start task, handed out with every registration."""
        self.on_register: Callable[[], None] | None = None
        """Called as each registration arrives, before it is answered."""

    @property
    def credential(self) -> str:
        return f"cred-{self.generation}"

    async def RegisterNode(self, request: Any, context: Any) -> agent_pb2.RegisterNodeResponse:
        self.requests.append(request)
        if self.on_register is not None:
            self.on_register()
        if len(self.requests) <= self.unavailable_first:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "pool-manager starting")
        if self.node_gone:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"node {request.node_id!r} not found")
        if request.join_token != self.token:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "join token not accepted")
        self.generation += 1
        return agent_pb2.RegisterNodeResponse(
            node=f"pools/p1/nodes/{request.node_id}",
            credential=self.credential,
            scheduler_address=self.scheduler_address,
            task_slots=self.task_slots,
            start_task=self.start_task,
        )


class Stream:
    """One agent stream as the fake scheduler saw it."""

    def __init__(self, first: agent_pb2.AgentMessage) -> None:
        self.received = [first]
        self.outbound: asyncio.Queue[agent_pb2.SchedulerMessage | None] = asyncio.Queue()
        self.ended = False

    @property
    def hello(self) -> agent_pb2.Hello:
        return self.received[0].hello

    def results(self) -> dict[str, agent_pb2.TaskResult]:
        return {r.attempt_id: r for m in self.received for r in m.results}

    def started(self) -> set[str]:
        return {s.attempt_id for m in self.received for s in m.started}

    def heartbeats(self) -> list[agent_pb2.Heartbeat]:
        return [m.heartbeat for m in self.received if m.HasField("heartbeat")]

    def staging_requests(self) -> list[agent_pb2.StagingRequest]:
        return [r for m in self.received for r in m.staging_requests]

    def start_task_infos(self) -> list[Any]:
        """The start task's progress as the agent sent it after its hello, in order."""
        return [m.start_task_info for m in self.received[1:] if m.HasField("start_task_info")]

    def node_errors(self) -> list[Any]:
        return [e for m in self.received for e in m.node_errors]

    def chunks(self, request_id: int) -> list[agent_pb2.FileChunk]:
        return [c for m in self.received for c in m.file_chunks if c.request_id == request_id]

    def send(self, **fields: Any) -> None:
        self.outbound.put_nowait(agent_pb2.SchedulerMessage(**fields))

    def close(self) -> None:
        """End the stream from the scheduler's side."""
        self.outbound.put_nowait(None)


class FakeScheduler(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry
        self.streams: list[Stream] = []
        self.refused: list[agent_pb2.AgentMessage] = []
        self.refuse_next = 0
        self.heartbeat_interval = 0.2
        self.upload_logs = False
        self.fence_after = 0.0
        """Welcome.fence_after; 0: none."""
        self.echo = False
        """Echo each heartbeat (SchedulerMessage.heartbeat_seen), as the scheduler does."""

    async def Connect(self, request_iterator: Any, context: Any) -> None:
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        if self.refuse_next > 0 or first.hello.credential != self.registry.credential:
            self.refuse_next = max(0, self.refuse_next - 1)
            self.refused.append(first)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown node credential")
        s = Stream(first)
        self.streams.append(s)
        interval, fence = Duration(), Duration()
        interval.FromNanoseconds(int(self.heartbeat_interval * 1e9))
        fence.FromNanoseconds(int(self.fence_after * 1e9))
        await context.write(
            agent_pb2.SchedulerMessage(welcome=agent_pb2.Welcome(
                heartbeat_interval=interval, upload_logs=self.upload_logs,
                fence_after=fence if self.fence_after else None))
        )
        reader = asyncio.create_task(self._read(context, s))
        try:
            while True:
                m = await s.outbound.get()
                if m is None:
                    return
                await context.write(m)
        finally:
            s.ended = True
            reader.cancel()

    async def _read(self, context: Any, s: Stream) -> None:
        while True:
            m = await context.read()
            if m is grpc.aio.EOF:
                return
            s.received.append(m)
            if self.echo and m.heartbeat.sequence:
                s.send(heartbeat_seen=m.heartbeat.sequence)


class ControlPlane:
    """The registry and the scheduler, each on its own real server, so the scheduler can go
    away and come back on the same address while the agent lives."""

    def __init__(self) -> None:
        self.registry = FakeRegistry()
        self.scheduler = FakeScheduler(self.registry)
        self._registry_server: grpc.aio.Server | None = None
        self._scheduler_server: grpc.aio.Server | None = None
        self.address = ""
        self.scheduler_port = 0

    async def start(self) -> None:
        self._registry_server = grpc.aio.server()
        port = self._registry_server.add_insecure_port("127.0.0.1:0")
        agent_pb2_grpc.add_NodeRegistryServiceServicer_to_server(self.registry, self._registry_server)
        await self._registry_server.start()
        self.address = f"127.0.0.1:{port}"
        await self.start_scheduler()
        self.registry.scheduler_address = f"127.0.0.1:{self.scheduler_port}"

    async def start_scheduler(self) -> None:
        server = grpc.aio.server()
        port = server.add_insecure_port(f"127.0.0.1:{self.scheduler_port}")
        assert port, "cannot listen on the scheduler's port"
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self.scheduler, server)
        await server.start()
        self.scheduler_port = port
        self._scheduler_server = server

    async def stop_scheduler(self) -> None:
        if self._scheduler_server is not None:
            await self._scheduler_server.stop(0)
            self._scheduler_server = None

    async def stop(self) -> None:
        await self.stop_scheduler()
        if self._registry_server is not None:
            await self._registry_server.stop(0)

    async def stream(self, n: int) -> Stream:
        """The n-th stream (1-based) once the agent opened it."""
        streams = self.scheduler.streams
        return await eventually(lambda: len(streams) >= n and streams[n - 1], f"stream {n}")


@pytest.fixture
async def control_plane() -> AsyncIterator[ControlPlane]:
    cp = ControlPlane()
    await cp.start()
    yield cp
    await cp.stop()


class AgentProcess:
    def __init__(self, proc: asyncio.subprocess.Process, log: Path, node_root: Path) -> None:
        self.proc = proc
        self.log = log
        self.node_root = node_root

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def exit_code(self, within: float = 20.0) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            raise AssertionError(f"agent did not exit; log:\n{self.log.read_text()}") from None

    def log_text(self) -> str:
        return self.log.read_text()


@pytest.fixture
async def start_agent(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[AgentProcess]]]:
    started: list[AgentProcess] = []

    async def start(
        cp: ControlPlane, node_root: Path, *, token: str | None = None, node_id: str = "n1",
        args: tuple[str, ...] = (),
    ) -> AgentProcess:
        log = tmp_path / f"agent-{len(started)}.log"
        with open(log, "wb") as out:  # noqa: ASYNC230 - opening a local log file is instant
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent",
                "--pool-manager", cp.address,
                "--join-token", token if token is not None else cp.registry.token,
                "--node-id", node_id,
                "--node-root", str(node_root),
                "--log-level", "debug", *args,
                cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )
        a = AgentProcess(proc, log, node_root)
        started.append(a)
        return a

    yield start
    for a in started:
        if a.proc.returncode is None:
            a.proc.kill()
            await a.proc.wait()
    # Tasks of an agent killed by a test run in their own sessions: do not leak them.
    for root in {a.node_root for a in started}:
        if root.is_dir():
            with RootLock.acquire(root, 10):
                kill_leftovers(root)
