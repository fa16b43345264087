"""Fixtures for the pool-manager tests: a real service on port 0, a scheduler test double
served over real gRPC, and clients that call with the service token and an account."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf import empty_pb2

from services.common import rpc
from services.common.timeutil import to_timestamp
from services.pool_manager.main import PoolManagerService
from shoal.agent.v1 import agent_pb2_grpc
from shoal.cluster_config import ClusterConfig
from shoal.internal.v1 import scheduler_control_pb2 as sc_pb2
from shoal.internal.v1 import scheduler_control_pb2_grpc as sc_grpc
from shoal.v1 import pool_pb2, pool_pb2_grpc
from tests.support import eventually

STAND_IN_AGENT = (sys.executable, str(Path(__file__).with_name("stand_in_agent.py")))

T = TypeVar("T")
D = TypeVar("D", bound="FakeScheduler")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class FakeScheduler(sc_grpc.SchedulerControlServiceServicer):
    """Test double of the job-scheduler's control service (another component).

    Sessions are set by the test; RemoveNodes calls are recorded. It sits behind the real
    ServiceInterceptor, so a call without the service token and account fails as it would.
    """

    def __init__(self) -> None:
        self.sessions: dict[tuple[str, str], dict[str, sc_pb2.NodeSession]] = {}
        self.removed: list[tuple[str, str, tuple[str, ...], int]] = []
        self.available = True
        self.session_calls = 0
        # Seconds ListNodeSessions takes for a pool: keeps a reconcile round open (it asks
        # the pools one after another) while other things happen.
        self.session_delay: dict[str, float] = {}
        self._watchers: list[asyncio.Queue[tuple[str, str]]] = []

    def changed(self, account: str, pool: str) -> None:
        """Tell the pool-manager's WatchNodeSessions streams, as the scheduler does."""
        for q in self._watchers:
            q.put_nowait((account, pool.lower()))

    def connect(
        self, account: str, pool: str, node: str, running_tasks: int = 0, slots: int = 1,
        state: Any = sc_pb2.NodeSession.CONNECTED,
    ) -> None:
        self.sessions.setdefault((account, pool), {})[node] = sc_pb2.NodeSession(
            node_id=node, state=state, total_slots=slots, running_slots=running_tasks,
            running_tasks=running_tasks, completed_tasks=7, hostname=f"live-{node}",
            last_heartbeat_time=to_timestamp(1_700_000_000.0),
        )
        self.changed(account, pool)

    def removed_nodes(self, pool: str) -> dict[str, int]:
        """node id -> option of every RemoveNodes call for the pool."""
        return {n: opt for _, p, nodes, opt in self.removed if p == pool for n in nodes}

    async def _check(self, context: grpc.aio.ServicerContext) -> None:
        if not self.available:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scheduler is down (test)")

    async def ListNodeSessions(self, request: Any, context: Any) -> Any:
        await self._check(context)
        self.session_calls += 1
        await asyncio.sleep(self.session_delay.get(request.pool_id, 0.0))
        live = self.sessions.get((rpc.account(), request.pool_id), {})
        return sc_pb2.ListNodeSessionsResponse(sessions=list(live.values()))

    async def WatchNodeSessions(self, request: Any, context: Any) -> Any:
        await self._check(context)
        q: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._watchers.append(q)
        try:
            yield sc_pb2.NodeSessionsChanged(resync=True)
            while True:
                account, pool = await q.get()
                yield sc_pb2.NodeSessionsChanged(
                    pools=[sc_pb2.NodeSessionsChanged.Pool(account=account, pool_id=pool)])
        finally:
            self._watchers.remove(q)

    async def RemoveNodes(self, request: Any, context: Any) -> Any:
        await self._check(context)
        self.removed.append(
            (rpc.account(), request.pool_id, tuple(request.node_ids), request.option)
        )
        live = self.sessions.get((rpc.account(), request.pool_id), {})
        for node_id in request.node_ids:  # as the job-scheduler's sessions remember it
            if node_id in live:
                live[node_id].removing = True
        return empty_pb2.Empty()


