"""One attempt's staging: before its process (DOWNLOADS) and after it (UPLOADS).

Before: ask for a DOWNLOADS grant, then install the granted application packages and place
the resource files, in parallel; the result is the package part of the process's environment.
After (for an assignment with `files` set, even empty): choose the output files the outcome
calls for, add stdout.txt and stderr.txt when not empty, ask for an UPLOADS grant covering
them all (in that order) and PUT each. An output that cannot be stored fails the attempt
(OUTPUT_FILE_UPLOAD_FAILED, exit code kept); a log that cannot be stored is only a warning:
it is still on the node.

Storage being unavailable is waited out (agent.staging.outage), bounded by the cluster's
staging_outage_timeout: before the process the attempt stays PREPARING; after it, its outputs
stay on the node, kept as a pending upload on disk (agent.staging.pending) so an agent
restart goes on with them, and the attempt reports its result only once they are stored.
Either wait is reported to the scheduler (`task why` shows it). Logs never hold the result
up: those not stored when the outputs are settled go up later (agent.staging.late_logs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import structlog

from agent.concurrency import run_together
from agent.staging import (
    APPLICATION_PACKAGE_FAILED,
    OUTPUT_FILE_UPLOAD_FAILED,
    RESOURCE_FILE_DOWNLOAD_FAILED,
    SERVER_ERROR,
    StagingFailure,
)
from agent.staging.cache import ContentCache
from agent.staging.gate import StorageGate, Turn
from agent.staging.grants import GrantBroker
from agent.staging.late_logs import LateLogs, logs_in
from agent.staging.outage import DEFAULT_OUTAGE_TIMEOUT, Outage
from agent.staging.outputs import Output, select_outputs
from agent.staging.packages import PackageInstaller, package_env
from agent.staging.pending import PendingUploads
from agent.staging.resources import place_downloads
from agent.staging.transfer import Transfers
from agent.staging.uploads import Upload, upload_round
from services.common.timeutil import to_timestamp
from shoal.agent.v1 import agent_pb2

log = structlog.get_logger()

DOWNLOADS, UPLOADS = agent_pb2.DOWNLOADS, agent_pb2.UPLOADS
MIN_GRANT_WAIT = 3.0
"""Seconds a try inside an outage waits for its grant at least, however little time is left:
long enough for the scheduler to say what is down (it waits 2 s for a stager that is not
connected), so the attempt's failure names it."""


def needs_downloads(a: agent_pb2.Assignment) -> bool:
    return a.HasField("files") and bool(a.files.resource_files or a.files.application_packages)


def succeeded(result: agent_pb2.TaskResult) -> bool:
    """The outcome upload conditions see: exit 0 and no failure is success."""
    return result.HasField("exit_code") and result.exit_code == 0 and not result.HasField("failure_info")


def with_failure(result: agent_pb2.TaskResult, failure: StagingFailure) -> agent_pb2.TaskResult:
    """The result failed by `failure`, exit code kept; a failure it already has stays (it is
    the cause; the upload's failure is logged)."""
    if result.HasField("failure_info"):
        log.warning("output upload failed after the attempt had failed", error=str(failure))
        return result
    out = agent_pb2.TaskResult()
    out.CopyFrom(result)
    out.failure_info.CopyFrom(failure.info())
    return out


class Waits(Protocol):
    """Where the staging's waits for storage are told (the agent's session: the scheduler)."""

    def waiting(self, wait: agent_pb2.StorageWait) -> None:
        """An attempt's staging waits for storage (sent again whenever its error changes)."""

    def over(self, attempt_id: str, kind: int) -> None:
        """It does not any more (its process starts, or its result follows)."""


class _NoWaits:
    def waiting(self, wait: agent_pb2.StorageWait) -> None:
        pass

    def over(self, attempt_id: str, kind: int) -> None:
        pass


