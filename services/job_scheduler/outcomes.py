"""What a completed task does to its dependents and its job: Azure Batch's exit conditions,
pure (stdlib only).

The first match wins: the exit code (exact, then ranges), then a file upload error or a
pre-processing error (the task failed before its process ran), then — for a failure only —
the default. Without a
match the defaults are Azure's: dependents are satisfied by a success and blocked by a
failure; the job action is NONE for a success and TERMINATE for a failure — applied only when
the job's `on_task_failure` says to perform exit options' job actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class JobAction(IntEnum):
    # Values match shoal.v1.ExitOptions.JobAction.
    UNSPECIFIED = 0
    NONE = 1
    DISABLE = 2
    TERMINATE = 3


class DependencyAction(IntEnum):
    # Values match shoal.v1.ExitOptions.DependencyAction.
    UNSPECIFIED = 0
    SATISFY = 1
    BLOCK = 2


@dataclass(frozen=True)
class ExitOptions:
    job_action: JobAction = JobAction.UNSPECIFIED
    dependency_action: DependencyAction = DependencyAction.UNSPECIFIED


@dataclass(frozen=True)
class ExitRules:
    codes: dict[int, ExitOptions] = field(default_factory=dict)
    ranges: tuple[tuple[int, int, ExitOptions], ...] = ()
    pre_processing_error: ExitOptions | None = None
    file_upload_error: ExitOptions | None = None
    default: ExitOptions | None = None


PRE_PROCESSING_CODES = frozenset({
    "RESOURCE_FILE_DOWNLOAD_FAILED", "APPLICATION_PACKAGE_FAILED", "JOB_PREPARATION_TASK_FAILED",
})
UPLOAD_CODES = frozenset({"OUTPUT_FILE_UPLOAD_FAILED"})


@dataclass(frozen=True)
class Response:
    job_action: JobAction
    dependency_action: DependencyAction
    matched: str
    """What matched, for people: "exit code 3", "exit codes 10-20", "default", ..."""


def respond(
    rules: ExitRules | None, succeeded: bool, exit_code: int | None, failure_code: str | None
) -> Response:
    """How a completed task's end is answered."""
    chosen: ExitOptions | None = None
    matched = "no exit condition"
    if rules is not None:
        if exit_code is not None:
            chosen = rules.codes.get(exit_code)
            if chosen is not None:
                matched = f"exit code {exit_code}"
            else:
                for start, end, opts in rules.ranges:
                    if start <= exit_code <= end:
                        chosen, matched = opts, f"exit codes {start}-{end}"
                        break
        if chosen is None and failure_code in UPLOAD_CODES and rules.file_upload_error:
            chosen, matched = rules.file_upload_error, "file upload error"
        if chosen is None and failure_code in PRE_PROCESSING_CODES and rules.pre_processing_error:
            chosen, matched = rules.pre_processing_error, "pre-processing error"
        if chosen is None and rules.default is not None and not succeeded:
            # Azure Batch: `default` answers failures; exit code 0 needs its own entry.
            chosen, matched = rules.default, "default"
    job_action = chosen.job_action if chosen else JobAction.UNSPECIFIED
    dep_action = chosen.dependency_action if chosen else DependencyAction.UNSPECIFIED
    if job_action == JobAction.UNSPECIFIED:
        job_action = JobAction.NONE if succeeded else JobAction.TERMINATE
    if dep_action == DependencyAction.UNSPECIFIED:
        dep_action = DependencyAction.SATISFY if succeeded else DependencyAction.BLOCK
    return Response(job_action, dep_action, matched)


def names_job_action(rules: ExitRules) -> bool:
    """Whether any exit condition asks for a job action other than NONE (refused when the job
    does not perform exit options' job actions, as Azure Batch refuses it)."""
    opts = [*rules.codes.values(), *(r[2] for r in rules.ranges), rules.pre_processing_error,
            rules.file_upload_error, rules.default]
    return any(o is not None and o.job_action not in (JobAction.UNSPECIFIED, JobAction.NONE)
               for o in opts)
