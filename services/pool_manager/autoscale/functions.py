"""Azure's predefined functions. A function that takes a doubleVecList takes any mix of doubles
and doubleVecs and works on them flattened into one vector (`avg(v, 7)` = `avg(1, 2, 3, 7)`
when v is [1, 2, 3])."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from services.pool_manager.autoscale.errors import ErrorCode, FormulaError
from services.pool_manager.autoscale.values import DoubleVec, Value, timestamp, type_name


class Stop(Exception):
    """stop(): the evaluation ends here, keeping what the statements before it set."""


@dataclass(frozen=True)
class Context:
    now: float
    rand: Callable[[], float]


ARITY: dict[str, tuple[int, int | None]] = {
    "avg": (1, None), "len": (1, None), "max": (1, None), "min": (1, None),
    "norm": (1, None), "range": (1, None), "std": (1, None), "sum": (1, None),
    "lg": (1, None), "ln": (1, None), "log": (1, None),
    "percentile": (2, 2), "val": (2, 2), "rand": (0, 0), "stop": (0, 0), "time": (0, 1),
}
"""Name -> (fewest, most) arguments; None: any number."""


def _invalid(function: str, detail: str) -> FormulaError:
    return FormulaError(ErrorCode.INVALID_ARGUMENT, f"{function}(): {detail}",
                        values=(("Function", function),))


def _wrong_type(function: str, position: int, wanted: str, got: Value) -> FormulaError:
    return FormulaError(
        ErrorCode.TYPE_MISMATCH,
        f"{function}() argument {position} must be {wanted}, got {type_name(got)}",
        values=(("Function", function), ("Argument", str(position)), ("Type", type_name(got))),
    )


def _flatten(function: str, args: Sequence[Value]) -> list[float]:
    out: list[float] = []
    for i, arg in enumerate(args, 1):
        if isinstance(arg, float):
            out.append(arg)
        elif isinstance(arg, DoubleVec):
            out.extend(arg.items)
        else:
            raise _wrong_type(function, i, "a double or a doubleVec", arg)
    return out


def _nonempty(function: str, xs: list[float]) -> list[float]:
    if not xs:
        raise _invalid(function, "the list of values is empty")
    return xs


def _std(xs: list[float]) -> float:
    if len(xs) < 2:
        raise _invalid("std", f"the sample standard deviation needs 2 values or more, got {len(xs)}")
    mean = _total(xs) / len(xs)
    # x * x, not x ** 2: a float power raises on overflow where a product gives Infinity.
    return math.sqrt(_total([(x - mean) * (x - mean) for x in xs]) / (len(xs) - 1))


def _total(xs: list[float]) -> float:
    """The exact sum where there is one; where fsum gives up (an overflow on the way, or
    Infinity and -Infinity together) the plain IEEE sum: Infinity or NaN, as .NET would."""
    try:
        return math.fsum(xs)
    except (OverflowError, ValueError):
        return sum(xs)


AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "avg": lambda xs: _total(_nonempty("avg", xs)) / len(xs),
    "len": lambda xs: float(len(xs)),
    "max": lambda xs: max(_nonempty("max", xs)),
    "min": lambda xs: min(_nonempty("min", xs)),
    "norm": lambda xs: math.sqrt(_total([x * x for x in xs])),
    "range": lambda xs: max(_nonempty("range", xs)) - min(xs),
    "std": _std,
    "sum": _total,
}


def _log(log: Callable[[float], float]) -> Callable[[float], float]:
    # As IEEE doubles (and .NET's Math.Log) have it: log 0 is -Infinity, log of a negative NaN.
    def safe(x: float) -> float:
        if math.isnan(x) or x < 0:
            return math.nan
        return -math.inf if x == 0 else log(x)
    return safe


LOGARITHMS = {"lg": _log(math.log2), "ln": _log(math.log), "log": _log(math.log10)}


def _percentile(v: Value, p: Value) -> float:
    """The element of v at rank ceil(p/100 * n) (nearest rank): an element of v, as Azure's
    "returns the percentile element" says."""
    if not isinstance(v, DoubleVec):
        raise _wrong_type("percentile", 1, "a doubleVec", v)
    if not isinstance(p, float):
        raise _wrong_type("percentile", 2, "a double", p)
    if not 0 <= p <= 100:
        raise _invalid("percentile", f"the percentile must be between 0 and 100, got {p:g}")
    ordered = sorted(_nonempty("percentile", list(v.items)))
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _val(v: Value, i: Value) -> float:
    if not isinstance(v, DoubleVec):
        raise _wrong_type("val", 1, "a doubleVec", v)
    if not isinstance(i, float):
        raise _wrong_type("val", 2, "a double", i)
    if not (i.is_integer() and 0 <= i < len(v.items)):
        raise _invalid("val", f"index {i:g} is outside the doubleVec of {len(v.items)} values")
    return v.items[int(i)]


_W3C_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


def parse_time(text: str) -> float:
    """A W3C-DTF or RFC 1123 date and time -> seconds since the epoch; UTC when no zone given."""
    text = text.strip()
    moment: datetime | None = None
    if partial := _W3C_PARTIAL.match(text):
        moment = datetime(int(partial[1]), int(partial[2] or 1), 1, tzinfo=UTC)
    else:
        for parse in (lambda t: datetime.fromisoformat(t), parsedate_to_datetime):
            try:
                moment = parse(text)
                break
            except (ValueError, TypeError, IndexError):
                continue
    if moment is None:
        raise _invalid("time", f"{text!r} is not a W3C-DTF or RFC 1123 date and time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def call(function: str, args: Sequence[Value], context: Context) -> Value:
    """`function(args)`; the name and the number of arguments were checked at compile time."""
    if function in AGGREGATES:
        return AGGREGATES[function](_flatten(function, args))
    if function in LOGARITHMS:
        log = LOGARITHMS[function]
        if len(args) == 1 and isinstance(args[0], float):
            return log(args[0])
        return DoubleVec(tuple(log(x) for x in _flatten(function, args)))
    if function == "percentile":
        return _percentile(*args)
    if function == "val":
        return _val(*args)
    if function == "rand":
        return context.rand()
    if function == "stop":
        raise Stop
    if not args:
        return timestamp(context.now)
    if not isinstance(args[0], str):
        raise _wrong_type("time", 1, "a string", args[0])
    return timestamp(parse_time(args[0]) if args[0] else context.now)
