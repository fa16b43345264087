"""The failures the scheduler records on tasks and attempts it ends itself."""

from __future__ import annotations

from services.job_scheduler.model import CANCELLED_CODE, Category, Failure

JOB_TERMINATED = Failure(
    Category.USER_ERROR, "JOB_TERMINATED", "the job was terminated before the task completed"
)
NODE_REMOVED = Failure(
    Category.SERVER_ERROR, "NODE_REMOVED", "the task's node was removed with option TERMINATE"
)
NODE_REMOVED_REQUEUE = Failure(
    Category.SERVER_ERROR, "NODE_REMOVED", "the task's node was removed; the task was requeued"
)
NODE_DISABLED_REQUEUE = Failure(
    Category.SERVER_ERROR, "NODE_SCHEDULING_DISABLED",
    "the task's node had its scheduling disabled; the task was requeued",
)
JOB_DISABLED_RETURN = Failure(
    Category.USER_ERROR, "REQUEUED", "its job was disabled; the task was requeued"
)
NOT_DELIVERED = Failure(
    Category.SERVER_ERROR, "NODE_UNAVAILABLE",
    "the task never reached its node (its connection ended first); it was queued again, "
    "not counted as a requeue",
)
NODE_LOST = Failure(Category.SERVER_ERROR, "NODE_LOST", "the node was lost while the task ran")
TASK_TERMINATED = Failure(Category.USER_ERROR, "TASK_TERMINATED", "the task was terminated")
JOB_DISABLED = Failure(
    Category.USER_ERROR, "JOB_DISABLED", "the job was disabled with option TERMINATE"
)
NODE_DISABLED_TERMINATE = Failure(
    Category.SERVER_ERROR, "NODE_SCHEDULING_DISABLED",
    "the task's node had its scheduling disabled with option TERMINATE",
)
NOT_UPLOADED = frozenset({CANCELLED_CODE} | {f.code for f in (
    NODE_LOST, NODE_REMOVED, NODE_DISABLED_TERMINATE, NOT_DELIVERED, JOB_DISABLED_RETURN,
    JOB_DISABLED, JOB_TERMINATED, TASK_TERMINATED)})
"""Codes an attempt's record carries when it did not end by itself — lost with its node, or
stopped by us (the agent uploads no logs for an attempt it was told to stop)."""
