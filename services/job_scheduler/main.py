"""The job-scheduler process: wiring, start and clean stop."""

from __future__ import annotations

import structlog

from services.common.metrics import new_registry, serve_metrics
from services.common.process import run_service
from services.common.rpc import (
    WATCH_NODE_SESSIONS,
    ServiceHost,
    ServiceInterceptor,
    internal_channel,
    wait_for_signal,
)
from services.common.stager_client import StagingClient
from services.common.timeutil import wall_clock
from services.job_scheduler.engine import Engine
from services.job_scheduler.metrics import SchedulerCollector
from services.job_scheduler.pool_peer import PoolPeer
from services.job_scheduler.schedule_app import JobSchedules
from services.job_scheduler.schedule_servicer import JobScheduleServicer
from services.job_scheduler.schedule_store import ScheduleStore
from services.job_scheduler.servicer import (
    AgentServicer,
    ControlServicer,
    JobServicer,
    TaskServicer,
)
from services.job_scheduler.store import Store
from shoal.agent.v1 import agent_pb2_grpc
from shoal.cluster_config import ClusterConfig
from shoal.internal.v1 import scheduler_control_pb2_grpc as ctl_grpc
from shoal.v1 import job_pb2_grpc, job_schedule_pb2_grpc, task_pb2_grpc

log = structlog.get_logger()


async def serve(config: ClusterConfig) -> None:
    store = await Store.open(config.db_path("job-scheduler"))
    channel = internal_channel(config.pool_manager_address)
    stager = internal_channel(config.storage_stager_address)
    app = Engine(store, config.timing, PoolPeer(channel, config.service_token), wall_clock,
                 StagingClient(stager, config.service_token), limits=config.limits,
                 watch=config.watch)
    await app.load()
    schedule_store = await ScheduleStore.open(config.db_path("job-scheduler-schedules"))
    schedules = JobSchedules(schedule_store, app, config.timing, wall_clock)
    await schedules.load()
    registry = new_registry()
    registry.register(SchedulerCollector(app.core, wall_clock))
    host = ServiceHost(
        config.job_scheduler_address,
        [ServiceInterceptor(config.service_token, open_prefixes=("/shoal.agent.v1.AgentService/",),
                            cluster_wide=(WATCH_NODE_SESSIONS,))],
        limits=config.limits,
        metrics=registry,
    )
    host.add(job_pb2_grpc.add_JobServiceServicer_to_server, JobServicer(app), "shoal.v1.JobService")
    host.add(task_pb2_grpc.add_TaskServiceServicer_to_server, TaskServicer(app), "shoal.v1.TaskService")
    host.add(job_schedule_pb2_grpc.add_JobScheduleServiceServicer_to_server,
             JobScheduleServicer(schedules), "shoal.v1.JobScheduleService")
    host.add(agent_pb2_grpc.add_AgentServiceServicer_to_server, AgentServicer(app, config),
             "shoal.agent.v1.AgentService")
    host.add(ctl_grpc.add_SchedulerControlServiceServicer_to_server, ControlServicer(app),
             "shoal.internal.v1.SchedulerControlService")
    await host.start()
    app.start()
    schedules.start()
    metrics = await serve_metrics(registry, config.observe.job_scheduler_metrics, "job-scheduler")
    log.info("job-scheduler listening", address=config.job_scheduler_address, port=host.port)
    await wait_for_signal()
    log.info("job-scheduler stopping")
    if metrics is not None:
        await metrics.stop()
    await schedules.stop()
    await app.stop()
    await host.stop(grace=2.0)
    await channel.close()
    await stager.close()
    await store.close()
    await schedule_store.close()
    log.info("job-scheduler stopped")


def main() -> None:
    run_service("job-scheduler", "services.job_scheduler", serve)
