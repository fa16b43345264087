"""Azure Batch's errors: the one error type of the REST face, Shoal's statuses mapped onto
Azure's codes, and the error body Azure's clients parse. Pure.

A body looks like Azure's:

    {"odata.metadata": "{base}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
     "code": "JobNotFound",
     "message": {"lang": "en-US", "value": "job 'j1' not found\\nRequestId:...\\nTime:..."},
     "values": [{"key": "ShoalReason", "value": "JOB_NOT_FOUND"}]}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.errors import StatusCode


@dataclass
class RestError(Exception):
    """An answer of the REST face that is not a success."""

    status: int
    """The HTTP status."""
    code: str
    """Azure Batch's error code, e.g. JobNotFound."""
    message: str
    values: Sequence[tuple[str, str]] = field(default_factory=tuple)
    """Azure's `values`: detail key/value pairs (PropertyName, QueryParameterName, Reason, ...)."""

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def invalid_property(name: str, reason: str) -> RestError:
    return RestError(400, "InvalidPropertyValue", f"The value provided for {name} is invalid: {reason}",
                     (("PropertyName", name), ("Reason", reason)))


def missing_property(name: str) -> RestError:
    return RestError(400, "MissingRequiredProperty", f"The request body lacks the required property {name}",
                     (("PropertyName", name),))


def unsupported_property(name: str, reason: str) -> RestError:
    return RestError(400, "UnsupportedProperty", f"Shoal does not support {name}: {reason}",
                     (("PropertyName", name), ("Reason", reason)))


def invalid_query(name: str, value: str, reason: str) -> RestError:
    return RestError(
        400, "InvalidQueryParameterValue",
        f"Value for the query parameter {name} is invalid: {reason}",
        (("QueryParameterName", name), ("QueryParameterValue", value), ("Reason", reason)),
    )


def invalid_header(name: str, value: str, reason: str) -> RestError:
    return RestError(400, "InvalidHeaderValue", f"The value of the header {name} is invalid: {reason}",
                     (("HeaderName", name), ("HeaderValue", value), ("Reason", reason)))


def authentication_failed(detail: str) -> RestError:
    # Azure answers 403 for every Shared Key failure, and says why in AuthenticationErrorDetail.
    return RestError(403, "AuthenticationFailed",
                     "Server failed to authenticate the request. Make sure the value of "
                     "Authorization header is formed correctly including the signature.",
                     (("AuthenticationErrorDetail", detail),))


def condition_not_met(what: str) -> RestError:
    return RestError(412, "ConditionNotMet",
                     f"The condition specified using HTTP conditional header(s) is not met: {what}")


def autoscale_not_supported() -> RestError:
    return RestError(400, "AutoScaleNotSupported",
                     "Shoal does not support autoscale yet: give the pool targetDedicatedNodes "
                     "and resize it instead")


# Shoal's reasons whose Azure code is not their own name in CamelCase.
_CODES: dict[str, tuple[int, str]] = {
    "JOB_ALREADY_EXISTS": (409, "JobExists"),
    "POOL_ALREADY_EXISTS": (409, "PoolExists"),
    "TASK_ALREADY_EXISTS": (409, "TaskExists"),
    "DUPLICATE_TASK_ID": (409, "TaskExists"),
    "JOB_SCHEDULE_ALREADY_EXISTS": (409, "JobScheduleExists"),
    "APPLICATION_ALREADY_EXISTS": (409, "ApplicationExists"),
    "TASK_FILE_NOT_FOUND": (404, "FileNotFound"),
    "LOG_NOT_FOUND": (404, "FileNotFound"),
    "LOG_NOT_STORED": (404, "FileNotFound"),
    "VERSION_NOT_FOUND": (404, "ApplicationPackageNotFound"),
    "CONDITION_NOT_MET": (412, "ConditionNotMet"),
    "INVALID_ACCOUNT_KEY": (403, "AuthenticationFailed"),
    "UNAUTHENTICATED": (403, "AuthenticationFailed"),
    "TASK_DEPENDENCIES_NOT_ENABLED": (409, "TaskDependenciesNotSpecifiedOnJob"),
    "UNKNOWN_DEPENDENCY": (400, "InvalidPropertyValue"),
    "TASK_DEPENDENCY_NOT_FOUND": (400, "InvalidPropertyValue"),
    "DEPENDENCY_CYCLE": (400, "InvalidPropertyValue"),
    "TASK_DEPENDENCY_CYCLE": (400, "InvalidPropertyValue"),
}

