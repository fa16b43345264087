"""The scheduler's side of staging, relayed for agents: the storage-stager's grants for an
attempt's files (only for attempts still assigned to the asking node — or, for its logs
alone, ended on it: logs a storage outage left behind go up after the result), and the
release task (with its files' grants) sent to the nodes of a job that ended. Bulk data never
passes here: agents get URLs.

When the stager cannot be reached (or cannot reach its object store), a grant is refused with
STORAGE_UNAVAILABLE: the agent waits and asks again, bounded by staging_outage_timeout,
rather than fail the task.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from services.common.stager_client import StagingClient, StagingUnavailable
from services.job_scheduler import staging
from services.job_scheduler.core import Core
from services.job_scheduler.model import STORAGE_UNAVAILABLE, EndedAttempt, Job
from services.job_scheduler.sessions import NodeKey
from shoal.agent.v1 import agent_pb2
from shoal.internal.v1 import staging_pb2


class Stream(Protocol):
    def send(self, msg: agent_pb2.SchedulerMessage) -> None: ...


StreamOf = Callable[[], Stream | None]
"""The node's stream as it is when the answer is ready (it may have reconnected meanwhile)."""
Ended = Callable[[list[str]], Awaitable[dict[str, EndedAttempt]]]
"""The ended attempts among these ids, as stored."""
NOT_ASSIGNED = "ATTEMPT_NOT_ASSIGNED"


def logs_only(r: agent_pb2.StagingRequest) -> bool:
    return (r.kind == agent_pb2.UPLOADS and r.job_task == agent_pb2.TASK and bool(r.uploads)
            and all(not u.container for u in r.uploads))


def ran_on(node: str, key: NodeKey) -> bool:
    """Whether the stored node name `pools/{pool}/nodes/{node}` is the node of `key`."""
    parts = node.split("/")
    return len(parts) == 4 and parts[1].lower() == key[1] and parts[3] == key[2]


class StagingRelay:
    def __init__(self, core: Core, storage: StagingClient | None, ended: Ended) -> None:
        self.core = core
        self.storage = storage
        """The stager; None where storage is not set up."""
        self.ended = ended

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
        late = [r for r in reqs if r.attempt_id not in live and logs_only(r)]
        if late and self.storage is not None:
            uploads += await self._late_logs(key, late, grants)
        for r in reqs:
            got = live.get(r.attempt_id)
            if got is None:
                if not (logs_only(r) and self.storage is not None):
                    grants.append(staging.failed_grant(
                        r, "the attempt is no longer assigned to this node", NOT_ASSIGNED))
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
                # Not retried here: the agent waits out an outage and asks again.
                got_d = await self.storage.grant_downloads(
                    account, [d for _, d in downloads], retry=False)
                grants += [staging.download_grant(r, g)
                           for (r, _), g in zip(downloads, got_d, strict=True)]
            except StagingUnavailable as e:
                # Nothing ran yet: put the task back rather than charge the user for our outage.
                grants += [staging.failed_grant(r, str(e), STORAGE_UNAVAILABLE) for r, _ in downloads]
        if uploads and self.storage is not None:
            try:
                ups = await self.storage.grant_uploads(
                    account, [u for _, u in uploads], retry=False)
                grants += [staging.upload_grant(r, g) for (r, _), g in zip(uploads, ups, strict=True)]
            except StagingUnavailable as e:
                # The task ran: its outputs wait on the node until storage is back.
                grants += [staging.failed_grant(r, str(e), STORAGE_UNAVAILABLE) for r, _ in uploads]
        # The awaits above let the world move: URLs go only to attempts still on this node
        # (or, for late logs, that ended on it).
        still = self.core.staging_attempts(key, [g.attempt_id for g in grants])
        ended = {r.attempt_id for r in late}
        grants = [g for g in grants
                  if g.HasField("failure") or g.attempt_id in still or g.attempt_id in ended]
        out = stream()
        if out is not None and grants:
            out.send(agent_pb2.SchedulerMessage(staging_grants=grants))

    async def _late_logs(
        self, key: NodeKey, reqs: list[agent_pb2.StagingRequest],
        refused: list[agent_pb2.StagingGrant],
    ) -> list[tuple[agent_pb2.StagingRequest, staging_pb2.UploadSpec]]:
        """Upload specs for the logs of attempts that ended on this node, of jobs that still
        exist; the others are refused (into `refused`) for good."""
        rows = await self.ended([r.attempt_id for r in reqs])
        out = []
        for r in reqs:
            row = rows.get(r.attempt_id)
            job = self.core.jobs.get(row.job_pk) if row is not None else None
            if row is None or job is None or job.account != key[0] or not ran_on(row.node, key):
                refused.append(staging.failed_grant(
                    r, "no ended attempt of this node has this id (or its job was deleted)",
                    NOT_ASSIGNED))
                continue
            out.append((r, staging.upload_spec(job.id, job.pk, row.task_id, None, r)))
        return out
