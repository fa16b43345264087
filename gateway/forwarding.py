"""Forwarding public calls to the service that owns them, as opaque bytes.

The gateway never parses a request body: it authenticates the caller, adds the service token
and the account to the metadata, and passes the serialized message on. Every answer starts
with the caller's account name in the `x-shoal-account` initial metadata. The owning service
validates it. Error statuses come back with their details (ErrorInfo, BadRequest) untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import structlog
from google.protobuf import descriptor_pool

from gateway.auth import Authenticator
from services.common.errors import Code, ShoalError
from services.common.rpc import (
    ACCOUNT_HEADER,
    JOB_SCHEDULER,
    POOL_MANAGER,
    STORAGE_STAGER,
    Peer,
    internal_metadata,
    to_status,
)

log = structlog.get_logger()

# Which service owns each public API service.
ROUTES = {
    "shoal.v1.PoolService": POOL_MANAGER,
    "shoal.v1.JobService": JOB_SCHEDULER,
    "shoal.v1.TaskService": JOB_SCHEDULER,
    "shoal.v1.JobScheduleService": JOB_SCHEDULER,
    "shoal.v1.StorageService": STORAGE_STAGER,
    "shoal.v1.ApplicationService": STORAGE_STAGER,
}


class Forwarder(grpc.GenericRpcHandler):
    def __init__(
        self, channels: dict[str, grpc.aio.Channel], auth: Authenticator, service_token: str
    ) -> None:
        self._channels = channels
        self._auth = auth
        self._token = service_token
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        handler = self._handlers.get(method)
        if handler is None:
            handler = self._build(method)
            if handler is not None:  # only real methods: unknown names must not grow the cache
                self._handlers[method] = handler
        return handler

    def _build(self, method: str) -> grpc.RpcMethodHandler | None:
        service, _, name = method.lstrip("/").partition("/")
        owner = ROUTES.get(service)
        if owner is None:
            return None
        try:
            md = descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]
        except KeyError:
            return None
        channel = self._channels[owner.name]
        rpc = name
        if md.client_streaming and md.server_streaming:
            return None  # no public bidirectional method
        if md.client_streaming:
            return grpc.stream_unary_rpc_method_handler(self._upload(channel, owner, method, rpc))
        if md.server_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(channel, owner, method, rpc))
        return grpc.unary_unary_rpc_method_handler(self._unary(channel, owner, method, rpc))

    async def _enter(self, context: grpc.aio.ServicerContext, rpc: str) -> tuple[tuple[str, str], ...]:
        structlog.contextvars.bind_contextvars(rpc=rpc)
        try:
            acct = await self._auth.account_for(dict(context.invocation_metadata() or ()))
        except ShoalError as e:
            s = to_status(e)
            await context.abort(s.code, s.details, s.trailing_metadata)
        structlog.contextvars.bind_contextvars(account=acct)
        # Who the key says the caller is, for clients that want to show it (`shoal status`).
        await context.send_initial_metadata(((ACCOUNT_HEADER, acct),))
        return internal_metadata(self._token, acct)

    def _unary(
        self, channel: grpc.aio.Channel, owner: Peer, method: str, rpc: str
    ) -> Callable[..., Any]:
        call = channel.unary_unary(method)

        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            md = await self._enter(context, rpc)
            try:
                return await call(request, metadata=md, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as e:
                await _relay(context, e, owner)
                raise  # unreachable: abort raises

        return handle

    def _streaming(
        self, channel: grpc.aio.Channel, owner: Peer, method: str, rpc: str
    ) -> Callable[..., Any]:
        call = channel.unary_stream(method)

        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            md = await self._enter(context, rpc)
            stream = call(request, metadata=md, timeout=context.time_remaining())
            try:
                async for item in stream:
                    yield item
            except grpc.aio.AioRpcError as e:
                await _relay(context, e, owner)
            finally:
                stream.cancel()

        return handle


    def _upload(
        self, channel: grpc.aio.Channel, owner: Peer, method: str, rpc: str
    ) -> Callable[..., Any]:
        open_call = channel.stream_unary(method)

        async def handle(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
            # Authenticate before reading the body, so an unknown caller's bytes go nowhere.
            md = await self._enter(context, rpc)
            call = open_call(metadata=md, timeout=context.time_remaining())
            # Written message by message rather than handing grpc the iterator: when the
            # owner refuses early (no such container), its status must reach the caller, and a
            # write racing that status would otherwise replace it with INTERNAL.
            try:
                async for msg in requests:
                    if call.done():
                        break
                    await call.write(msg)
                if not call.done():
                    await call.done_writing()
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
                pass  # the call ended; its own status is read below
            try:
                return await call
            except grpc.aio.AioRpcError as e:
                await _relay(context, e, owner)
                raise  # unreachable: abort raises
            finally:
                call.cancel()

        return handle


async def _relay(context: grpc.aio.ServicerContext, e: grpc.aio.AioRpcError, owner: Peer) -> None:
    code = e.code()
    if code == grpc.StatusCode.UNAVAILABLE and not e.trailing_metadata():
        # The owner never answered (down, restarting, unreachable): a verdict of its own
        # would carry details. Say which service, so the caller knows what is down.
        log.warning("owning service unavailable", owner=owner.name, details=e.details())
        s = to_status(ShoalError(
            Code.UNAVAILABLE, owner.unavailable,
            f"the {owner.name} is unavailable ({e.details() or 'no answer'}); try again shortly"))
        await context.abort(s.code, s.details, s.trailing_metadata)
    trailing = tuple((k, v) for k, v in (e.trailing_metadata() or ()) if k.endswith("-bin") or k.startswith("x-shoal"))
    await context.abort(code, e.details() or "", trailing)