_BY_STATUS: dict[StatusCode, tuple[int, str]] = {
    StatusCode.NOT_FOUND: (404, "ResourceNotFound"),
    StatusCode.ALREADY_EXISTS: (409, "ResourceAlreadyExists"),
    StatusCode.FAILED_PRECONDITION: (409, "OperationInvalidForCurrentState"),
    StatusCode.ABORTED: (409, "OperationInvalidForCurrentState"),
    StatusCode.INVALID_ARGUMENT: (400, "InvalidPropertyValue"),
    StatusCode.OUT_OF_RANGE: (400, "InvalidPropertyValue"),
    StatusCode.UNAUTHENTICATED: (403, "AuthenticationFailed"),
    StatusCode.PERMISSION_DENIED: (403, "InsufficientAccountPermissions"),
    StatusCode.UNAVAILABLE: (503, "ServerBusy"),
    StatusCode.RESOURCE_EXHAUSTED: (503, "ServerBusy"),
    StatusCode.DEADLINE_EXCEEDED: (500, "OperationTimedOut"),
    StatusCode.UNIMPLEMENTED: (400, "UnsupportedOperation"),
}

# Statuses whose reason names Azure's code in CamelCase (JOB_NOT_FOUND -> JobNotFound,
# POOL_BEING_DELETED -> PoolBeingDeleted, JOB_COMPLETED -> JobCompleted).
_NAMED_BY_REASON = {StatusCode.NOT_FOUND, StatusCode.FAILED_PRECONDITION}

_SNAKE = re.compile(r"_([a-z0-9])")


def camel(snake: str) -> str:
    """job_preparation_task -> jobPreparationTask."""
    return _SNAKE.sub(lambda m: m.group(1).upper(), snake)


def _pascal(reason: str) -> str:
    return "".join(part.capitalize() for part in reason.lower().split("_"))


def from_status(
    code: StatusCode, reason: str, message: str, field: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> RestError:
    """A Shoal service's error (gRPC status, ErrorInfo reason, message, field at fault) as
    Azure's. `fields` renames Shoal's request fields to the Azure properties of the call
    (`job.pool` -> `poolInfo.poolId`); fields it does not name are put in camelCase."""
    status, azure = _CODES.get(reason) or _BY_STATUS.get(code, (500, "InternalError"))
    if reason not in _CODES and code in _NAMED_BY_REASON and reason:
        azure = _pascal(reason)
    values: list[tuple[str, str]] = []
    if field:
        values.append(("PropertyName", azure_property(field, fields or {})))
        # Shoal says of a missing value "<field>: is required".
        if code == StatusCode.INVALID_ARGUMENT and f"{field}: is required" in message:
            azure = "MissingRequiredProperty"
    if reason:
        values.append(("ShoalReason", reason))
    if status == 500:
        message = message or "The server encountered an internal error. Please retry the request."
    return RestError(status, azure, message, tuple(values))


def azure_property(field: str, renames: Mapping[str, str]) -> str:
    """A Shoal request field as the Azure property it came from: the longest prefix `renames`
    knows is replaced; the rest of the path is put in camelCase."""
    for prefix in sorted(renames, key=len, reverse=True):
        if field == prefix or field.startswith((prefix + ".", prefix + "[")):
            rest = camel(field[len(prefix):])
            return renames[prefix] + rest if renames[prefix] else rest.lstrip(".")
    return camel(field)


def error_body(err: RestError, base: str, request_id: str, time: str) -> dict[str, Any]:
    """Azure Batch's JSON error body."""
    return {
        "odata.metadata": f"{base}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
        "code": err.code,
        "message": {"lang": "en-US", "value": f"{err.message}\nRequestId:{request_id}\nTime:{time}"},
        "values": [{"key": k, "value": v} for k, v in err.values],
    }
