"""One round of uploads: ask the scheduler for a grant covering the files, PUT each to its URL,
and sort what happened to each file — stored, wrong (it fails for good), or storage
unavailable (the caller tries again later, agent.staging.outage).

A PUT replaces its object whole or not at all (S3, and the local store's rename into place),
and a file's key is fixed by the task's output specs, so a file PUT again after a round that
seemed to fail — the answer lost, not the write — is the same object, never a second one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.staging import OUTPUT_FILE_UPLOAD_FAILED, SERVER_ERROR, USER_ERROR, StagingFailure
from agent.staging.grants import GrantBroker
from agent.staging.outputs import Output
from agent.staging.transfer import TransferError, Transfers
from shoal.agent.v1 import agent_pb2

PARALLEL_UPLOADS = 8


@dataclass(frozen=True)
class Upload:
    name: str
    """For messages: "output file 'out/a.csv'", or the log's name."""
    source: Path
    wanted: agent_pb2.UploadWanted

    @property
    def is_log(self) -> bool:
        return not self.wanted.container

    @classmethod
    def output(cls, o: Output) -> Upload:
        return cls(f"output file {o.rel!r}", o.source,
                   agent_pb2.UploadWanted(container=o.container, key=o.key))

    @classmethod
    def log(cls, task_dir: Path, name: str) -> Upload:
        return cls(name, task_dir / name, agent_pb2.UploadWanted(key=name))


@dataclass
class Round:
    stored: list[Upload] = field(default_factory=list)
    wrong: list[tuple[Upload, StagingFailure]] = field(default_factory=list)
    """Refused or failed in a way waiting cannot fix."""
    unavailable: list[Upload] = field(default_factory=list)
    """Not stored because storage was unavailable."""
    error: str = ""
    """Why storage was unavailable (the last such error)."""


async def upload_round(
    broker: GrantBroker, transfers: Transfers, attempt_id: str, uploads: Sequence[Upload], *,
    grant_timeout: float | None = None, parallel: int = PARALLEL_UPLOADS,
) -> Round:
    """Upload each file once (the transfer itself retries a blip a few times)."""
    out = Round()
    if not uploads:
        return out
    try:
        grant = await broker.request(agent_pb2.StagingRequest(
            attempt_id=attempt_id, kind=agent_pb2.UPLOADS, uploads=[u.wanted for u in uploads]),
            within=grant_timeout)
        if grant.HasField("failure") and grant.failure.code:
            raise StagingFailure.of(grant.failure)
        if len(grant.upload_urls) != len(uploads):
            raise StagingFailure(
                SERVER_ERROR, OUTPUT_FILE_UPLOAD_FAILED,
                f"the grant has {len(grant.upload_urls)} URLs for {len(uploads)} uploads")
    except StagingFailure as f:
        if f.transient:
            out.unavailable, out.error = list(uploads), f.message
        else:
            out.wrong = [(u, f) for u in uploads]
        return out
    gate = asyncio.Semaphore(parallel)

    async def put(url: str, u: Upload) -> None:
        async with gate:
            await transfers.upload(url, u.source)

    results = await asyncio.gather(
        *(put(url, u) for url, u in zip(grant.upload_urls, uploads, strict=True)),
        return_exceptions=True,
    )
    for u, r in zip(uploads, results, strict=True):
        if isinstance(r, asyncio.CancelledError):
            raise r
        if not isinstance(r, BaseException):
            out.stored.append(u)
        elif isinstance(r, TransferError) and not r.permanent:
            out.unavailable.append(u)
            out.error = f"{u.name}: {r.message}"
        else:
            why = r.message if isinstance(r, TransferError) else f"{type(r).__name__}: {r}"
            category = USER_ERROR if isinstance(r, TransferError) else SERVER_ERROR
            out.wrong.append(
                (u, StagingFailure(category, OUTPUT_FILE_UPLOAD_FAILED, f"{u.name}: {why}")))
    return out
