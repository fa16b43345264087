"""Azure's operator table, exactly: an operand pair it does not list is a TypeMismatch.

Division follows IEEE 754 doubles: x/0 is +-Infinity and 0/0 is NaN, values a formula can
still pass through min() or a comparison; only applying them as a target fails (evaluate.py).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from services.pool_manager.autoscale.errors import ErrorCode, FormulaError
from services.pool_manager.autoscale.values import (
    DoubleVec,
    TimeInterval,
    Timestamp,
    Value,
    interval,
    timestamp,
    type_name,
)


def _divide(a: float, b: float) -> float:
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _divide,
}
COMPARISON: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, "==": operator.eq,
    ">=": operator.ge, ">": operator.gt, "!=": operator.ne,
}
COMPARABLE = (float, str, Timestamp, TimeInterval)


def _mismatch(op: str, *operands: Value) -> FormulaError:
    types = " and ".join(type_name(v) for v in operands)
    values = tuple((f"Operand{i + 1}", type_name(v)) for i, v in enumerate(operands))
    return FormulaError(ErrorCode.TYPE_MISMATCH, f"operator {op} does not take {types}",
                        values=(("Operator", op), *values))


def _vector(op: str, a: DoubleVec, b: DoubleVec | float) -> DoubleVec:
    fn = ARITHMETIC[op]
    if isinstance(b, float):
        return DoubleVec(tuple(fn(x, b) for x in a.items))
    if len(a.items) != len(b.items):
        raise FormulaError(
            ErrorCode.INVALID_ARGUMENT,
            f"operator {op} needs doubleVecs of one length, got {len(a.items)} and {len(b.items)}",
            values=(("Operator", op),),
        )
    return DoubleVec(tuple(fn(x, y) for x, y in zip(a.items, b.items, strict=True)))


def _arithmetic(op: str, a: Value, b: Value) -> Value | None:
    """The result, or None where the table has no row for these operands."""
    match a, b:
        case float(), float():
            return ARITHMETIC[op](a, b)
        case DoubleVec(), float() | DoubleVec():
            return _vector(op, a, b)
        case float(), TimeInterval() if op == "*":
            return interval(a * b.seconds)
        case TimeInterval(), float() if op in ("*", "/"):
            return interval(ARITHMETIC[op](a.seconds, b))
        case TimeInterval(), TimeInterval() if op in ("+", "-"):
            return interval(ARITHMETIC[op](a.seconds, b.seconds))
        case TimeInterval(), Timestamp() if op == "+":
            return timestamp(a.seconds + b.seconds)
        case Timestamp(), TimeInterval() if op == "+":
            return timestamp(a.seconds + b.seconds)
        case Timestamp(), Timestamp() if op == "-":
            return interval(a.seconds - b.seconds)
    return None


def binary(op: str, a: Value, b: Value) -> Value:
    """`a op b` for the arithmetic and comparison operators (&& and || are evaluate.py's: they
    short-circuit)."""
    if op in COMPARISON:
        if type(a) is type(b) and isinstance(a, COMPARABLE):
            return 1.0 if COMPARISON[op](a, b) else 0.0
        raise _mismatch(op, a, b)
    result = _arithmetic(op, a, b)
    if result is None:
        raise _mismatch(op, a, b)
    return result


def unary(op: str, a: Value) -> Value:
    if isinstance(a, float):
        return -a if op == "-" else (1.0 if a == 0 else 0.0)
    if isinstance(a, TimeInterval) and op == "-":
        return interval(-a.seconds)
    raise _mismatch(op, a)


def truth(op: str, a: Value) -> bool:
    """A double as a condition (of ?:, && or ||): nonzero is true."""
    if isinstance(a, float):
        return a != 0
    raise FormulaError(ErrorCode.TYPE_MISMATCH, f"{op} needs a double, got {type_name(a)}",
                       values=(("Operator", op), ("Operand1", type_name(a))))
