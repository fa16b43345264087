"""gRPC plumbing shared by the services: the one place errors become statuses (and peers'
statuses become errors, `peer_error`), caller identity, server start/stop with health and
reflection, and internal channels.

Every service method runs inside `ServiceInterceptor`, which
- checks the caller: the gateway and peer services present the cluster's service token and
  the caller's account; agent-facing methods (`open_prefixes`) authenticate on their own;
- binds `rpc` and `account` into structlog's context once per call;
- maps `ShoalError` to a status with ErrorInfo (and BadRequest) details, and any other
  exception to INTERNAL without leaking its text.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import inspect
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry

from services.common import reflection
from services.common.db import disk_full_error, is_disk_full
from services.common.errors import DOMAIN, Code, ShoalError
from services.common.metrics import RpcMetrics
from shoal.cluster_config import Limits

ACCOUNT_HEADER = "x-shoal-account"
SERVICE_TOKEN_HEADER = "x-shoal-service-token"
WATCH_NODE_SESSIONS = "/shoal.internal.v1.SchedulerControlService/WatchNodeSessions"
"""The one internal call made for every account at once (ServiceInterceptor's cluster_wide)."""

# The account of the call being served; set by ServiceInterceptor.
current_account: contextvars.ContextVar[str] = contextvars.ContextVar("current_account")

log = structlog.get_logger()

# What the gateway forwards (its public limit, 64 MiB, carries a 100,000-task
# BatchCreateTasks) and room for what is added on the way; no trusted caller sends more.
MAX_MESSAGE_BYTES = 72 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    # A peer that restarts should be reachable again within seconds, not gRPC's default of
    # backing off up to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.so_reuseport", 0),
]


def account() -> str:
    """The account the current call acts for."""
    return current_account.get()


def to_status(err: ShoalError) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata)
    if err.field:
        info.metadata["field"] = err.field
    details = [info]
    if err.field:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=err.field, description=err.message
                    )
                ]
            )
        )
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    return rpc_status.to_status(
        status_pb2.Status(code=int(err.code), message=err.message, details=packed)
    )


def error_info(e: grpc.aio.AioRpcError) -> tuple[str, str | None]:
    """(reason, field) from a failed call's ErrorInfo; ("", None) when it has none."""
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    if status is None:
        return "", None
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info.reason, info.metadata.get("field")
    return "", None


@dataclass(frozen=True)
class Peer:
    """A service the others call, as its failures are named."""

    name: str
    """For messages: "the pool-manager answered UNAVAILABLE"."""
    unavailable: str
    """The reason when it cannot serve a call: POOL_MANAGER_UNAVAILABLE."""


POOL_MANAGER = Peer("pool-manager", "POOL_MANAGER_UNAVAILABLE")
JOB_SCHEDULER = Peer("job-scheduler", "JOB_SCHEDULER_UNAVAILABLE")
STORAGE_STAGER = Peer("storage-stager", "STORAGE_UNAVAILABLE")

RELAYED = frozenset({Code.NOT_FOUND, Code.ALREADY_EXISTS, Code.FAILED_PRECONDITION})
"""A peer's verdicts on what the call named, which mean the same to our own caller."""


