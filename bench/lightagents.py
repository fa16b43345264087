"""Many light agents in one process: node sessions that speak the real agent protocol and do
no real work.

    python -m bench.lightagents --config CLUSTER.json --pool light --count 1000 --slots 4

Each session opens AgentService/Connect on the job-scheduler with a Hello for
`pools/{pool}/nodes/l0000…`, carrying a credential minted from the cluster secret (the
benchmark plays an operator who holds it), heartbeats at the Welcome's interval ±10 %, and
answers every Assignment at once with TaskStarted and a TaskResult (exit code 0) in one
message. Acknowledged results are simply forgotten; nothing is resent after a broken stream
(a broken stream is counted, not retried: the benchmark reports it).

Talks to its parent in JSON lines: prints {"event": "connected", ...} once every session has
its Welcome; on a line "stats" from stdin prints {"event": "stats", ...}; exits when stdin
closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from services.common.credentials import NodeIdentity, mint
from services.common.timeutil import from_duration, to_timestamp
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.cluster_config import ClusterConfig

VERSION = "bench-light"
WELCOME_TIMEOUT = 60.0
# Opening a thousand streams at once would measure a connect storm, not a fleet; a few dozen
# at a time is how agents started over a while arrive.
CONNECTS_IN_FLIGHT = 50


@dataclass
class Stats:
    connected: int = 0
    broken: int = 0
    heartbeats: int = 0
    assigned: dict[str, int] = field(default_factory=dict)
    first_error: str = ""


def emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


class LightNode:
    def __init__(self, stub: agent_pb2_grpc.AgentServiceStub, node: str, credential: str,
                 slots: int, stats: Stats) -> None:
        self.stub = stub
        self.node = node
        self.credential = credential
        self.slots = slots
        self.stats = stats
        self.welcomed = asyncio.Event()
        self._lock = asyncio.Lock()  # one write at a time on the stream
        self._sequence = 0

    async def run(self, gate: asyncio.Semaphore) -> None:
        call = self.stub.Connect()
        try:
            async with gate:
                await call.write(agent_pb2.AgentMessage(hello=agent_pb2.Hello(
                    node=self.node, credential=self.credential, task_slots=self.slots,
                    agent_version=VERSION, hostname="lightagents")))
                first = await asyncio.wait_for(call.read(), WELCOME_TIMEOUT)
            if first is grpc.aio.EOF or not first.HasField("welcome"):
                raise RuntimeError("no welcome")
            interval = from_duration(first.welcome.heartbeat_interval) or 2.0
            self.stats.connected += 1
            self.welcomed.set()
            beats = asyncio.create_task(self._heartbeats(call, interval))
            try:
                while True:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        raise RuntimeError("the scheduler closed the stream")
                    if msg.assignments:
                        await self._finish(call, msg.assignments)
            finally:
                beats.cancel()
                await asyncio.gather(beats, return_exceptions=True)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - counted and reported, not fatal to the others
            self.stats.broken += 1
            if not self.stats.first_error:
                detail = e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e)
                self.stats.first_error = f"{self.node}: {type(e).__name__}: {detail}"
        finally:
            self.welcomed.set()
            call.cancel()

    async def _finish(self, call: Any, assignments: Any) -> None:
        now = to_timestamp(time.time())
        self.stats.assigned[self.node] = self.stats.assigned.get(self.node, 0) + len(assignments)
        msg = agent_pb2.AgentMessage()
        for a in assignments:
            msg.started.add(attempt_id=a.attempt_id, start_time=now)
            msg.results.add(attempt_id=a.attempt_id, exit_code=0, start_time=now, end_time=now)
        async with self._lock:
            await call.write(msg)

    async def _heartbeats(self, call: Any, interval: float) -> None:
        while True:
            await asyncio.sleep(interval * (0.9 + 0.2 * random.random()))
            self._sequence += 1
            beat = agent_pb2.Heartbeat(
                sequence=self._sequence, free_slots=self.slots, load_average=0.0,
                # What this host has: a light agent stands for a node with room.
                disk_free_bytes=shutil.disk_usage(".").free,
            )
            async with self._lock:
                await call.write(agent_pb2.AgentMessage(heartbeat=beat))
            self.stats.heartbeats += 1


async def amain(args: argparse.Namespace) -> int:
    config = ClusterConfig.load(args.config)
    stats = Stats()
    # Separate subchannel pools: otherwise every channel with equal arguments shares one
    # TCP connection and the "few channels" would be one.
    channels = [
        grpc.aio.insecure_channel(config.job_scheduler_address,
                                  options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(args.channels)
    ]
    stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in channels]
    nodes = []
    for i in range(args.count):
        node_id = f"l{i:04d}"
        ident = NodeIdentity(account=args.account, pool=args.pool, node=node_id, slots=args.slots)
        nodes.append(LightNode(stubs[i % len(stubs)], f"pools/{args.pool}/nodes/{node_id}",
                               mint(config, ident), args.slots, stats))
    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    start = time.perf_counter()
    runs = [asyncio.create_task(n.run(gate)) for n in nodes]
    await asyncio.gather(*(n.welcomed.wait() for n in nodes))
    emit("connected", sessions=stats.connected, broken=stats.broken,
         seconds=time.perf_counter() - start, first_error=stats.first_error)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"stats":
            emit("stats", connected=stats.connected, broken=stats.broken,
                 heartbeats=stats.heartbeats, first_error=stats.first_error,
                 assigned=[stats.assigned.get(n.node, 0) for n in nodes])
    for t in runs:
        t.cancel()
    await asyncio.gather(*runs, return_exceptions=True)
    for c in channels:
        with contextlib.suppress(Exception):
            await c.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.lightagents", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--config", type=Path, required=True, help="the suite's cluster.json")
    p.add_argument("--pool", default="light")
    p.add_argument("--account", default="default")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--channels", type=int, default=4)
    return asyncio.run(amain(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
