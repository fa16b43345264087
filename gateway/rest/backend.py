"""How the REST face reaches Shoal: the public API's typed stubs on the channels the gateway
forwards gRPC calls on, with the same service token and account metadata the forwarder adds.
The services scope every call by that account, as they do forwarded calls; a failed call comes
back as Azure's error (gateway.rest.errors).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from gateway.forwarding import ROUTES
from gateway.rest.errors import RestError, from_status
from services.common.rpc import error_info, internal_metadata
from shoal.errors import StatusCode
from shoal.v1 import (
    application_pb2_grpc,
    job_pb2_grpc,
    job_schedule_pb2_grpc,
    pool_pb2_grpc,
    task_pb2_grpc,
)

log = structlog.get_logger()

DEFAULT_TIMEOUT = 30.0
"""Seconds a call may take: Azure's default (and largest) `timeOut`."""


class Backend:
    """Typed stubs of Shoal's public services, one per owning service's channel."""

    def __init__(self, channels: Mapping[str, grpc.aio.Channel], service_token: str) -> None:
        def channel(service: str) -> grpc.aio.Channel:
            return channels[ROUTES[service].name]

        self.pools = pool_pb2_grpc.PoolServiceStub(channel("shoal.v1.PoolService"))
        self.jobs = job_pb2_grpc.JobServiceStub(channel("shoal.v1.JobService"))
        self.tasks = task_pb2_grpc.TaskServiceStub(channel("shoal.v1.TaskService"))
        self.schedules = job_schedule_pb2_grpc.JobScheduleServiceStub(
            channel("shoal.v1.JobScheduleService")
        )
        self.applications = application_pb2_grpc.ApplicationServiceStub(
            channel("shoal.v1.ApplicationService")
        )
        self.token = service_token


def rest_error(e: grpc.aio.AioRpcError, fields: Mapping[str, str] | None) -> RestError:
    code = StatusCode(e.code().value[0])
    reason, field = error_info(e)
    if code == StatusCode.UNAVAILABLE and not reason:
        log.warning("owning service unavailable", details=e.details())
        return from_status(code, "", "a Shoal service is unavailable; try again shortly")
    return from_status(code, reason, e.details() or "", field, fields)


@dataclass(frozen=True)
class Caller:
    """Calls on behalf of one authenticated account."""

    backend: Backend
    account: str
    timeout: float = DEFAULT_TIMEOUT

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return internal_metadata(self.backend.token, self.account)

    async def __call__(self, method: Any, request: Any, fields: Mapping[str, str] | None = None) -> Any:
        """`await method(request)` as this account; RestError if it fails. `fields` renames
        Shoal's request fields to Azure's properties in error messages."""
        try:
            return await method(request, metadata=self._metadata, timeout=self.timeout)
        except grpc.aio.AioRpcError as e:
            raise rest_error(e, fields) from None

    async def stream(self, method: Any, request: Any) -> AsyncGenerator[Any, None]:
        call = method(request, metadata=self._metadata, timeout=self.timeout)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as e:
            raise rest_error(e, None) from None
        finally:
            call.cancel()