def peer_error(
    e: grpc.aio.AioRpcError, peer: Peer, doing: str = "", *,
    relay: Collection[Code] = RELAYED,
) -> ShoalError:
    """A peer's failed call as the error this service raises. A verdict in `relay` keeps its
    code, the peer's reason (the code's name when it sent none) and message; anything else —
    the peer down, too slow, refusing the service token, crashed, or a verdict this call does
    not pass on — is UNAVAILABLE with the peer's reason, since the caller can only try again:
    "{doing}: the {peer} answered {CODE}: {details}"."""
    code = Code(e.code().value[0])
    details = e.details() or ""
    if code in relay:
        reason, _ = error_info(e)
        return ShoalError(code, reason or code.name, details)
    message = f"the {peer.name} answered {code.name}" + (f": {details}" if details else "")
    return ShoalError(Code.UNAVAILABLE, peer.unavailable, f"{doing}: {message}" if doing else message)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self, service_token: str, open_prefixes: Iterable[str] = (),
        cluster_wide: Iterable[str] = (),
    ) -> None:
        """`cluster_wide`: methods a peer service calls for every account at once (the
        service token is checked; no account is named)."""
        self._token = service_token.encode()
        self._open = ("/grpc.health.", "/grpc.reflection.", *open_prefixes)
        self._cluster_wide = frozenset(cluster_wide)
        self._refusals = RateLimitedLog("internal call refused", every=10.0)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method  # type: ignore[attr-defined]
        rpc = method.rsplit("/", 1)[-1]
        if method.startswith(self._open):
            return _wrap(handler, rpc)
        refused = self._check(dict(details.invocation_metadata or ()),  # type: ignore[attr-defined]
                              scoped=method not in self._cluster_wide)
        if refused is not None:
            self._refusals.warn(rpc=rpc, why=refused.message)
            return _refusal(handler, refused)
        return _wrap(handler, rpc)

    def _check(self, md: dict[str, Any], scoped: bool = True) -> ShoalError | None:
        """The caller, from the call's metadata alone: before a byte of its body is read."""
        token = md.get(SERVICE_TOKEN_HEADER, "")
        if not hmac.compare_digest(str(token).encode(), self._token):
            return ShoalError(Code.UNAUTHENTICATED, "UNAUTHENTICATED", "missing or wrong service token")
        if scoped and not md.get(ACCOUNT_HEADER):
            return ShoalError(Code.UNAUTHENTICATED, "UNAUTHENTICATED", "no account on the call")
        return None


class RateLimitedLog:
    """A warning at most once per `every` seconds, saying how many were not logged: what a
    stranger sends an internal port must not fill the log."""

    def __init__(self, event: str, every: float) -> None:
        self._event = event
        self._every = every
        self._last = float("-inf")
        self._quiet = 0

    def warn(self, **fields: Any) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last < self._every:
            self._quiet += 1
            return
        log.warning(self._event, not_logged_since_last=self._quiet, **fields)
        self._last, self._quiet = now, 0


