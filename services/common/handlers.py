"""Rebuilding a gRPC method handler around wrappers: how a server interceptor runs code around
every call. This is the one place that knows grpc's four handler kinds; an interceptor says
only what it does around a call that answers once and around one that streams its answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Answer = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
"""A unary-unary or stream-unary behaviour: (request or request iterator, context)."""
Stream = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
"""A unary-stream or stream-stream behaviour."""


def rewrap(
    handler: grpc.RpcMethodHandler,
    around: Callable[[Answer], Answer],
    around_stream: Callable[[Stream], Stream],
) -> grpc.RpcMethodHandler:
    """The same method with its behaviour wrapped: `around` for calls answered once,
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


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that rebuilds the handler of every method that exists (`wrap`);
    a call to an unknown method passes untouched, to be answered UNIMPLEMENTED."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        return self.wrap(handler, details.method)  # type: ignore[attr-defined]

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """`handler` of `method` (`/package.Service/Method`) as this interceptor runs it."""
        raise NotImplementedError
