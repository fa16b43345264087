"""The one error type of Shoal's services, transport-free.

Business code raises `ShoalError`; `services.common.rpc` turns it into a gRPC status with a
`google.rpc.ErrorInfo` (and `BadRequest` for a bad field) in exactly one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from shoal.errors import StatusCode

# Every ErrorInfo carries this domain, so clients can tell Shoal's reasons from others'.
DOMAIN = "shoal.dev"

DISK_FULL = "DISK_FULL"
"""A disk ran out of space: the reason of a refused write, the code of a task's failure and of
a node's error."""


# gRPC status codes as an IntEnum, so business code need not import grpc: the same enum the
# Python client gives its users.
Code = StatusCode


@dataclass
class ShoalError(Exception):
    code: Code
    reason: str
    """UPPER_SNAKE machine-readable reason, e.g. JOB_NOT_FOUND."""
    message: str
    field: str | None = None
    """The request field at fault, for INVALID_ARGUMENT."""
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    """More for the ErrorInfo's metadata: a refused quota's limit and current use."""

    def __str__(self) -> str:
        return self.message


def invalid(field: str, message: str, reason: str = "INVALID_ARGUMENT") -> ShoalError:
    return ShoalError(Code.INVALID_ARGUMENT, reason, f"{field}: {message}", field)


def not_found(kind: str, name: str) -> ShoalError:
    return ShoalError(Code.NOT_FOUND, f"{kind.upper()}_NOT_FOUND", f"{kind} {name!r} not found")


def already_exists(kind: str, name: str) -> ShoalError:
    return ShoalError(
        Code.ALREADY_EXISTS, f"{kind.upper()}_ALREADY_EXISTS", f"{kind} {name!r} already exists"
    )


def failed_precondition(reason: str, message: str) -> ShoalError:
    return ShoalError(Code.FAILED_PRECONDITION, reason, message)


def quota_exceeded(reason: str, setting: str, what: str, limit: int, current: int,
                   asked: int = 1) -> ShoalError:
    """A refusal by one of the cluster file's `limits`: RESOURCE_EXHAUSTED, the reason naming
    the limit, its value and the current use in the metadata (as Azure's quota errors say
    which quota and how much is used)."""
    return ShoalError(
        Code.RESOURCE_EXHAUSTED, reason,
        f"{what}: {current} in use of a limit of {limit}, {asked} more asked "
        f"(limits.{setting} in the cluster file)",
        metadata={"limit": str(limit), "current": str(current), "requested": str(asked),
                  "setting": f"limits.{setting}"},
    )