class Staging:
    """The agent's staging: one transfer client, one cache, one package installer, and what
    waits for storage (on disk: `pending`; logs after their result: `late_logs`)."""

    def __init__(
        self, broker: GrantBroker, transfers: Transfers, cache: ContentCache,
        installer: PackageInstaller, *, pending: PendingUploads | None = None,
        late_logs: LateLogs | None = None, waits: Waits | None = None,
        gate: StorageGate | None = None, clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.transfers = transfers
        self.cache = cache
        self.installer = installer
        self.pending = pending
        """Where uploads that wait are kept; None: in memory only (lost with the agent)."""
        self.late_logs = late_logs
        """Uploads logs after their attempt's result; None: such logs stay on the node."""
        self.waits: Waits = waits or _NoWaits()
        self.gate = gate or StorageGate()
        """The node's view of storage, shared with late_logs."""
        self.outage_timeout = DEFAULT_OUTAGE_TIMEOUT
        """Seconds storage may be unavailable before a staging step fails (the scheduler's
        Welcome sets the cluster's)."""
        self._clock = clock
        self._held: set[str] = set()
        """Attempts with an `.outputs` record on disk, deleted once their result is."""
        self._told: dict[tuple[str, int], str] = {}
        """Waits told to the scheduler, with the error they said."""

    # --- before the process ------------------------------------------------------------

    async def prepare(self, a: agent_pb2.Assignment, wd: Path) -> dict[str, str]:
        """Stage an attempt's inputs into `wd`; returns its package environment. Raises
        StagingFailure. Storage being unavailable is waited out, bounded."""
        aid = a.attempt_id
        outage: Outage | None = None
        code = RESOURCE_FILE_DOWNLOAD_FAILED
        try:
            while True:
                turn, outage = await self._turn(aid, DOWNLOADS, outage)
                if turn is None:
                    assert outage is not None
                    raise outage.failure(code, "the task's files", self._clock())
                began = self._clock()
                try:
                    env = await self._prepare_once(a, wd, self._grant_wait(outage))
                except StagingFailure as f:
                    if not f.transient:
                        self.gate.abandoned(turn)
                        raise
                    self.gate.failed(turn, f.message)
                    code = f.code if f.code == APPLICATION_PACKAGE_FAILED \
                        else RESOURCE_FILE_DOWNLOAD_FAILED
                    outage = outage or Outage(began, self.outage_timeout)
                    outage.last_error = f.message
                    if outage.over(self._clock()):
                        raise outage.failure(code, "the task's files", self._clock()) from None
                    continue
                except BaseException:
                    self.gate.abandoned(turn)
                    raise
                self.gate.succeeded()
                return env
        finally:
            if outage is not None:
                self._over(aid, DOWNLOADS)

    async def _prepare_once(
        self, a: agent_pb2.Assignment, wd: Path, grant_wait: float
    ) -> dict[str, str]:
        grant = await self.broker.request(
            agent_pb2.StagingRequest(attempt_id=a.attempt_id, kind=DOWNLOADS), within=grant_wait)
        if grant.HasField("failure") and grant.failure.code:
            raise StagingFailure.of(grant.failure)
        installed: list[tuple[agent_pb2.PackageGrant, Path]] = []

        async def packages() -> None:
            installed.extend(await self.installer.install_all(grant.packages))

        await run_together((
            packages(), place_downloads(grant.downloads, wd, self.cache, self.transfers)
        ))
        return package_env(installed)

    async def install_node_packages(
        self, grants: Sequence[agent_pb2.PackageGrant]
    ) -> dict[str, str]:
        """The pool's packages, installed before the node takes tasks; their environment is
        every task's. Raises StagingFailure(APPLICATION_PACKAGE_FAILED)."""
        try:
            return package_env(await self.installer.install_all(grants))
        except StagingFailure:
            raise
        except Exception as e:  # noqa: BLE001 - any error is a setup failure the node reports
            log.exception("installing the pool's application packages failed")
            raise StagingFailure(SERVER_ERROR, APPLICATION_PACKAGE_FAILED, str(e)) from e

    # --- after the process -------------------------------------------------------------

    async def finish(
        self, a: agent_pb2.Assignment, task_dir: Path, wd: Path, result: agent_pb2.TaskResult,
        since: float | None = None,
    ) -> agent_pb2.TaskResult:
        """Upload an ended attempt's outputs and logs; returns its final result. `since`: a
        wait for storage that began before (in an earlier life of the agent)."""
        failure: StagingFailure | None = None
        outputs: list[Output] = []
        if a.files.output_files:
            try:
                outputs = await asyncio.to_thread(
                    select_outputs, wd, a.files.output_files, succeeded(result)
                )
            except StagingFailure as f:
                failure = f  # the logs still go up: they explain what happened
        logs = logs_in(task_dir)  # two lstat calls: not worth a thread hop
        uploads = [Upload.output(o) for o in outputs] + [Upload.log(task_dir, n) for n in logs]
        if uploads:
            failure = await self._upload(a, result, uploads, since) or failure
        return with_failure(result, failure) if failure is not None else result

    async def _upload(
        self, a: agent_pb2.Assignment, result: agent_pb2.TaskResult, uploads: list[Upload],
        since: float | None,
    ) -> StagingFailure | None:
        """Store the outputs (waiting out storage being unavailable, bounded), then leave
        the logs not stored yet to `late_logs`. Returns the first output's failure."""
        aid = a.attempt_id
        outage = None if since is None else Outage(since, self.outage_timeout)
        failure: StagingFailure | None = None
        try:
            while True:
                if not self.gate.is_open and all(u.is_log for u in uploads):
                    # Storage is known to be away and only logs are left: they go up later.
                    await self._logs_later(a, uploads, outage.since if outage else self._clock())
                    return failure
                if not self.gate.is_open:
                    # Its outputs wait: on disk, so the agent's next life goes on with them.
                    await self._hold(a, result, outage.since if outage else self._clock())
                turn, outage = await self._turn(aid, UPLOADS, outage)
                if turn is None:
                    assert outage is not None
                    await self._logs_later(a, [u for u in uploads if u.is_log], outage.since)
                    return outage.failure(OUTPUT_FILE_UPLOAD_FAILED, "the task's output files",
                                          self._clock())
                began = self._clock()
                try:
                    r = await upload_round(self.broker, self.transfers, aid, uploads,
                                           grant_timeout=self._grant_wait(outage))
                except BaseException:
                    self.gate.abandoned(turn)
                    raise
                if r.unavailable:
                    self.gate.failed(turn, r.error)
                else:
                    self.gate.succeeded()
                for u, f in r.wrong:
                    if not u.is_log:
                        failure = failure or f
                    else:
                        log.warning("log upload refused; the log stays on the node",
                                    file=u.name, error=f.message)
                logs_left = [u for u in r.unavailable if u.is_log]
                if failure is not None or len(logs_left) == len(r.unavailable):
                    # The outputs are settled, so is the result: logs do not hold it up.
                    await self._logs_later(a, logs_left, outage.since if outage else began)
                    return failure
                outage = outage or Outage(began, self.outage_timeout)
                outage.last_error = r.error
                if outage.over(self._clock()):
                    await self._logs_later(a, logs_left, outage.since)
                    return outage.failure(OUTPUT_FILE_UPLOAD_FAILED, "the task's output files",
                                          self._clock())
                uploads = r.unavailable
        finally:
            if outage is not None:
                self._over(aid, UPLOADS)

    async def _logs_later(self, a: agent_pb2.Assignment, logs: list[Upload],
                          since: float) -> None:
        if not logs:
            return
        if self.late_logs is None:
            log.warning("storage unavailable: the logs stay on the node",
                        files=[u.name for u in logs])
            return
        log.info("storage unavailable: the logs go up later", files=[u.name for u in logs])
        await self.late_logs.add(a, since)

    # --- waiting -----------------------------------------------------------------------

    def _grant_wait(self, outage: Outage | None) -> float:
        """How long a try waits for its grant: no longer than the outage may still last (a
        first try: no longer than a whole outage)."""
        if outage is None:
            return min(self.broker.timeout, self.outage_timeout)
        return max(MIN_GRANT_WAIT, min(self.broker.timeout, outage.left(self._clock())))

    async def _turn(
        self, aid: str, kind: int, outage: Outage | None
    ) -> tuple[Turn | None, Outage | None]:
        """When the attempt's next try may go: at once while storage answers; else after
        waiting for the node's gate (agent.staging.gate), the wait told to the scheduler.
        Returns the turn (None: the attempt's bound passed first) and its outage."""
        if self.gate.is_open:
            return Turn.GO, outage
        now = self._clock()
        if outage is None:  # another attempt found storage unavailable: this one waits too
            outage = Outage(now, self.outage_timeout)
            outage.last_error = self.gate.last_error
        if self._told.get((aid, kind)) != outage.last_error:
            self._told[(aid, kind)] = outage.last_error
            self.waits.waiting(agent_pb2.StorageWait(
                attempt_id=aid, kind=kind, since=to_timestamp(outage.since),  # type: ignore[arg-type]
                give_up_at=to_timestamp(outage.give_up_at), error=outage.last_error[:500]))
            log.warning("storage unavailable: waiting", attempt=aid,
                        staging=agent_pb2.StagingKind.Name(kind), error=outage.last_error,
                        gives_up_in=round(outage.left(now), 1))
        return await self.gate.wait(outage.left(now)), outage

    def _over(self, aid: str, kind: int) -> None:
        if self._told.pop((aid, kind), None) is not None:
            self.waits.over(aid, kind)

    # --- the attempt's record ----------------------------------------------------------

    def resumed(self, attempt_id: str) -> None:
        """An attempt taken up again from its `.outputs` record (at start)."""
        self._held.add(attempt_id)

    async def hold(self, a: agent_pb2.Assignment, result: agent_pb2.TaskResult) -> None:
        """The agent stops while the attempt uploads: keep it, so the next life goes on."""
        await self._hold(a, result, None)

    async def _hold(self, a: agent_pb2.Assignment, result: agent_pb2.TaskResult,
                    since: float | None) -> None:
        if self.pending is not None and a.attempt_id not in self._held:
            await asyncio.to_thread(self.pending.put_outputs, a, result, since)
            self._held.add(a.attempt_id)

    async def reported(self, attempt_id: str) -> None:
        """The attempt's result is in the outbox: its `.outputs` record may go."""
        if attempt_id in self._held and self.pending is not None:
            self._held.discard(attempt_id)
            await asyncio.to_thread(self.pending.drop_outputs, attempt_id)


def any_log(task_dir: Path) -> bool:
    """Whether the attempt wrote to stdout.txt or stderr.txt (then they are uploaded)."""
    return bool(logs_in(task_dir))