class Client:
    """Calls the pool-manager as the gateway would: service token + account metadata."""

    def __init__(self, channel: grpc.aio.Channel, token: str, account: str) -> None:
        self.channel = channel
        self.account = account
        self.pools = pool_pb2_grpc.PoolServiceStub(channel)
        self.registry = agent_pb2_grpc.NodeRegistryServiceStub(channel)
        self.md = rpc.internal_metadata(token, account)

    def __getattr__(self, method: str) -> Callable[[Any], Awaitable[Any]]:
        call = getattr(self.pools, method)
        return lambda request: call(request, metadata=self.md, timeout=10)

    async def nodes(self, pool: str, filter: str = "") -> list[pool_pb2.Node]:
        resp = await self.ListNodes(pool_pb2.ListNodesRequest(parent=f"pools/{pool}", filter=filter))
        return list(resp.nodes)

    async def create(self, pool: str, target: int = 0, slots: int = 1) -> pool_pb2.Pool:
        return await self.CreatePool(pool_pb2.CreatePoolRequest(
            pool_id=pool, pool=pool_pb2.Pool(target_nodes=target, task_slots_per_node=slots)
        ))


@pytest.fixture
def cluster(tmp_path: Path) -> ClusterConfig:
    return ClusterConfig.new(tmp_path / "state", pool_manager_address="127.0.0.1:0")


@contextlib.asynccontextmanager
async def serving(double: D, cluster: ClusterConfig) -> AsyncIterator[tuple[D, str]]:
    """A scheduler double behind the real interceptor, on a loopback port."""
    server = grpc.aio.server(interceptors=[rpc.ServiceInterceptor(
        cluster.service_token, cluster_wide=(rpc.WATCH_NODE_SESSIONS,))])
    sc_grpc.add_SchedulerControlServiceServicer_to_server(double, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield double, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


@pytest.fixture
async def scheduler(cluster: ClusterConfig) -> AsyncIterator[tuple[FakeScheduler, str]]:
    async with serving(FakeScheduler(), cluster) as served:
        yield served


@pytest.fixture
def config(cluster: ClusterConfig, scheduler: tuple[FakeScheduler, str]) -> ClusterConfig:
    return dataclasses.replace(cluster, job_scheduler_address=scheduler[1])


@pytest.fixture
def fake_scheduler(scheduler: tuple[FakeScheduler, str]) -> FakeScheduler:
    return scheduler[0]


def make_service(config: ClusterConfig) -> PoolManagerService:
    return PoolManagerService(
        config, agent_command=STAND_IN_AGENT, stop_timeout=5.0, reconcile_interval=0.1
    )


@pytest.fixture
async def service(config: ClusterConfig) -> AsyncIterator[PoolManagerService]:
    svc = make_service(config)
    await svc.start()
    yield svc
    await svc.stop()


@pytest.fixture
async def channel(service: PoolManagerService) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as ch:
        yield ch


@pytest.fixture
def client(channel: grpc.aio.Channel, config: ClusterConfig) -> Client:
    return Client(channel, config.service_token, "acct-a")


@pytest.fixture
def other_client(channel: grpc.aio.Channel, config: ClusterConfig) -> Client:
    return Client(channel, config.service_token, "acct-b")


def node_root(config: ClusterConfig, account: str, pool: str, node: str) -> Path:
    return Path(config.state_dir) / "nodes" / account / pool / node


def registrations(config: ClusterConfig, account: str, pool: str, node: str) -> list[dict]:
    path = node_root(config, account, pool, node) / "registrations.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def must(value: T | None) -> T:
    assert value is not None
    return value


def short(name: str) -> str:
    """The last id of a resource name."""
    return name.rsplit("/", 1)[-1]


async def registered(client: Client, config: ClusterConfig, pool: str, count: int) -> list[str]:
    """The ids of the pool's nodes once there are `count` and each has registered."""
    async def check() -> list[str] | None:
        ids = [short(n.name) for n in await client.nodes(pool)]
        if len(ids) == count and all(registrations(config, client.account, pool, i) for i in ids):
            return ids
        return None

    return await eventually(check, f"{count} registered nodes in pool {pool}")


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value
