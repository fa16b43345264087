"""The gateway process: the one public endpoint."""

from __future__ import annotations

import time

import structlog

from gateway.admission import Admission
from gateway.auth import Authenticator
from gateway.dashboard import backend as dashboard_backend
from gateway.dashboard.server import Dashboard
from gateway.dashboard.sessions import Sessions
from gateway.forwarding import ROUTES, Forwarder
from gateway.peers import PeerHealth
from gateway.rest import app as rest
from gateway.rest.backend import Backend
from gateway.turns import Turns
from services.common.metrics import new_registry, serve_metrics
from services.common.process import run_service
from services.common.rpc import ServiceHost, internal_channel, local_address, wait_for_signal
from shoal.cluster_config import ClusterConfig

# Imported for their descriptors: forwarding and reflection look methods up by name.
from shoal.v1 import application_pb2, job_pb2, job_schedule_pb2, pool_pb2, storage_pb2, task_pb2  # noqa: F401

log = structlog.get_logger()

GATEWAY_MAX_MESSAGE = 64 * 1024 * 1024


async def serve(config: ClusterConfig) -> None:
    auth = await Authenticator.open(config.db_path("gateway"), config.secret)
    channels = {
        "pool-manager": internal_channel(config.pool_manager_address),
        "job-scheduler": internal_channel(config.job_scheduler_address),
        "storage-stager": internal_channel(config.storage_stager_address),
    }
    # Anyone can send the gateway a message before it is authenticated: keep them bounded.
    # 64 MiB still carries a 100,000-task BatchCreateTasks of ordinary command lines.
    registry = new_registry()
    host = ServiceHost(config.gateway_address, [], max_message_bytes=GATEWAY_MAX_MESSAGE,
                       limits=config.limits, metrics=registry)
    limits = config.limits
    turns = {name: Turns(limits.forwarded_calls_per_account, limits.forwarded_calls_per_service)
             for name in channels}
    admission = Admission(limits)
    host.add_generic(Forwarder(channels, auth, config.service_token, admission, turns),
                     sorted(ROUTES))
    # The REST face before gRPC: once the gateway reports healthy, both answer. Both faces
    # count against the same limits.
    rest_runner = await rest.start(
        config.rest, Backend(channels, config.service_token, admission, turns), auth)
    await host.start()
    peers = PeerHealth(host.health, channels, {s: p.name for s, p in ROUTES.items()})
    await peers.start()
    metrics = await serve_metrics(registry, config.observe.gateway_metrics, "gateway")
    dashboard = None
    if config.observe.dashboard:
        # The dashboard is a client of this very endpoint: the public path, its auth and
        # scoping, not a side door.
        own = internal_channel(local_address(config.gateway_address, host.port))
        dashboard = Dashboard(dashboard_backend.Backend(own), auth, Sessions(time.monotonic),
                              registry)
        await dashboard.start(config.observe.dashboard)
        log.info("dashboard listening", address=config.observe.dashboard, port=dashboard.port)
    log.info("gateway listening", address=config.gateway_address, port=host.port)
    await wait_for_signal()
    log.info("gateway stopping")
    if dashboard is not None:
        await dashboard.stop()
        await own.close()
    if metrics is not None:
        await metrics.stop()
    if rest_runner is not None:
        await rest_runner.cleanup()
    await peers.stop()
    await host.stop(grace=2.0)
    for ch in channels.values():
        await ch.close()
    await auth.close()
    log.info("gateway stopped")


def main() -> None:
    run_service("gateway", "gateway", serve)
