"""Reading a running task's stdout or stderr from its node, over the node's agent stream.

The scheduler asks the agent (a FileRead on the stream) and relays the chunks the agent sends
back; a read ends with the file, with an error, or when the node goes away.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from services.common.errors import Code, ShoalError
from services.job_scheduler.model import TaskRecord
from services.job_scheduler.sessions import NodeKey
from shoal.agent.v1 import agent_pb2

FILE_READ_TIMEOUT = 30.0
NODE_GONE = -1
"""FileChunk.offset that marks a read ended by the node going away, not by the file."""


@dataclass
class _Read:
    key: NodeKey
    chunks: asyncio.Queue[agent_pb2.FileChunk] = field(default_factory=asyncio.Queue)


class NodeReads:
    def __init__(self) -> None:
        self._reads: dict[int, _Read] = {}
        self._ids = itertools.count(1)

    async def read(
        self, send: Callable[[agent_pb2.SchedulerMessage], None], key: NodeKey,
        t: TaskRecord, path: str, offset: int, from_end: int = 0,
    ) -> AsyncIterator[tuple[int, bytes]]:
        """(offset, data) of `path` of the task's current attempt, from `offset` on (or from
        `from_end` bytes before its end); `send` puts a message on the node's stream."""
        rid = next(self._ids)
        read = self._reads[rid] = _Read(key)
        send(agent_pb2.SchedulerMessage(file_reads=[agent_pb2.FileRead(
            request_id=rid, attempt_id=t.attempt_id or "", job_id=t.job_id, task_id=t.spec.id,
            path=path, offset=offset, from_end=from_end)]))
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(read.chunks.get(), FILE_READ_TIMEOUT)
                except TimeoutError:
                    raise ShoalError(Code.UNAVAILABLE, "NODE_TIMEOUT",
                                     f"{t.node} did not answer the file read") from None
                if chunk.error and chunk.offset == NODE_GONE:
                    raise ShoalError(Code.UNAVAILABLE, "NODE_NOT_CONNECTED",
                                     f"{t.node} went away during the read; try again")
                if chunk.error:
                    raise ShoalError(Code.NOT_FOUND, "TASK_FILE_NOT_FOUND",
                                     f"{path} of task {t.spec.id!r}: {chunk.error}")
                if chunk.data:
                    yield chunk.offset, chunk.data
                if chunk.eof:
                    return
        finally:
            self._reads.pop(rid, None)

    def received(self, key: NodeKey, chunks: Iterable[agent_pb2.FileChunk]) -> None:
        """Chunks a node sent: each to the read that asked that node for it."""
        for chunk in chunks:
            read = self._reads.get(chunk.request_id)
            if read is not None and read.key == key:
                read.chunks.put_nowait(chunk)

    def fail(self, key: NodeKey, why: str) -> None:
        """The node's stream is gone: its reads end now, not at their timeout."""
        for rid, read in list(self._reads.items()):
            if read.key == key:
                read.chunks.put_nowait(agent_pb2.FileChunk(
                    request_id=rid, eof=True, offset=NODE_GONE, error=why))
