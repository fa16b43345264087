"""How the REST face reaches Shoal: the public API's typed stubs on the channels the gateway
forwards gRPC calls on, with the same service token and account metadata the forwarder adds.
The services scope every call by that account, as they do forwarded calls; a failed call comes
back as Azure's error (gateway.rest.errors).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from gateway.admission import Admission
from gateway.forwarding import ROUTES
from gateway.rest.errors import RestError, from_status
from gateway.turns import Turns, cost_of
from services.common.errors import ShoalError
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
    """Typed stubs of Shoal's public services, one per owning service's channel, and the
    limits the gRPC face's calls keep: a REST request is admitted as one of the account's
    calls, and each call it makes to a service waits for the account's turn there, as a
    forwarded call does (gateway.forwarding) — the REST face is no way around them."""

    def __init__(self, channels: Mapping[str, grpc.aio.Channel], service_token: str,
                 admission: Admission, turns: Mapping[str, Turns]) -> None:
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
        self.admission = admission
        # The stubs' methods are attributes they set on themselves: which service's turns
        # each one takes, looked up by the method object a route calls.
        self._turns_of: dict[int, Turns] = {}
        for service, stub in (("shoal.v1.PoolService", self.pools),
                              ("shoal.v1.JobService", self.jobs),
                              ("shoal.v1.TaskService", self.tasks),
                              ("shoal.v1.JobScheduleService", self.schedules),
                              ("shoal.v1.ApplicationService", self.applications)):
            for method in vars(stub).values():
                self._turns_of[id(method)] = turns[ROUTES[service].name]

    def turns_of(self, method: Any) -> Turns:
        return self._turns_of[id(method)]

    @asynccontextmanager
    async def admitted(self, account: str) -> AsyncIterator[None]:
        """One of the account's calls while the block runs; RestError (503 ServerBusy, the
        limit named) if it is at its limit."""
        try:
            release = self.admission.admit(account, streaming=False)
        except ShoalError as e:
            raise from_status(e.code, e.reason, e.message) from None
        try:
            yield
        finally:
            release()


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
        turns = self.backend.turns_of(method)
        try:
            async with turns.turn(self.account, cost_of(request.ByteSize())):
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
