"""Shoal's errors as Azure Batch's, pure: status, code, the property at fault, and the body
Azure's SDK parses."""

from __future__ import annotations

import pytest
from azure.batch import models

from gateway.rest.errors import RestError, azure_property, error_body, from_status
from gateway.rest.wire.jobs import JOB_FIELDS
from gateway.rest.wire.tasks import TASK_FIELDS
from shoal.errors import StatusCode as S


@pytest.mark.parametrize(
    ("code", "reason", "status", "azure"),
    [
        (S.NOT_FOUND, "JOB_NOT_FOUND", 404, "JobNotFound"),
        (S.NOT_FOUND, "POOL_NOT_FOUND", 404, "PoolNotFound"),
        (S.NOT_FOUND, "TASK_NOT_FOUND", 404, "TaskNotFound"),
        (S.NOT_FOUND, "NODE_NOT_FOUND", 404, "NodeNotFound"),
        (S.NOT_FOUND, "JOB_SCHEDULE_NOT_FOUND", 404, "JobScheduleNotFound"),
        (S.NOT_FOUND, "APPLICATION_NOT_FOUND", 404, "ApplicationNotFound"),
        (S.NOT_FOUND, "TASK_FILE_NOT_FOUND", 404, "FileNotFound"),
        (S.NOT_FOUND, "", 404, "ResourceNotFound"),
        (S.ALREADY_EXISTS, "JOB_ALREADY_EXISTS", 409, "JobExists"),
        (S.ALREADY_EXISTS, "POOL_ALREADY_EXISTS", 409, "PoolExists"),
        (S.ALREADY_EXISTS, "TASK_ALREADY_EXISTS", 409, "TaskExists"),
        (S.ALREADY_EXISTS, "JOB_SCHEDULE_ALREADY_EXISTS", 409, "JobScheduleExists"),
        (S.FAILED_PRECONDITION, "POOL_BEING_DELETED", 409, "PoolBeingDeleted"),
        (S.FAILED_PRECONDITION, "JOB_COMPLETED", 409, "JobCompleted"),
        (S.FAILED_PRECONDITION, "JOB_BEING_TERMINATED", 409, "JobBeingTerminated"),
        (S.FAILED_PRECONDITION, "CONDITION_NOT_MET", 412, "ConditionNotMet"),
        (S.INVALID_ARGUMENT, "INVALID_ARGUMENT", 400, "InvalidPropertyValue"),
        (S.UNAUTHENTICATED, "INVALID_ACCOUNT_KEY", 403, "AuthenticationFailed"),
        (S.UNAVAILABLE, "JOB_SCHEDULER_UNAVAILABLE", 503, "ServerBusy"),
        (S.DEADLINE_EXCEEDED, "", 500, "OperationTimedOut"),
        (S.INTERNAL, "INTERNAL", 500, "InternalError"),
    ],
)
def test_statuses_and_reasons_become_azure_codes(code: S, reason: str, status: int, azure: str) -> None:
    e = from_status(code, reason, "something")
    assert (e.status, e.code) == (status, azure)
    if reason:
        assert ("ShoalReason", reason) in e.values


def test_a_bad_field_is_named_as_azure_s_property() -> None:
    e = from_status(S.INVALID_ARGUMENT, "INVALID_ARGUMENT", "job.priority: must be -1000 to 1000",
                    "job.priority", JOB_FIELDS)
    assert e.code == "InvalidPropertyValue" and ("PropertyName", "priority") in e.values
    missing = from_status(S.INVALID_ARGUMENT, "INVALID_ARGUMENT", "task.command_line: is required",
                          "task.command_line", TASK_FIELDS)
    assert missing.code == "MissingRequiredProperty" and ("PropertyName", "commandLine") in missing.values


@pytest.mark.parametrize(
    ("field", "azure"),
    [
        ("job.pool", "poolInfo.poolId"),
        ("job.job_preparation_task.command_line", "jobPreparationTask.commandLine"),
        ("job.job_preparation_task.environment['X']", "jobPreparationTask.environmentSettings['X']"),
        ("job.constraints.max_task_retry_count", "constraints.maxTaskRetryCount"),
        ("job_id", "id"),
        ("page_size", "pageSize"),
    ],
)
def test_azure_property_names(field: str, azure: str) -> None:
    assert azure_property(field, JOB_FIELDS) == azure


def test_the_body_is_what_azure_s_sdk_reads() -> None:
    e = RestError(404, "JobNotFound", "job 'j' not found", (("ShoalReason", "JOB_NOT_FOUND"),))
    body = error_body(e, "https://host:1", "rid-1", "2026-05-01T00:00:00Z")
    assert body["odata.metadata"].startswith("https://host:1/$metadata#")
    parsed = models.BatchError(body)
    assert parsed.code == "JobNotFound"
    assert parsed.message.value.startswith("job 'j' not found\nRequestId:rid-1\n")
    assert [(v.key, v.value) for v in parsed.error_values] == [("ShoalReason", "JOB_NOT_FOUND")]
