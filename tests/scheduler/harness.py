"""A small harness that drives the real scheduler engine (and its core) without a network,
in the spirit of Nomad's scheduler harness: a real SQLite store in a tmp dir, an injected
clock, and node doubles that speak the agent protocol's messages straight to the engine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from services.common.errors import ShoalError, not_found
from services.job_scheduler.engine import Engine, Outbound
from services.job_scheduler.model import TaskDefinition
from services.job_scheduler.pool_peer import PoolInfo
from services.job_scheduler.sessions import NodeSession
from services.job_scheduler.store import Store
from shoal.agent.v1 import agent_pb2
from shoal.cluster_config import SchedulerTiming
from shoal.v1 import job_pb2, task_pb2
from tests.support import ManualClock

ACCOUNT = "acct"
TIMING = SchedulerTiming(heartbeat_interval=1.0, unreachable_after=3.0, lost_after=10.0,
                         reconnect_grace=10.0, max_requeue_count=5)


Clock = ManualClock


async def known_pools(account: str, pool_id: str) -> PoolInfo:
    """Pools "p" and "q" (spread), and "k" (pack)."""
    if pool_id.lower() not in ("p", "q", "k"):
        raise not_found("pool", pool_id)
    return PoolInfo(pool_id.lower(), pool_id.lower() == "k", 0, False)


@dataclass
class Node:
    """A node double: what the scheduler sent it, and helpers to answer."""

    app: Engine
    node_id: str
    slots: int
    pool: str = "p"
    session: NodeSession | None = None
    stream_id: int = 0
    out: Outbound | None = None
    received: list[agent_pb2.SchedulerMessage] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)

    async def connect(self) -> agent_pb2.SchedulerMessage:
        hello = agent_pb2.Hello(node=f"pools/{self.pool}/nodes/{self.node_id}",
                                task_slots=self.slots, running_attempts=sorted(self.running),
                                finished_attempts=sorted(self.finished))
        key = (ACCOUNT, self.pool, self.node_id)
        self.session, self.stream_id, self.out, welcome = await self.app.connect(
            key, self.pool, self.node_id, self.slots, hello)
        return welcome

    def drain(self) -> list[agent_pb2.SchedulerMessage]:
        """Everything sent down the stream so far."""
        assert self.out is not None
        got = []
        while not self.out.queue.empty():
            m = self.out.queue.get_nowait()
            if m is not None:
                got.append(m)
        self.received.extend(got)
        return got

    def assignments(self) -> list[agent_pb2.Assignment]:
        out = [a for m in self.drain() for a in m.assignments]
        self.running |= {a.attempt_id for a in out}
        return out

    async def finish(self, attempt_id: str, exit_code: int | None = 0,
                     failure: tuple[int, str] | None = None) -> None:
        assert self.session is not None
        r = agent_pb2.TaskResult(attempt_id=attempt_id, end_time=Timestamp(seconds=2))
        if exit_code is not None:
            r.exit_code = exit_code
        if failure:
            r.failure_info.category, r.failure_info.code = failure
        self.running.discard(attempt_id)
        await self.app.on_agent_message(self.session, self.stream_id,
                                        agent_pb2.AgentMessage(results=[r]))

    async def cancelled(self, attempt_id: str, exit_code: int | None = 137) -> None:
        """Report an attempt stopped because the scheduler cancelled it, as the agent does."""
        await self.finish(attempt_id, exit_code, (task_pb2.FailureInfo.USER_ERROR, "TASK_CANCELLED"))

    async def start(self, attempt_id: str) -> None:
        assert self.session is not None
        await self.app.on_agent_message(self.session, self.stream_id, agent_pb2.AgentMessage(
            started=[agent_pb2.TaskStarted(attempt_id=attempt_id, start_time=Timestamp(seconds=1))]))

    async def disconnect(self) -> None:
        assert self.session is not None
        await self.app.disconnect(self.session, self.stream_id)

    async def heartbeat(self) -> None:
        assert self.session is not None
        await self.app.on_agent_message(self.session, self.stream_id, agent_pb2.AgentMessage(
            heartbeat=agent_pb2.Heartbeat(sequence=1)))


@dataclass
class Gate:
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    skip: int = 0


class GatedStore(Store):
    """The real store, with one-shot gates that hold a chosen method at its start, so a test
    can act while the scheduler is suspended at exactly that await. It changes no behaviour:
    it makes interleavings that production meets by timing luck happen on purpose."""

    gates: dict[str, Gate]

    def hold(self, method: str, skip: int = 0) -> Gate:
        """Hold the call of `method` after `skip` calls have gone through."""
        if not hasattr(self, "gates"):
            self.gates = {}
        g = self.gates[method] = Gate(skip=skip)
        return g

    async def _gate(self, method: str) -> None:
        g = getattr(self, "gates", {}).get(method)
        if g is None:
            return
        if g.skip:
            g.skip -= 1
            return
        del self.gates[method]
        g.entered.set()
        await g.release.wait()

    async def commit(self) -> None:
        await self._gate("commit")
        await super().commit()

    async def insert_tasks(self, job_pk, tasks, now):  # type: ignore[no-untyped-def]
        await self._gate("insert_tasks")
        return await super().insert_tasks(job_pk, tasks, now)

    async def dispatch_info(self, task_pks):  # type: ignore[no-untyped-def]
        await self._gate("dispatch_info")
        return await super().dispatch_info(task_pks)

    async def get_task(self, job_pk, task_id):  # type: ignore[no-untyped-def]
        await self._gate("get_task")
        return await super().get_task(job_pk, task_id)


class Apps:
    """Opens scheduler engines on a database file and closes them all at the end of a test."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path, self.clock = path, clock
        self.opened: list[Engine] = []

    async def open(self) -> Engine:
        app = Engine(await GatedStore.open(self.path), TIMING, known_pools, self.clock)
        await app.load()
        self.opened.append(app)
        return app

    async def restart(self, app: Engine) -> Engine:
        await app.stop()
        await app.store.close()
        self.opened.remove(app)
        return await self.open()

    async def close(self) -> None:
        for app in self.opened:
            await app.stop()
            await app.store.close()


async def settle(app: Engine) -> None:
    """Run dispatch rounds until nothing more can be placed (no background loops here)."""
    for _ in range(20):
        if not app.core.candidates():
            return
        await app.dispatch_once()
    raise AssertionError("dispatch did not settle")


async def make_job(app: Engine, job_id: str = "j", pool: str = "p", **kw: object) -> None:
    req = job_pb2.CreateJobRequest(job_id=job_id, job=job_pb2.Job(pool=f"pools/{pool}", **kw))
    await app.create_job(ACCOUNT, req)


def specs(n: int, prefix: str = "t", retries: int = 0) -> list[TaskDefinition]:
    return [TaskDefinition(f"{prefix}{i}", f"echo {i}", {}, None, retries) for i in range(n)]


async def expect_error(coro: object, reason: str) -> ShoalError:
    try:
        await coro  # type: ignore[misc]
    except ShoalError as e:
        assert e.reason == reason, (e.reason, e.message)
        return e
    raise AssertionError(f"expected {reason}")



async def one_node(
    apps: Apps, slots: int, tasks: int = 0, *, retries: int = 0
) -> tuple[Engine, Node]:
    """A scheduler with job "j" on pool "p", one connected node "a" with `slots` slots, and
    `tasks` tasks added (t0, t1, ...), none dispatched yet."""
    app = await apps.open()
    await make_job(app)
    n = Node(app, "a", slots)
    await n.connect()
    if tasks:
        await app.create_tasks(ACCOUNT, "j", specs(tasks, retries=retries))
    return app, n
