"""Staging on the node: downloads before an attempt's process starts (resource files,
application packages), uploads after it ends (output files, logs), through short-lived URLs
the storage-stager signs. The agent holds no storage credentials and moves bytes directly.

Modules: transfer (HTTP GET/PUT with retries and checks), cache (the node's content cache),
resources (placing files in a working directory), outputs (choosing files to upload),
packages (installing application packages), grants (waiting for the scheduler's grants),
outage (what counts as storage being unavailable, and how long to wait it out), gate (the
node's one view of storage while it waits), uploads (one round of uploads), pending (uploads
that wait, kept on disk), late_logs (logs uploaded after their attempt's result) and attempt
(one attempt's staging, start to end).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.v1 import task_pb2

USER_ERROR = task_pb2.FailureInfo.USER_ERROR
SERVER_ERROR = task_pb2.FailureInfo.SERVER_ERROR

RESOURCE_FILE_DOWNLOAD_FAILED = "RESOURCE_FILE_DOWNLOAD_FAILED"
APPLICATION_PACKAGE_FAILED = "APPLICATION_PACKAGE_FAILED"
OUTPUT_FILE_UPLOAD_FAILED = "OUTPUT_FILE_UPLOAD_FAILED"
STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
"""A grant's failure code when the scheduler could not reach the storage-stager (or the
stager its object store): storage is unavailable, not the request wrong."""


@dataclass
class StagingFailure(Exception):
    """Staging failed: the attempt ends with this failure info."""

    category: task_pb2.FailureInfo.Category
    code: str
    message: str
    transient: bool = field(default=False, kw_only=True)
    """Storage was unavailable (agent.staging.outage): trying again later may succeed."""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def info(self) -> task_pb2.FailureInfo:
        return task_pb2.FailureInfo(category=self.category, code=self.code, message=self.message)

    @classmethod
    def of(cls, info: task_pb2.FailureInfo) -> StagingFailure:
        """A refused grant's failure; transient when storage was unavailable."""
        return cls(info.category, info.code, info.message,
                   transient=info.code == STORAGE_UNAVAILABLE)
