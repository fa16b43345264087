"""Staging on the node: downloads before an attempt's process starts (resource files,
application packages), uploads after it ends (output files, logs), through short-lived URLs
the storage-stager signs. The agent holds no storage credentials and moves bytes directly.

Modules: transfer (HTTP GET/PUT with retries and checks), cache (the node's content cache),
resources (placing files in a working directory), outputs (choosing files to upload),
packages (installing application packages), grants (waiting for the scheduler's grants) and
attempt (one attempt's staging, start to end).
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.v1 import task_pb2

USER_ERROR = task_pb2.FailureInfo.USER_ERROR
SERVER_ERROR = task_pb2.FailureInfo.SERVER_ERROR

RESOURCE_FILE_DOWNLOAD_FAILED = "RESOURCE_FILE_DOWNLOAD_FAILED"
APPLICATION_PACKAGE_FAILED = "APPLICATION_PACKAGE_FAILED"
OUTPUT_FILE_UPLOAD_FAILED = "OUTPUT_FILE_UPLOAD_FAILED"


@dataclass
class StagingFailure(Exception):
    """Staging failed: the attempt ends with this failure info."""

    category: task_pb2.FailureInfo.Category
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def info(self) -> task_pb2.FailureInfo:
        return task_pb2.FailureInfo(category=self.category, code=self.code, message=self.message)

    @classmethod
    def of(cls, info: task_pb2.FailureInfo) -> StagingFailure:
        return cls(info.category, info.code, info.message)
