"""One attempt's staging: before its process (DOWNLOADS) and after it (UPLOADS).

Before: ask for a DOWNLOADS grant, then install the granted application packages and place
the resource files, in parallel; the result is the package part of the process's environment.
After (for an assignment with `files` set, even empty): choose the output files the outcome
calls for, add stdout.txt and stderr.txt when not empty, ask for an UPLOADS grant covering
them all (in that order) and PUT each. A failed output
upload fails the attempt (OUTPUT_FILE_UPLOAD_FAILED, exit code kept); a failed log upload is
only a warning: the logs are still on the node.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import structlog

from agent.concurrency import run_together
from agent.staging import (
    APPLICATION_PACKAGE_FAILED,
    OUTPUT_FILE_UPLOAD_FAILED,
    SERVER_ERROR,
    USER_ERROR,
    StagingFailure,
)
from agent.staging.cache import ContentCache
from agent.staging.grants import GrantBroker
from agent.staging.outputs import Output, select_outputs
from agent.staging.packages import PackageInstaller, package_env
from agent.staging.resources import place_downloads
from agent.staging.transfer import TransferError, Transfers
from services.common.storage_names import LOG_FILES
from shoal.agent.v1 import agent_pb2

log = structlog.get_logger()

PARALLEL_UPLOADS = 8


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


class Staging:
    """The agent's staging: one transfer client, one cache, one package installer."""

    def __init__(
        self, broker: GrantBroker, transfers: Transfers, cache: ContentCache,
        installer: PackageInstaller,
    ) -> None:
        self.broker = broker
        self.transfers = transfers
        self.cache = cache
        self.installer = installer

    async def prepare(self, a: agent_pb2.Assignment, wd: Path) -> dict[str, str]:
        """Stage an attempt's inputs into `wd`; returns its package environment. Raises
        StagingFailure."""
        grant = await self.broker.request(
            agent_pb2.StagingRequest(attempt_id=a.attempt_id, kind=agent_pb2.DOWNLOADS)
        )
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

    async def finish(
        self, a: agent_pb2.Assignment, task_dir: Path, wd: Path, result: agent_pb2.TaskResult
    ) -> agent_pb2.TaskResult:
        """Upload an ended attempt's outputs and logs; returns its final result."""
        failure: StagingFailure | None = None
        outputs: list[Output] = []
        if a.files.output_files:
            try:
                outputs = await asyncio.to_thread(
                    select_outputs, wd, a.files.output_files, succeeded(result)
                )
            except StagingFailure as f:
                failure = f  # the logs still go up: they explain what happened
        logs = [name for name in LOG_FILES if _non_empty(task_dir / name)]
        wanted = [agent_pb2.UploadWanted(container=o.container, key=o.key) for o in outputs]
        wanted += [agent_pb2.UploadWanted(key=name) for name in logs]
        if wanted:
            failure = await self._upload(a.attempt_id, outputs, logs, task_dir, wanted) or failure
        return with_failure(result, failure) if failure is not None else result

    async def _upload(
        self, aid: str, outputs: list[Output], logs: list[str], task_dir: Path,
        wanted: list[agent_pb2.UploadWanted],
    ) -> StagingFailure | None:
        try:
            grant = await self.broker.request(
                agent_pb2.StagingRequest(attempt_id=aid, kind=agent_pb2.UPLOADS, uploads=wanted)
            )
            if grant.HasField("failure") and grant.failure.code:
                raise StagingFailure.of(grant.failure)
            if len(grant.upload_urls) != len(wanted):
                raise StagingFailure(
                    SERVER_ERROR, OUTPUT_FILE_UPLOAD_FAILED,
                    f"the grant has {len(grant.upload_urls)} URLs for {len(wanted)} uploads",
                )
        except StagingFailure as f:
            if outputs:
                return f
            log.warning("log upload not granted; the logs stay on the node", error=str(f))
            return None
        sources = [o.source for o in outputs] + [task_dir / name for name in logs]
        names = [f"output file {o.rel!r}" for o in outputs] + list(logs)
        gate = asyncio.Semaphore(PARALLEL_UPLOADS)

        async def put(url: str, path: Path) -> None:
            async with gate:
                await self.transfers.upload(url, path)

        results = await asyncio.gather(
            *(put(u, p) for u, p in zip(grant.upload_urls, sources, strict=True)),
            return_exceptions=True,
        )
        first: StagingFailure | None = None
        for i, r in enumerate(results):
            if not isinstance(r, BaseException):
                continue
            why = r.message if isinstance(r, TransferError) else f"{type(r).__name__}: {r}"
            if i >= len(outputs):
                log.warning("log upload failed; the log stays on the node", file=names[i], error=why)
                continue
            if isinstance(r, asyncio.CancelledError):
                raise r
            if first is None:
                category = USER_ERROR if isinstance(r, TransferError) and r.permanent else SERVER_ERROR
                first = StagingFailure(category, OUTPUT_FILE_UPLOAD_FAILED, f"{names[i]}: {why}")
        return first


def any_log(task_dir: Path) -> bool:
    """Whether the attempt wrote to stdout.txt or stderr.txt (then they are uploaded)."""
    return any(_non_empty(task_dir / name) for name in LOG_FILES)


def _non_empty(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size > 0


