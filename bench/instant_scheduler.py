"""A stand-in for the job-scheduler that answers at once: the transport floor.

    python -m bench.instant_scheduler PORT

`concurrent` puts it on the job-scheduler's port, behind the real gateway, to measure what the
same clients' calls cost when the scheduler does no work at all: client → gateway → a gRPC
server that answers a CreateTask with a fixed Task and a ListTasks with two pages of 1,000
tasks (a job the size of the benchmark's). Whatever the real scheduler does, its figures
cannot be better than these. Measurement apparatus only: it checks nothing and keeps nothing.
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from shoal.v1 import task_pb2

PAGE = 1000


def _pages() -> tuple[bytes, bytes]:
    page = task_pb2.ListTasksResponse()
    for i in range(PAGE):
        page.tasks.add(name=f"jobs/j/tasks/c{i:04d}", command_line="/bin/true", state="ACTIVE")
    last = page.SerializeToString()
    page.next_page_token = "next"
    return page.SerializeToString(), last


class _Instant(grpc.GenericRpcHandler):
    def __init__(self) -> None:
        self._task = task_pb2.Task(
            name="jobs/j/tasks/t", command_line="/bin/true", state="ACTIVE").SerializeToString()
        self._first, self._last = _pages()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        if details.method.endswith("/ListTasks"):
            async def answer(request: bytes, context: object) -> bytes:
                token = task_pb2.ListTasksRequest.FromString(request).page_token
                return self._last if token else self._first
        elif details.method.endswith("/CreateTask"):
            async def answer(request: bytes, context: object) -> bytes:
                return self._task
        else:
            async def answer(request: bytes, context: object) -> bytes:
                return b""  # an empty message of whatever type was asked for
        # No (de)serializers: bytes in, bytes out, as the gateway forwards them.
        return grpc.unary_unary_rpc_method_handler(answer)


async def _serve(port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([_Instant()])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
