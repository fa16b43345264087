"""Wiring of the pool-manager process: `python -m services.pool_manager --config FILE`."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import structlog

from services.common.metrics import new_registry, serve_metrics
from services.common.process import run_service
from services.common.rpc import (
    ServiceHost,
    ServiceInterceptor,
    internal_channel,
    local_address,
    wait_for_signal,
)
from services.common.stager_client import StagingClient
from services.pool_manager.app import PoolManager
from services.pool_manager.metrics import PoolCollector
from services.pool_manager.providers.local import DEFAULT_AGENT_COMMAND, LocalProvider
from services.pool_manager.scheduler_peer import SchedulerPeer
from services.pool_manager.servicer import NodeRegistryServicer, PoolServicer
from services.pool_manager.store import Store
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.cluster_config import ClusterConfig
from shoal.v1 import pool_pb2, pool_pb2_grpc

SERVICE = "pool-manager"
POOL_SERVICE = pool_pb2.DESCRIPTOR.services_by_name["PoolService"].full_name
REGISTRY_SERVICE = agent_pb2.DESCRIPTOR.services_by_name["NodeRegistryService"].full_name

log = structlog.get_logger()


class PoolManagerService:
    """The whole service in one object, so tests run exactly what the process runs."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        agent_command: Sequence[str] = DEFAULT_AGENT_COMMAND,
        stop_timeout: float = 10.0,
        reconcile_interval: float = 0.5,
    ) -> None:
        self.config = config
        self._agent_command = agent_command
        self._stop_timeout = stop_timeout
        self._interval = reconcile_interval
        self.port = 0

    async def start(self) -> None:
        cfg = self.config
        self.store = await Store.open(cfg.db_path(SERVICE))
        interceptor = ServiceInterceptor(
            cfg.service_token, open_prefixes=(f"/{REGISTRY_SERVICE}/",)
        )
        self.metrics = new_registry()
        self.host = ServiceHost(cfg.pool_manager_address, [interceptor], limits=cfg.limits,
                                metrics=self.metrics)
        self.port = self.host.port
        self.provider = LocalProvider(
            cfg,
            local_address(cfg.pool_manager_address, self.port),
            agent_command=self._agent_command,
            stop_timeout=self._stop_timeout,
        )
        self._channel: grpc.aio.Channel = internal_channel(cfg.job_scheduler_address)
        scheduler = SchedulerPeer(self._channel, cfg.service_token)
        self._stager_channel: grpc.aio.Channel = internal_channel(cfg.storage_stager_address)
        stager = StagingClient(self._stager_channel, cfg.service_token)
        self.app = PoolManager(self.store, self.provider, scheduler, cfg, interval=self._interval,
                               stager=stager)
        self.collector = PoolCollector(self.app)
        self.metrics.register(self.collector)
        self.host.add(pool_pb2_grpc.add_PoolServiceServicer_to_server, PoolServicer(self.app),
                      POOL_SERVICE)
        self.host.add(agent_pb2_grpc.add_NodeRegistryServiceServicer_to_server,
                      NodeRegistryServicer(self.app), REGISTRY_SERVICE)
        # Serve before recovery: restarted agents register as soon as they are up.
        await self.host.start()
        await self.app.start()

    async def stop(self, stop_nodes: bool = True) -> None:
        """Stop serving, stop the reconcile loop and the agents, then close the database."""
        self.app.feed.watchers.close()  # watch streams end now (clients resume elsewhere)
        await self.host.stop(grace=2.0)
        await self.app.stop(stop_nodes)
        await self._channel.close()
        await self._stager_channel.close()
        await self.store.close()


async def run(config: ClusterConfig) -> None:
    service = PoolManagerService(config)
    await service.start()
    metrics = await serve_metrics(service.metrics, config.observe.pool_manager_metrics, SERVICE,
                                  refresh=[service.collector.refresh])
    log.info("serving", address=config.pool_manager_address, port=service.port)
    await wait_for_signal()
    log.info("stopping")
    if metrics is not None:
        await metrics.stop()
    await service.stop()
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> None:
    run_service(SERVICE, "services.pool_manager", run, argv)
