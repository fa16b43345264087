"""Prometheus metrics: a service's registry, the one gRPC interceptor every server runs, and
the HTTP endpoint that serves `/metrics`.

Cheap by design, because the job-scheduler runs thousands of tasks a second: the interceptor
costs two clock reads, a counter and a histogram update per call (not per task); everything
else a service exposes is read, when Prometheus scrapes, from state the service keeps anyway
(a job's task counts, node sessions) or from tallies of plain integers it bumps where things
happen (`Tally`), by a Collector of its own. A hot path pays an integer increment at most.

`/metrics` is served by aiohttp on the service's own event loop rather than by
prometheus_client's threaded server: collectors read in-memory state that only the loop's
thread may touch, and a scrape must see it between two events, never in the middle of one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
import structlog
from aiohttp import web
from google.protobuf import descriptor_pool
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import choose_encoder

from services.common.tally import Buckets

log = structlog.get_logger()

# `*_created` samples double every counter's series and Prometheus ignores them by default.
disable_created_metrics()

RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
               10.0, 30.0, 60.0)
"""Seconds: a gRPC call is sub-millisecond to seconds; streams last as long as they are open."""


def new_registry() -> CollectorRegistry:
    """A service's own registry (several services share one process in tests), with the
    standard process, platform and garbage-collector metrics."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


# -- families built from tallies at scrape time ---------------------------------------------


def histogram_family(
    name: str, documentation: str, labels: list[str], series: Mapping[tuple[str, ...], Buckets],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, b in series.items():
        buckets = [("+Inf" if le == float("inf") else repr(float(le)), float(n))
                   for le, n in b.cumulative()]
        family.add_metric(list(values), buckets, b.sum)
    return family


def counter_family(
    name: str, documentation: str, labels: list[str], series: Mapping[tuple[str, ...], float],
) -> CounterMetricFamily:
    """`name` without `_total`: prometheus_client adds it."""
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, v in series.items():
        family.add_metric(list(values), v)
    return family


# -- the gRPC interceptor -----------------------------------------------------------------

Answer = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
"""A unary-unary or stream-unary behaviour: (request or request iterator, context)."""
Stream = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
"""A unary-stream or stream-stream behaviour."""


def rewrap(
    handler: grpc.RpcMethodHandler,
    around: Callable[[Answer], Answer],
    around_stream: Callable[[Stream], Stream],
) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour wrapped: `around` for calls answered once,
    `around_stream` for calls whose answer is a stream."""
    kw = {"request_deserializer": handler.request_deserializer,
          "response_serializer": handler.response_serializer}
    if handler.response_streaming:
        make = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                else grpc.stream_stream_rpc_method_handler)
        return make(around_stream(handler.unary_stream or handler.stream_stream), **kw)
    make = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
            else grpc.stream_unary_rpc_method_handler)
    return make(around(handler.unary_unary or handler.stream_unary), **kw)


_TYPES = {
    (False, False): "unary", (False, True): "server_stream",
    (True, False): "client_stream", (True, True): "bidi_stream",
}


def method_type(method: str, handler: grpc.RpcMethodHandler) -> str:
    """`unary`, `server_stream`, ... as the method is declared: the handler may say otherwise
    (a call refused before its body is read is handled as a stream whatever it is)."""
    service, _, name = method.lstrip("/").rpartition("/")
    try:
        d = descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]
        return _TYPES[(d.client_streaming, d.server_streaming)]
    except KeyError:
        return _TYPES[(handler.request_streaming, handler.response_streaming)]


class RpcMetrics(grpc.aio.ServerInterceptor):
    """Every call a server handles, by gRPC service, method, type and status code, and how
    long it took (for a stream: how long it was open). The outermost interceptor, so it sees
    the status the service's error mapping chose."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.handled = Counter(
            "shoal_grpc_server_handled", "gRPC calls completed, by status code.",
            ["grpc_service", "grpc_method", "grpc_type", "grpc_code"], registry=registry)
        self.seconds = Histogram(
            "shoal_grpc_server_handling_seconds",
            "Time from a call's start to its end (a stream: while it was open).",
            ["grpc_service", "grpc_method", "grpc_type"], buckets=RPC_BUCKETS,
            registry=registry)
        self._methods: dict[str, _Method] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method  # type: ignore[attr-defined]
        m = self._methods.get(method)
        if m is None:
            # Only methods that exist get here (the handler is not None): names a caller makes
            # up never grow this map or the label sets.
            service, _, name = method.lstrip("/").rpartition("/")
            m = self._methods[method] = _Method(self, service, name, method_type(method, handler))
        return m.wrap(handler)


class _Method:
    """One method's label children, looked up once rather than on every call."""

    def __init__(self, rpc: RpcMetrics, service: str, method: str, kind: str) -> None:
        self._labels = (service, method, kind)
        self._handled = rpc.handled
        self._codes: dict[str, Any] = {}
        self._seconds = rpc.seconds.labels(service, method, kind)

    def _done(self, context: grpc.aio.ServicerContext, start: float, failed: str | None) -> None:
        self._seconds.observe(time.perf_counter() - start)
        code = context.code()
        name = code.name if code is not None else (failed or "OK")
        child = self._codes.get(name)
        if child is None:
            child = self._codes[name] = self._handled.labels(*self._labels, name)
        child.inc()

    def wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return rewrap(handler, self._timed, self._timed_stream)

    def _timed(self, inner: Answer) -> Answer:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start, failed = time.perf_counter(), None
            try:
                return await inner(request, context)
            except BaseException as e:
                failed = _failure(e)
                raise
            finally:
                self._done(context, start, failed)

        return unary

    def _timed_stream(self, inner: Stream) -> Stream:
        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            start, failed = time.perf_counter(), None
            try:
                async for item in inner(request, context):
                    yield item
            except BaseException as e:
                failed = _failure(e)
                raise
            finally:
                self._done(context, start, failed)

        return streaming


def _failure(e: BaseException) -> str:
    """The status of a call that raised without setting one on its context."""
    return "CANCELLED" if isinstance(e, asyncio.CancelledError | GeneratorExit) else "UNKNOWN"


# -- the HTTP endpoint --------------------------------------------------------------------

Refresh = Callable[[], Awaitable[None]]


class MetricsEndpoint:
    """`GET /metrics` on an address of the service's own. `refresh` hooks run before each
    scrape, for numbers that must be read with an await (rows of SQLite, a peer's answer);
    the Collectors then read what they left, synchronously."""

    def __init__(self, registry: CollectorRegistry, address: str,
                 refresh: Iterable[Refresh] = ()) -> None:
        self.registry = registry
        host, _, port = address.rpartition(":")
        self._host = host.strip("[]") or None
        self._port = int(port)
        self._refresh = list(refresh)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/", self._index)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        self.port = self._runner.addresses[0][1] if self._runner.addresses else self._port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="Shoal: metrics at /metrics\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        for hook in self._refresh:
            try:
                await hook()
            except Exception:  # noqa: BLE001 - a scrape shows what it can rather than fail
                log.exception("metrics refresh failed")
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self.registry)
        return web.Response(body=body, headers={"Content-Type": content_type})


async def serve_metrics(
    registry: CollectorRegistry, address: str, service: str, refresh: Iterable[Refresh] = (),
) -> MetricsEndpoint | None:
    """Start the service's endpoint; None when its address is empty (turned off)."""
    if not address:
        return None
    endpoint = MetricsEndpoint(registry, address, refresh)
    await endpoint.start()
    log.info("metrics listening", address=address, port=endpoint.port, service=service)
    return endpoint
