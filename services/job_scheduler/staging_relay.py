"""The scheduler's side of staging, relayed for agents: the storage-stager's grants for an
attempt's files (only for attempts still assigned to the asking node), and the release task
(with its files' grants) sent to the nodes of a job that ended. Bulk data never passes here:
agents get URLs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from services.common.stager_client import StagingClient, StagingUnavailable
from services.job_scheduler import staging
from services.job_scheduler.core import Core
from services.job_scheduler.model import STORAGE_UNAVAILABLE, Job
from services.job_scheduler.sessions import NodeKey
from shoal.agent.v1 import agent_pb2
from shoal.internal.v1 import staging_pb2


class Stream(Protocol):
    def send(self, msg: agent_pb2.SchedulerMessage) -> None: ...


StreamOf = Callable[[], Stream | None]
"""The node's stream as it is when the answer is ready (it may have reconnected meanwhile)."""


class StagingRelay:
    def __init__(self, core: Core, storage: StagingClient | None) -> None:
        self.core = core
        self.storage = storage
        """The stager; None where storage is not set up."""

    async def job_ended(self, job: Job, stream: StreamOf) -> None:
        """Tell the node the job is over: it runs the job's release task, if any."""
        account, release = job.account, job.release
        msg = agent_pb2.JobEnded(job_id=job.id, job_uid=job.pk)
        if release:
            msg.release.ParseFromString(release)
        if msg.release.resource_files:
            try:
                if self.storage is None:
                    raise StagingUnavailable("storage is not configured")
                (g,) = await self.storage.grant_downloads(
                    account, [staging_pb2.DownloadSpec(resource_files=msg.release.resource_files)])
                if g.HasField("failure"):
                    msg.failure.CopyFrom(g.failure)
                msg.downloads.extend(g.downloads)
            except StagingUnavailable as e:
                msg.failure.CopyFrom(staging.failure(staging.DOWNLOAD_FAILED, str(e)))
        out = stream()
        if out is not None:
            out.send(agent_pb2.SchedulerMessage(jobs_ended=[msg]))

    async def grant(
        self, key: NodeKey, reqs: list[agent_pb2.StagingRequest], stream: StreamOf
    ) -> None:
        """Answer an agent's staging requests with the stager's URLs, for attempts that are
        still assigned to that node — a grant is scoped to exactly one live attempt."""
        live = self.core.staging_attempts(key, [r.attempt_id for r in reqs])
        grants: list[agent_pb2.StagingGrant] = []
        downloads: list[tuple[agent_pb2.StagingRequest, staging_pb2.DownloadSpec]] = []
        uploads: list[tuple[agent_pb2.StagingRequest, staging_pb2.UploadSpec]] = []
        for r in reqs:
            got = live.get(r.attempt_id)
            if got is None:
                grants.append(staging.failed_grant(
                    r, "the attempt is no longer assigned to this node", "ATTEMPT_NOT_ASSIGNED"))
                continue
            a, job = got
            if self.storage is None:
                grants.append(staging.failed_grant(r, "storage is not configured"))
            elif r.kind == agent_pb2.DOWNLOADS and r.job_task == agent_pb2.JOB_PREPARATION:
                if not job.prep:
                    grants.append(staging.failed_grant(r, "the job has no preparation task"))
                else:
                    downloads.append((r, staging.prep_download_spec(job.prep)))
            elif r.kind == agent_pb2.DOWNLOADS:
                downloads.append((r, staging.download_spec(a.files)))
            elif r.kind == agent_pb2.UPLOADS:
                uploads.append((r, staging.upload_spec(job.id, job.pk, a.task_id, a.files, r)))
            else:
                grants.append(staging.failed_grant(
                    r, f"unknown staging kind {r.kind}", "INVALID_STAGING_REQUEST"))
        account = key[0]
        if downloads and self.storage is not None:
            try:
                got_d = await self.storage.grant_downloads(account, [d for _, d in downloads])
                grants += [staging.download_grant(r, g)
                           for (r, _), g in zip(downloads, got_d, strict=True)]
            except StagingUnavailable as e:
                # Nothing ran yet: put the task back rather than charge the user for our outage.
                grants += [staging.failed_grant(r, str(e), STORAGE_UNAVAILABLE) for r, _ in downloads]
        if uploads and self.storage is not None:
            try:
                ups = await self.storage.grant_uploads(account, [u for _, u in uploads])
                grants += [staging.upload_grant(r, g) for (r, _), g in zip(uploads, ups, strict=True)]
            except StagingUnavailable as e:
                grants += [staging.failed_grant(r, str(e)) for r, _ in uploads]
        # The awaits above let the world move: URLs go only to attempts still on this node.
        still = self.core.staging_attempts(key, [g.attempt_id for g in grants])
        grants = [g for g in grants if g.HasField("failure") or g.attempt_id in still]
        out = stream()
        if out is not None and grants:
            out.send(agent_pb2.SchedulerMessage(staging_grants=grants))
