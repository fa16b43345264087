"""Errors the Python client raises, so callers need neither grpc nor google.rpc to handle them."""

from __future__ import annotations

from enum import IntEnum

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class StatusCode(IntEnum):
    """gRPC status codes, mirrored so callers can compare without importing grpc."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
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
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class ShoalError(Exception):
    """A call to Shoal failed.

    `code` says what kind of failure (a `StatusCode`), `reason` is Shoal's UPPER_SNAKE reason
    (`JOB_NOT_FOUND`, `POOL_NOT_EMPTY`; empty when the server sent none, e.g. when it could
    not be reached), `field` names the request field at fault for invalid arguments.
    """

    def __init__(
        self, code: StatusCode, message: str, *, reason: str = "", field: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.field = field
        self.metadata = dict(metadata or {})
        """The ErrorInfo's metadata: for a refused quota, `limit`, `current`, `requested`
        and `setting`."""

    def __str__(self) -> str:
        return f"{self.message} [{self.reason}]" if self.reason else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, "
            f"field={self.field!r}, message={self.message!r})"
        )

    @property
    def unreachable(self) -> bool:
        """True when the server could not be reached at all (as opposed to a peer of the
        gateway being unavailable, which comes with a reason)."""
        return self.code == StatusCode.UNAVAILABLE and not self.reason

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> ShoalError:
        """Build from a failed gRPC call, reading ErrorInfo from the status details."""
        code = StatusCode.UNKNOWN
        message = ""
        if isinstance(err, grpc.Call):
            try:
                code = StatusCode(err.code().value[0])
            except ValueError:
                code = StatusCode.UNKNOWN
            message = err.details() or ""
        reason, field, metadata = "", None, {}
        try:
            status = rpc_status.from_call(err) if isinstance(err, grpc.Call) else None
        except ValueError:
            # The trailers disagree with the status line; trust the status line.
            status = None
        if status is not None:
            message = status.message or message
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    reason = info.reason
                    field = info.metadata.get("field") or None
                    metadata = dict(info.metadata)
                    break
        return cls(code, message or code.name.lower().replace("_", " "), reason=reason, field=field,
                   metadata=metadata)


class ClientConfigError(ShoalError):
    """No endpoint or key could be found for the client."""

    def __init__(self, message: str) -> None:
        super().__init__(StatusCode.FAILED_PRECONDITION, message, reason="NO_CLIENT_CONFIG")


class WaitTimeoutError(ShoalError, TimeoutError):
    """`Client.wait_job` gave up before the job's tasks finished."""

    def __init__(self, message: str) -> None:
        ShoalError.__init__(self, StatusCode.DEADLINE_EXCEEDED, message, reason="WAIT_TIMEOUT")
