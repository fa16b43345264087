"""Wiring of the storage-stager process: `python -m services.storage_stager --config FILE`.

One gRPC server for StorageService, ApplicationService (through the gateway) and the internal
StagingService; with the local backend also the HTTP server that serves its signed URLs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import structlog

from services.common.metrics import new_registry, serve_metrics
from services.common.process import run_service
from services.common.rpc import ServiceHost, ServiceInterceptor, wait_for_signal
from services.common.timeutil import Clock, wall_clock
from services.storage_stager import spool
from services.storage_stager.app import StorageApp
from services.storage_stager.backends.base import Backend
from services.storage_stager.backends.local import LocalBackend
from services.storage_stager.backends.local_http import LocalHttpServer
from services.storage_stager.backends.s3 import S3Backend
from services.storage_stager.backends.signing import UrlSigner
from services.storage_stager.metrics import StagingCollector
from services.storage_stager.model import StagingTally
from services.storage_stager.servicer import (
    ApplicationServicer,
    StagingServicer,
    StorageServicer,
)
from services.storage_stager.staging import StagingApp
from services.storage_stager.store import Store
from shoal.cluster_config import ClusterConfig
from shoal.internal.v1 import staging_pb2, staging_pb2_grpc
from shoal.v1 import application_pb2, application_pb2_grpc, storage_pb2, storage_pb2_grpc

SERVICE = "storage-stager"
STORAGE_SERVICE = storage_pb2.DESCRIPTOR.services_by_name["StorageService"].full_name
APPLICATION_SERVICE = application_pb2.DESCRIPTOR.services_by_name["ApplicationService"].full_name
STAGING_SERVICE = staging_pb2.DESCRIPTOR.services_by_name["StagingService"].full_name

log = structlog.get_logger()


class StagerService:
    """The whole service in one object, so tests run exactly what the process runs."""

    def __init__(self, config: ClusterConfig, *, clock: Clock = wall_clock) -> None:
        self.config = config
        self._clock = clock
        self.port = 0
        self.http: LocalHttpServer | None = None
        self.tally = StagingTally()
        self.metrics = new_registry()
        self.metrics.register(StagingCollector(self.tally, config.storage.backend))

    def _backend(self) -> Backend:
        cfg = self.config
        if cfg.storage.backend == "s3":
            return S3Backend(cfg.storage)
        signer = UrlSigner.from_secret(cfg.secret, cfg.storage.base_url)
        backend = LocalBackend(cfg.storage.root(cfg.state_dir), cfg.db_path(SERVICE), signer,
                               self._clock)
        self.http = LocalHttpServer(backend, cfg.storage.http_address, self._clock, self.tally)
        return backend

    async def start(self) -> None:
        cfg = self.config
        cfg.storage.check()
        tmp = Path(cfg.state_dir) / "stager-tmp"
        spool.clear(tmp)
        self.store = await Store.open(cfg.db_path(SERVICE))
        self.backend = self._backend()
        await self.backend.start()
        if self.http is not None:
            await self.http.start()
        ttl = cfg.storage.url_ttl_seconds
        self.app = StorageApp(self.store, self.backend, tmp, clock=self._clock)
        self.staging = StagingApp(self.store, self.backend, ttl, self.tally)
        self.host = ServiceHost(cfg.storage_stager_address, [ServiceInterceptor(cfg.service_token)],
                                limits=cfg.limits, metrics=self.metrics)
        self.port = self.host.port
        self.host.add(storage_pb2_grpc.add_StorageServiceServicer_to_server,
                      StorageServicer(self.app), STORAGE_SERVICE)
        self.host.add(application_pb2_grpc.add_ApplicationServiceServicer_to_server,
                      ApplicationServicer(self.app), APPLICATION_SERVICE)
        self.host.add(staging_pb2_grpc.add_StagingServiceServicer_to_server,
                      StagingServicer(self.staging), STAGING_SERVICE)
        await self.host.start()

    async def stop(self) -> None:
        await self.host.stop(grace=2.0)
        if self.http is not None:
            await self.http.stop()
        await self.backend.close()
        await self.store.close()


async def run(config: ClusterConfig) -> None:
    service = StagerService(config)
    await service.start()
    metrics = await serve_metrics(service.metrics, config.observe.storage_stager_metrics, SERVICE)
    # Settings only, never credentials: StorageConfig leaves its secrets out of repr().
    log.info("serving", address=config.storage_stager_address, port=service.port,
             backend=config.storage.backend, bucket=config.storage.bucket or None,
             endpoint=config.storage.endpoint_url or None,
             http=config.storage.http_address if service.http else None)
    await wait_for_signal()
    log.info("stopping")
    if metrics is not None:
        await metrics.stop()
    await service.stop()
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> None:
    run_service(SERVICE, "services.storage_stager", run, argv)
