"""Results of ended attempts, kept on disk until the scheduler acknowledges them.

A result is written before it is sent, so an agent that dies right after a task ends still
reports it after restarting. One file per attempt (`{attempt_id}.result`, a serialized
TaskResult), written as tmp file + fsync + rename + fsync of the directory: a file that exists
is always complete.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

import structlog
from google.protobuf.message import DecodeError

from services.common.ids import ID_RE
from shoal.agent.v1 import agent_pb2

SUFFIX = ".result"
TMP_SUFFIX = ".tmp"

log = structlog.get_logger()


class Outbox:
    """The on-disk outbox. Blocking I/O; see OutboxWriter for use from the event loop."""

    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, attempt_id: str) -> Path:
        # Attempt ids name files: an id that is not one could name a path elsewhere.
        if ID_RE.fullmatch(attempt_id) is None:
            raise ValueError(f"attempt_id {attempt_id[:80]!r} is not a valid id")
        return self.dir / f"{attempt_id}{SUFFIX}"

    def load(self) -> list[agent_pb2.TaskResult]:
        """Every stored result, oldest end first. Leftover tmp files of an interrupted write are
        removed; an unreadable file is set aside as `.corrupt` rather than resent."""
        results = []
        for p in self.dir.iterdir():
            if p.name.endswith(TMP_SUFFIX):
                p.unlink(missing_ok=True)
                continue
            if not p.name.endswith(SUFFIX):
                continue
            r = agent_pb2.TaskResult()
            try:
                r.ParseFromString(p.read_bytes())
                if r.attempt_id + SUFFIX != p.name:
                    raise ValueError("attempt id does not match the file name")
            except (DecodeError, ValueError, OSError) as e:
                log.error("unreadable outbox file set aside", file=str(p), error=str(e))
                p.rename(p.with_name(p.name + ".corrupt"))
                continue
            results.append(r)
        results.sort(key=lambda r: (r.end_time.seconds, r.end_time.nanos, r.attempt_id))
        return results

    def ids(self) -> set[str]:
        return {p.name[: -len(SUFFIX)] for p in self.dir.glob(f"*{SUFFIX}")}

    def put_many(self, results: Iterable[agent_pb2.TaskResult]) -> None:
        """Store results durably: when this returns, they survive a crash or power loss."""
        written = False
        for r in results:
            final = self._path(r.attempt_id)
            tmp = final.with_name(f".{final.name}{TMP_SUFFIX}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, r.SerializeToString())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            written = True
        if written:
            # One directory fsync makes every rename of the batch durable (group commit).
            self._fsync_dir()

    def put(self, result: agent_pb2.TaskResult) -> None:
        self.put_many([result])

    def remove_many(self, attempt_ids: Iterable[str]) -> None:
        # No directory fsync: a deletion lost in a crash only resends an acknowledged
        # result, which the scheduler acknowledges again and ignores.
        for a in attempt_ids:
            self._path(a).unlink(missing_ok=True)

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class OutboxWriter:
    """Durable writes from the event loop, grouped: results that end while a write is in
    flight go to disk together with one fsync of the directory.

    The fsyncs run in a worker thread because they block for milliseconds, and a blocked
    event loop would delay heartbeats and every other attempt.
    """

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._pending: list[tuple[agent_pb2.TaskResult, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def put(self, result: agent_pb2.TaskResult) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((result, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await fut

    async def remove(self, attempt_ids: list[str]) -> None:
        await asyncio.to_thread(self.outbox.remove_many, attempt_ids)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self.outbox.put_many, [r for r, _ in batch])
            except Exception as e:  # noqa: BLE001 - handed to every waiter
                for _, f in batch:
                    if not f.done():
                        f.set_exception(e)
                continue
            for _, f in batch:
                if not f.done():
                    f.set_result(None)
