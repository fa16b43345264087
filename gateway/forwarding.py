"""Forwarding public calls to the service that owns them, as opaque bytes.

The gateway never parses a request body: it authenticates the caller, adds the service token
and the account to the metadata, and passes the serialized message on. Every answer starts
with the caller's account name in the `x-shoal-account` initial metadata. The owning service
validates it. Error statuses come back with their details (ErrorInfo, BadRequest) untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import structlog
from google.protobuf import descriptor_pool

from gateway.admission import Admission
from gateway.auth import Authenticator
from gateway.turns import Turns, cost_of
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
RECONNECT_WAIT = 2.5
"""Seconds a call that could not reach its service waits for the channel to connect before it
is sent again (see _reconnected): longer than the channel's longest reconnect backoff."""
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
        self, channels: dict[str, grpc.aio.Channel], auth: Authenticator, service_token: str,
        admission: Admission, turns: dict[str, Turns],
    ) -> None:
        """`turns`: by owning service's name, the places its unary calls take in turn."""
        self._channels = channels
        self._auth = auth
        self._admission = admission
        self._turns = turns
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

    @asynccontextmanager
    async def _enter(
        self, context: grpc.aio.ServicerContext, rpc: str, streaming: bool
    ) -> AsyncIterator[tuple[str, tuple[tuple[str, str], ...]]]:
        """Authenticate and admit the call: its account and the metadata to forward it
        with, while it runs."""
        structlog.contextvars.bind_contextvars(rpc=rpc)
        try:
            acct = await self._auth.account_for(dict(context.invocation_metadata() or ()))
        except ShoalError as e:
            await _abort(context, e)
        structlog.contextvars.bind_contextvars(account=acct)
        try:
            release = self._admission.admit(acct, streaming)
        except ShoalError as e:
            log.info("call refused", reason=e.reason)
            await _abort(context, e)
        try:
            # Who the key says the caller is, for clients that want to show it (`shoal status`).
            await context.send_initial_metadata(((ACCOUNT_HEADER, acct),))
            yield acct, internal_metadata(self._token, acct)
        finally:
            release()

    def _unary(
        self, channel: grpc.aio.Channel, owner: Peer, method: str, rpc: str
    ) -> Callable[..., Any]:
        call = channel.unary_unary(method)
        turns = self._turns[owner.name]

        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            async with (self._enter(context, rpc, streaming=False) as (acct, md),
                        turns.turn(acct, cost_of(len(request)))):
                try:
                    return await call(request, metadata=md, timeout=context.time_remaining())
                except grpc.aio.AioRpcError as e:
                    if not await _reconnected(channel, context, e):
                        await _relay(context, e, owner)
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
            async with self._enter(context, rpc, streaming=True) as (_, md):
                for attempt in (1, 2):
                    stream = call(request, metadata=md, timeout=context.time_remaining())
                    sent = False
                    try:
                        async for item in stream:
                            sent = True
                            yield item
                        return
                    except grpc.aio.AioRpcError as e:
                        if sent or attempt == 2 or not await _reconnected(channel, context, e):
                            await _relay(context, e, owner)
                    finally:
                        stream.cancel()

        return handle

    def _upload(
        self, channel: grpc.aio.Channel, owner: Peer, method: str, rpc: str
    ) -> Callable[..., Any]:
        open_call = channel.stream_unary(method)

        async def handle(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
            # Authenticate and admit before reading the body, so an unknown caller's bytes
            # go nowhere and a refused stream's are never taken in.
            async with self._enter(context, rpc, streaming=True) as (_, md):
                return await self._forward_upload(open_call, requests, context, md, owner)

        return handle

    @staticmethod
    async def _forward_upload(
        open_call: Any, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext,
        md: tuple[tuple[str, str], ...], owner: Peer,
    ) -> bytes:
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
            result: bytes = await call
            return result
        except grpc.aio.AioRpcError as e:
            await _relay(context, e, owner)
            raise  # unreachable: abort raises
        finally:
            call.cancel()


async def _abort(context: grpc.aio.ServicerContext, e: ShoalError) -> None:
    s = to_status(e)
    await context.abort(s.code, s.details, s.trailing_metadata)


async def _reconnected(
    channel: grpc.aio.Channel, context: grpc.aio.ServicerContext, e: grpc.aio.AioRpcError
) -> bool:
    """Whether a call that failed before it reached its service may go again: it was never
    sent (no connection: nothing of it can have happened, so even a create is safe to send
    again) and the channel connects within a moment — a service that has just restarted,
    which the channel's reconnect backoff (up to 2 s) has not yet noticed. A service that
    stays down is reported after that moment, as before."""
    if e.code() != grpc.StatusCode.UNAVAILABLE or e.trailing_metadata() or \
            not (e.details() or "").startswith("failed to connect"):
        return False
    remaining = context.time_remaining()
    wait = RECONNECT_WAIT if remaining is None else min(RECONNECT_WAIT, remaining - 0.1)
    if wait <= 0:
        return False
    try:
        await asyncio.wait_for(channel.channel_ready(), wait)
    except TimeoutError:
        return False
    log.info("owning service reachable again: call sent again", details=e.details())
    return True


async def _relay(context: grpc.aio.ServicerContext, e: grpc.aio.AioRpcError, owner: Peer) -> None:
    code = e.code()
    if code == grpc.StatusCode.UNAVAILABLE and not e.trailing_metadata():
        # The owner never answered (down, restarting, unreachable): a verdict of its own
        # would carry details. Say which service, so the caller knows what is down.
        log.warning("owning service unavailable", owner=owner.name, details=e.details())
        await _abort(context, ShoalError(
            Code.UNAVAILABLE, owner.unavailable,
            f"the {owner.name} is unavailable ({e.details() or 'no answer'}); try again shortly"))
    trailing = tuple((k, v) for k, v in (e.trailing_metadata() or ()) if k.endswith("-bin") or k.startswith("x-shoal"))
    await context.abort(code, e.details() or "", trailing)