def _refusal(handler: grpc.RpcMethodHandler, err: ShoalError) -> grpc.RpcMethodHandler:
    """A handler that refuses the call without reading its request. It is declared
    request-streaming whatever the method is: then grpc reads a message only when asked, so an
    unknown caller's body — up to the size limit — is never taken in (a unary handler would
    receive the whole of it first)."""
    status = to_status(err)

    async def refuse(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
        await context.abort(status.code, status.details, status.trailing_metadata)

    if handler.unary_stream or handler.stream_stream:
        async def refuse_stream(requests: AsyncIterator[bytes],
                                context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await context.abort(status.code, status.details, status.trailing_metadata)
            yield  # pragma: no cover - makes this an async generator; abort raises

        return grpc.stream_stream_rpc_method_handler(refuse_stream)
    return grpc.stream_unary_rpc_method_handler(refuse)


def _enter(context: grpc.aio.ServicerContext, rpc: str) -> None:
    structlog.contextvars.bind_contextvars(rpc=rpc)
    acct = dict(context.invocation_metadata() or ()).get(ACCOUNT_HEADER, "")
    if acct:
        current_account.set(acct)
        structlog.contextvars.bind_contextvars(account=acct)


async def _fail(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    if is_disk_full(exc):
        # Any store's write on a full disk: the transaction rolled back, the caller may retry.
        exc = disk_full_error()
        log.warning("rpc refused: disk full", error=exc.message)
    if isinstance(exc, ShoalError):
        if exc.code in (Code.INTERNAL, Code.UNAVAILABLE):
            log.warning("rpc failed", reason=exc.reason, error=exc.message)
        s = to_status(exc)
    else:
        log.exception("rpc crashed")
        s = to_status(ShoalError(Code.INTERNAL, "INTERNAL", "internal error; see the service log"))
    await context.abort(s.code, s.details, s.trailing_metadata)


def _decoder(handler: grpc.RpcMethodHandler) -> Callable[[bytes], Any]:
    """The method's request parser, raising INVALID_ARGUMENT for bytes that are not its
    message: grpc's own would fail the call as UNKNOWN, with a traceback in the log."""
    parse = handler.request_deserializer
    if parse is None:
        return lambda raw: raw
    name = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
    what = name.full_name if name is not None else "request"

    def decode(raw: bytes) -> Any:
        try:
            return parse(raw)
        except Exception:  # noqa: BLE001 - DecodeError, or a parser's own complaint
            raise ShoalError(Code.INVALID_ARGUMENT, "MALFORMED_REQUEST",
                             f"the request is not a valid {what} message") from None

    return decode


def _wrap(handler: grpc.RpcMethodHandler, rpc: str) -> grpc.RpcMethodHandler:
    kw = {"response_serializer": handler.response_serializer}
    decode = _decoder(handler)

    async def requests_of(raw_requests: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        async for raw in raw_requests:
            yield decode(raw)

    def request_of(raw: Any, streaming: bool) -> Any:
        return requests_of(raw) if streaming else decode(raw)

    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary
        streaming_in = handler.stream_unary is not None

        async def unary(raw: Any, context: grpc.aio.ServicerContext) -> Any:
            _enter(context, rpc)
            try:
                return await inner(request_of(raw, streaming_in), context)
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception as e:  # noqa: BLE001 - the one place every error is mapped
                await _fail(context, e)

        make = (
            grpc.unary_unary_rpc_method_handler
            if handler.unary_unary
            else grpc.stream_unary_rpc_method_handler
        )
        return make(unary, **kw)

    inner_stream = handler.unary_stream or handler.stream_stream
    streaming_in = handler.stream_stream is not None

    async def streaming(raw: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        _enter(context, rpc)
        try:
            answer = inner_stream(request_of(raw, streaming_in), context)
            if inspect.isawaitable(answer):
                # A handler that writes with context.write() (grpc's health Watch) returns a
                # coroutine, not an async iterator.
                await answer
            else:
                async for item in answer:
                    yield item
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as e:  # noqa: BLE001
            await _fail(context, e)

    make_stream = (
        grpc.unary_stream_rpc_method_handler
        if handler.unary_stream
        else grpc.stream_stream_rpc_method_handler
    )
    return make_stream(streaming, **kw)


class ServiceHost:
    """A grpc.aio server with health checking and reflection (v1 and v1alpha), stopped cleanly
    on SIGTERM. With a metrics registry, every call is counted and timed (`RpcMetrics`,
    outermost, so it sees the status the other interceptors chose)."""

    def __init__(
        self,
        address: str,
        interceptors: list[grpc.aio.ServerInterceptor],
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        limits: Limits | None = None,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        limits = limits or Limits()
        options = [o for o in SERVER_OPTIONS if not o[0].endswith("message_length")]
        options += [("grpc.max_receive_message_length", max_message_bytes),
                    ("grpc.max_send_message_length", max_message_bytes),
                    # A connection with no call in progress is closed (GOAWAY), so idle
                    # clients cannot hold sockets and memory indefinitely.
                    ("grpc.max_connection_idle_ms", int(limits.idle_connection_seconds * 1000))]
        # Past this many calls at once grpc refuses the next with RESOURCE_EXHAUSTED
        # ("Concurrent RPC limit exceeded!") before any of our code runs.
        if metrics is not None:
            interceptors = [RpcMetrics(metrics), *interceptors]
        self.server = grpc.aio.server(interceptors=interceptors, options=options,
                                      maximum_concurrent_rpcs=limits.rpcs_per_service)
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {address}")
        self.health = health.aio.HealthServicer()
        self._names: list[str] = []

    def add(self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, name: str) -> None:
        register(servicer, self.server)
        self._names.append(name)

    def add_generic(self, handler: grpc.GenericRpcHandler, names: list[str]) -> None:
        self.server.add_generic_rpc_handlers([handler])
        self._names.extend(names)

    async def start(self) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable(self.server, [*self._names, health.SERVICE_NAME])
        await self.server.start()
        for name in ["", *self._names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def wait_for_signal() -> None:
    """Return on SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def local_address(listen: str, port: int) -> str:
    """The address a process on this host dials to reach a server listening on `listen`
    (bound to `port`): a wildcard listen address is not dialable."""
    host = listen.rsplit(":", 1)[0]
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def internal_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)


def internal_metadata(service_token: str, acct: str) -> tuple[tuple[str, str], ...]:
    return ((SERVICE_TOKEN_HEADER, service_token), (ACCOUNT_HEADER, acct))
