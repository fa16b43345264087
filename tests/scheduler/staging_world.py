"""The scheduler relaying staging to a real storage-stager: a test world and its helpers."""
from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import grpc

from services.common import rpc
from services.common.stager_client import StagingClient
from services.job_scheduler.engine import Engine
from services.storage_stager.main import StagerService
from shoal.agent.v1 import agent_pb2
from shoal.cluster_config import ClusterConfig, StorageConfig
from shoal.v1 import storage_pb2_grpc
from tests.scheduler.harness import ACCOUNT, TIMING, Clock, GatedStore, Node, known_pools
from tests.storage_support import free_port


class World:
    """A real Scheduler (the harness store, with gates) wired to a real StagerService over gRPC."""

    async def start(self, tmp: Path) -> World:
        self.config = ClusterConfig.new(tmp / "state", storage_stager_address="127.0.0.1:0",
                                        storage=StorageConfig(http_address=f"127.0.0.1:{free_port()}"))
        self.stager = StagerService(self.config)
        await self.stager.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.stager.port}")
        self.staging = StagingClient(self.channel, self.config.service_token)
        self.clock = Clock()
        self.store = await GatedStore.open(tmp / "sched.db")
        self.app = Engine(self.store, TIMING, known_pools, self.clock, self.staging)
        await self.app.load()
        self.http = aiohttp.ClientSession()
        self.storage = storage_pb2_grpc.StorageServiceStub(self.channel)
        self.md = rpc.internal_metadata(self.config.service_token, ACCOUNT)
        return self

    async def stop(self) -> None:
        await self.app.stop()
        await self.store.close()
        await self.http.close()
        await self.channel.close()
        await self.stager.stop()


async def grants(node: Node, within: float = 10.0) -> list[agent_pb2.StagingGrant]:
    """Wait for the scheduler's answer to a staging request."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        got = [g for m in node.drain() for g in m.staging_grants]
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("no staging grant arrived")
        await asyncio.sleep(0.02)


async def upload_log(w: World, node: Node, attempt_id: str, text: bytes) -> None:
    await w.app.on_agent_message(node.session, node.stream_id, agent_pb2.AgentMessage(
        staging_requests=[agent_pb2.StagingRequest(
            attempt_id=attempt_id, kind=agent_pb2.UPLOADS,
            uploads=[agent_pb2.UploadWanted(container="", key="stdout.txt")])]))
    (g,) = await grants(node)
    assert not g.HasField("failure"), g.failure
    async with w.http.put(g.upload_urls[0], data=text) as r:
        assert r.status == 200, r.status
