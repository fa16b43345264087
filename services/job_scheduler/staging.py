"""The job-scheduler's side of staging (pure): the stager requests it makes for an agent's
staging requests, and the grants it sends back. The scheduler only relays; see
services/common/stager_client.py."""

from __future__ import annotations

from shoal.agent.v1 import agent_pb2
from shoal.internal.v1 import staging_pb2
from shoal.v1 import task_pb2

DOWNLOAD_FAILED = "RESOURCE_FILE_DOWNLOAD_FAILED"
UPLOAD_FAILED = "OUTPUT_FILE_UPLOAD_FAILED"


def failure(code: str, message: str) -> task_pb2.FailureInfo:
    """A staging failure that is Shoal's, not the task's."""
    return task_pb2.FailureInfo(category=task_pb2.FailureInfo.SERVER_ERROR, code=code, message=message)


def failed_grant(req: agent_pb2.StagingRequest, message: str, code: str = "") -> agent_pb2.StagingGrant:
    code = code or (DOWNLOAD_FAILED if req.kind == agent_pb2.DOWNLOADS else UPLOAD_FAILED)
    return agent_pb2.StagingGrant(
        attempt_id=req.attempt_id, kind=req.kind, job_task=req.job_task,
        failure=failure(code, message))


def download_spec(files: bytes | None) -> staging_pb2.DownloadSpec:
    f = agent_pb2.TaskFiles.FromString(files or b"")
    return staging_pb2.DownloadSpec(
        resource_files=f.resource_files, application_packages=f.application_packages)


def prep_download_spec(prep: bytes | None) -> staging_pb2.DownloadSpec:
    spec = task_pb2.JobPreparationTask.FromString(prep or b"")
    return staging_pb2.DownloadSpec(resource_files=spec.resource_files)


def upload_spec(
    job_id: str, job_pk: int, task_id: str, files: bytes | None, req: agent_pb2.StagingRequest
) -> staging_pb2.UploadSpec:
    f = agent_pb2.TaskFiles.FromString(files or b"")
    return staging_pb2.UploadSpec(
        job_id=job_id, job_uid=str(job_pk), task_id=task_id, attempt_id=req.attempt_id,
        output_files=f.output_files, uploads=req.uploads)


def download_grant(
    req: agent_pb2.StagingRequest, g: staging_pb2.DownloadGrant
) -> agent_pb2.StagingGrant:
    out = agent_pb2.StagingGrant(attempt_id=req.attempt_id, kind=req.kind, job_task=req.job_task)
    if g.HasField("failure"):
        out.failure.CopyFrom(g.failure)
    else:
        out.downloads.extend(g.downloads)
        out.packages.extend(g.packages)
    return out


def upload_grant(req: agent_pb2.StagingRequest, g: staging_pb2.UploadGrant) -> agent_pb2.StagingGrant:
    out = agent_pb2.StagingGrant(attempt_id=req.attempt_id, kind=req.kind)
    if g.HasField("failure"):
        out.failure.CopyFrom(g.failure)
    else:
        out.upload_urls.extend(g.urls)
    return out
