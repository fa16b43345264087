"""An attempt's stdout.txt and stderr.txt that could not be stored when it ended, uploaded
once storage is back — after the attempt's result was reported, so the task is not held up
for its logs.

Each waits as a `.logs` record (agent.staging.pending), so a restarted agent goes on with
them. The scheduler grants log uploads for an attempt that ended on the asking node. One
loop serves them all with one backoff: while storage is unavailable, every node tries again
only now and then. A log is given up when the scheduler refuses it for good (its job was
deleted: its logs go with it) or when its attempt's directory is gone (retention passed, task
deleted); until then it is on the node, where `shoal task logs` reads it. It shares the
node's gate (agent.staging.gate) with the attempts' staging.
"""

from __future__ import annotations

import asyncio
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path

import structlog

from agent.staging.gate import StorageGate, Turn
from agent.staging.grants import GrantBroker
from agent.staging.pending import PendingUploads
from agent.staging.transfer import Transfers
from agent.staging.uploads import Upload, upload_round
from services.common.storage_names import LOG_FILES
from shoal.agent.v1 import agent_pb2

log = structlog.get_logger()

PARALLEL_ATTEMPTS = 16
GRANT_TIMEOUT = 60.0
"""Seconds a try waits for its grant (the scheduler may be away) before it counts as failed."""

TaskDir = Callable[[agent_pb2.Assignment], Path]


def logs_in(task_dir: Path) -> list[str]:
    """The attempt's non-empty logs (only those are uploaded)."""
    out = []
    for name in LOG_FILES:
        try:
            st = os.lstat(task_dir / name)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:
            out.append(name)
    return out


class LateLogs:
    def __init__(
        self, broker: GrantBroker, transfers: Transfers, pending: PendingUploads,
        task_dir: TaskDir, gate: StorageGate,
    ) -> None:
        self._broker = broker
        self._transfers = transfers
        self._pending = pending
        self._task_dir = task_dir
        self._gate = gate
        self._waiting: dict[str, agent_pb2.Assignment] = {}
        self._more = asyncio.Event()
        self._parallel = asyncio.Semaphore(PARALLEL_ATTEMPTS)
        self.stored = 0
        """Logs this process stored late (for logs and tests)."""

    @property
    def waiting(self) -> list[str]:
        """Attempts whose logs wait."""
        return list(self._waiting)

    async def add(self, a: agent_pb2.Assignment, since: float) -> None:
        """Keep the attempt's logs (on disk first) and upload them once storage is back."""
        await asyncio.to_thread(self._pending.put_logs, a, since)
        self.restore(a)

    def restore(self, a: agent_pb2.Assignment) -> None:
        """Logs whose record is on disk already (found at start)."""
        self._waiting[a.attempt_id] = a
        self._more.set()

    async def run(self) -> None:
        """Forever: upload what waits — while storage is unavailable, one attempt's logs per
        probe of the node's gate, all of them once it is open."""
        while True:
            if not self._waiting:
                self._more.clear()
                await self._more.wait()
                continue
            turn = await self._gate.wait(math.inf)
            batch = list(self._waiting.values())
            if turn is Turn.PROBE:
                batch = batch[:1]
            errors = [e for e in await asyncio.gather(*(self._one(a) for a in batch)) if e]
            if errors:
                self._gate.failed(turn, errors[-1])
                log.info("storage unavailable: logs wait", attempts=len(self._waiting),
                         error=errors[-1])
            else:
                self._gate.succeeded()

    async def _one(self, a: agent_pb2.Assignment) -> str:
        async with self._parallel:
            try:
                return await self._try(a)
            except Exception:  # noqa: BLE001 - a bug must not retry one log forever
                log.exception("late log upload crashed; the log stays on the node",
                              attempt=a.attempt_id)
                self._waiting.pop(a.attempt_id, None)
                return ""

    async def _try(self, a: agent_pb2.Assignment) -> str:
        """One try for one attempt's logs: "" when they are settled (stored or given up),
        else why storage was unavailable."""
        aid = a.attempt_id
        task_dir = self._task_dir(a)
        names = await asyncio.to_thread(logs_in, task_dir)
        r = await upload_round(self._broker, self._transfers, aid,
                               [Upload.log(task_dir, n) for n in names],
                               grant_timeout=GRANT_TIMEOUT)
        for u, f in r.wrong:
            log.warning("late log upload refused; the log stays on the node", attempt=aid,
                        file=u.name, error=f.message)
        if r.unavailable:
            return r.error
        self.stored += len(r.stored)
        if r.stored:
            log.info("logs stored after their attempt's result", attempt=aid,
                     files=[u.name for u in r.stored])
        del self._waiting[aid]
        await asyncio.to_thread(self._pending.drop_logs, aid)
        return ""
