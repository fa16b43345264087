"""The node root's free space: measured for heartbeats, and read when a task ends to tell a
task that failed because the disk was full from one that failed on its own."""

from __future__ import annotations

import os
from pathlib import Path

from services.common.errors import DISK_FULL
from shoal.v1 import task_pb2

FULL_BYTES = 1 << 20
"""Below this much free space when a task ends, its writes may have failed for lack of room."""


def free_bytes(path: Path) -> int:
    """Free bytes an unprivileged writer can use on `path`'s filesystem (0 if unknown)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def full_failure(root: Path, free: int) -> task_pb2.FailureInfo:
    """What a failed task's result says when the node's disk was full as it ended."""
    return task_pb2.FailureInfo(
        category=task_pb2.FailureInfo.SERVER_ERROR, code=DISK_FULL,
        message=f"the node's disk was full when the task ended ({free} bytes free under "
                f"{root}): its writes, and its stdout/stderr, may have been cut short")
