"""The one error type of Shoal's services, transport-free.

Business code raises `ShoalError`; `services.common.rpc` turns it into a gRPC status with a
`google.rpc.ErrorInfo` (and `BadRequest` for a bad field) in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

# Every ErrorInfo carries this domain, so clients can tell Shoal's reasons from others'.
DOMAIN = "shoal.dev"


class Code(IntEnum):
    """gRPC status codes, so business code need not import grpc."""

    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


@dataclass
class ShoalError(Exception):
    code: Code
    reason: str
    """UPPER_SNAKE machine-readable reason, e.g. JOB_NOT_FOUND."""
    message: str
    field: str | None = None
    """The request field at fault, for INVALID_ARGUMENT."""

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
