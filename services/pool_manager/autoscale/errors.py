"""The errors of an autoscale formula, shaped as Azure Batch reports them in an AutoScaleRun:
a code to match on, a message for people, and name/value pairs with the details.

Azure documents one code, `InsufficientSampleData`, and its message and detail text are
copied here. The other codes are Shoal's (Azure publishes no list): each names one kind of
fault, so a caller can act on the code alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_FORMULA = "InvalidAutoScaleFormula"
    """The formula cannot be compiled: syntax, size, unknown names, arity, read-only targets."""
    INSUFFICIENT_SAMPLE_DATA = "InsufficientSampleData"
    """A sample method found fewer samples than it was asked for."""
    TYPE_MISMATCH = "TypeMismatch"
    """An operator, function or member was given a value of a type it does not take."""
    INVALID_ARGUMENT = "InvalidArgument"
    """A value of the right type that a function cannot use (an index out of range...)."""
    INVALID_RESULT = "InvalidResult"
    """The formula left $TargetDedicatedNodes or $NodeDeallocationOption unusable."""


MESSAGES = {
    ErrorCode.INVALID_FORMULA: "The autoscale formula is not valid",
    ErrorCode.INSUFFICIENT_SAMPLE_DATA: "Autoscale evaluation failed due to insufficient sample data",
    ErrorCode.TYPE_MISMATCH: "Autoscale evaluation failed due to a value of the wrong type",
    ErrorCode.INVALID_ARGUMENT: "Autoscale evaluation failed due to an invalid argument",
    ErrorCode.INVALID_RESULT: "Autoscale evaluation produced a result that cannot be applied",
}


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    """1-based, as Azure counts."""
    col: int
    """1-based."""


@dataclass(frozen=True)
class AutoScaleRunError:
    """Azure's AutoScaleRunError: `values` starts with ("Message", "Line L, Col C: detail")."""

    code: str
    message: str
    values: tuple[tuple[str, str], ...]


class FormulaError(Exception):
    """Raised while compiling or evaluating; `error()` gives what the run reports."""

    def __init__(
        self,
        code: ErrorCode,
        detail: str,
        position: Position | None = None,
        values: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.position = position
        self.values = values

    def at(self, position: Position) -> FormulaError:
        """This error placed at `position`, unless an inner expression already placed it."""
        if self.position is None:
            self.position = position
        return self

    def error(self) -> AutoScaleRunError:
        where = f"Line {self.position.line}, Col {self.position.col}: " if self.position else ""
        return AutoScaleRunError(
            self.code.value, MESSAGES[self.code], (("Message", where + self.detail), *self.values)
        )
