"""Results of ended attempts, kept on disk until the scheduler acknowledges them.

A result is written before it is sent, so an agent that dies right after a task ends still
reports it after restarting. Results that end together are written together: one segment
file per batch (`{seq}.results`: length-prefixed serialized TaskResults), as tmp file +
fsync + rename + fsync of the directory, so a segment that exists is always complete. One
fsync per batch, not per task, is what lets a node report thousands of results a second. A
segment is deleted once every result in it is acknowledged; acknowledgements are not
written down, so after a restart an acknowledged result can come back with a batch-mate
that was not — harmless, since the scheduler acknowledges and ignores a result it has.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

import structlog
from google.protobuf.message import DecodeError

from services.common.durable import TMP_SUFFIX, write_durably
from services.common.ids import ID_RE
from shoal.agent.v1 import agent_pb2

SUFFIX = ".results"
_LEN = struct.Struct(">I")

log = structlog.get_logger()


class Outbox:
    """The on-disk outbox. Blocking I/O (thread-safe); see OutboxWriter for the event loop."""

    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._where: dict[str, Path] = {}
        """attempt id -> the segment holding its latest result."""
        self._unacked: dict[Path, set[str]] = {}
        """segment -> attempt ids in it still wanted."""
        self._seq = 0
        self.load()  # the index of what is on disk; load() again returns the results

    def load(self) -> list[agent_pb2.TaskResult]:
        """Every stored result, oldest end first. Leftover tmp files of an interrupted write are
        removed; an unreadable segment is set aside as `.corrupt` rather than resent."""
        latest: dict[str, agent_pb2.TaskResult] = {}
        with self._lock:
            self._where.clear()
            self._unacked.clear()
            for p in sorted(self.dir.iterdir()):
                if p.name.endswith(TMP_SUFFIX):
                    p.unlink(missing_ok=True)
                    continue
                if not p.name.endswith(SUFFIX):
                    continue
                try:
                    records = _read_segment(p)
                    self._seq = max(self._seq, int(p.name[: -len(SUFFIX)]))
                except (DecodeError, ValueError, OSError) as e:
                    log.error("unreadable outbox segment set aside", file=str(p), error=str(e))
                    p.rename(p.with_name(p.name + ".corrupt"))
                    continue
                for r in records:
                    self._forget(r.attempt_id)
                    latest[r.attempt_id] = r
                    self._where[r.attempt_id] = p
                    self._unacked.setdefault(p, set()).add(r.attempt_id)
                if p not in self._unacked:
                    p.unlink(missing_ok=True)
        results = list(latest.values())
        results.sort(key=lambda r: (r.end_time.seconds, r.end_time.nanos, r.attempt_id))
        return results

    def ids(self) -> set[str]:
        """Attempts whose result is stored and not acknowledged."""
        with self._lock:
            return set(self._where)

    def put_many(self, results: Iterable[agent_pb2.TaskResult]) -> None:
        """Store results durably: when this returns, they survive a crash or power loss."""
        # One result per attempt in a segment (the last wins), so the index never mistakes a
        # repeated id for an acknowledgement of the segment being written.
        batch = list({r.attempt_id: r for r in results}.values())
        for r in batch:
            # Attempt ids come from the scheduler; they are checked like every id on a node.
            if ID_RE.fullmatch(r.attempt_id) is None:
                raise ValueError(f"attempt_id {r.attempt_id[:80]!r} is not a valid id")
        if not batch:
            return
        with self._lock:
            self._seq += 1
            final = self.dir / f"{self._seq:012d}{SUFFIX}"
        data = b"".join(_LEN.pack(len(b)) + b for b in (r.SerializeToString() for r in batch))
        write_durably(final, data)
        with self._lock:
            for r in batch:
                self._forget(r.attempt_id)
                self._where[r.attempt_id] = final
                self._unacked.setdefault(final, set()).add(r.attempt_id)

    def put(self, result: agent_pb2.TaskResult) -> None:
        self.put_many([result])

    def remove_many(self, attempt_ids: Iterable[str]) -> None:
        # No directory fsync: a deletion lost in a crash only resends acknowledged results,
        # which the scheduler acknowledges again and ignores.
        with self._lock:
            for a in attempt_ids:
                self._forget(a)

    def _forget(self, attempt_id: str) -> None:
        """Drop an attempt from the index; delete its segment when nothing in it is wanted."""
        seg = self._where.pop(attempt_id, None)
        if seg is None:
            return
        left = self._unacked.get(seg)
        if left is not None:
            left.discard(attempt_id)
            if not left:
                del self._unacked[seg]
                seg.unlink(missing_ok=True)


def stored_attempts(directory: Path | str) -> set[str]:
    """Attempt ids in the segments of an outbox directory, read without changing anything
    (safe beside a running agent). Includes acknowledged results whose segment is still kept."""
    ids: set[str] = set()
    for p in Path(directory).glob(f"*{SUFFIX}"):
        try:
            ids.update(r.attempt_id for r in _read_segment(p))
        except (DecodeError, ValueError, OSError):
            continue
    return ids


def _read_segment(path: Path) -> list[agent_pb2.TaskResult]:
    data = path.read_bytes()
    out: list[agent_pb2.TaskResult] = []
    i = 0
    while i < len(data):
        if i + _LEN.size > len(data):
            raise ValueError("truncated record length")
        (n,) = _LEN.unpack_from(data, i)
        i += _LEN.size
        if i + n > len(data):
            raise ValueError("truncated record")
        r = agent_pb2.TaskResult()
        r.ParseFromString(data[i : i + n])
        if ID_RE.fullmatch(r.attempt_id) is None:
            raise ValueError("a record's attempt id is not a valid id")
        out.append(r)
        i += n
    return list({r.attempt_id: r for r in out}.values())


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
