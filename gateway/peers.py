"""The gateway's health says whether what is behind it can serve.

Its health service answers for "" (the gateway itself), for each owning service by name
("pool-manager", "job-scheduler", "storage-stager") and for each public API service it routes
there ("shoal.v1.JobService" is SERVING while the job-scheduler is). Each status follows the
owner's own health, watched over the gateway's channel to it: `shoal status` (or any gRPC
health client) learns how the whole suite is from the one public port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

log = structlog.get_logger()

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
RETRY_SECONDS = 1.0
"""How soon a lost watch of an owner is tried again (it is NOT_SERVING meanwhile)."""


class PeerHealth:
    def __init__(
        self, health: health.aio.HealthServicer, channels: Mapping[str, grpc.aio.Channel],
        routes: Mapping[str, str],
    ) -> None:
        self._health = health
        self._channels = channels
        self._routes = routes
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for owner, channel in self._channels.items():
            await self._set(owner, NOT_SERVING)  # until the owner says otherwise
            self._tasks.append(asyncio.create_task(self._watch(owner, channel)))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _set(self, owner: str, status: int) -> None:
        for name in (owner, *(s for s, o in self._routes.items() if o == owner)):
            await self._health.set(name, status)

    async def _watch(self, owner: str, channel: grpc.aio.Channel) -> None:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                async for reply in stub.Watch(health_pb2.HealthCheckRequest(service="")):
                    await self._set(owner, SERVING if reply.status == SERVING else NOT_SERVING)
            except grpc.aio.AioRpcError as e:
                log.info("watching a service's health failed", peer=owner, code=e.code().name)
            await self._set(owner, NOT_SERVING)
            await asyncio.sleep(RETRY_SECONDS)
