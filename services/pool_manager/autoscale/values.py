"""The types of Azure's formula language and how a run prints them.

double is a Python float, string a str; doubleVec, timestamp and timeinterval are small frozen
types so that each operation can tell them apart. doubleVecList is not a value: it is how
functions take their arguments (any mix of doubles and doubleVecs, flattened).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from services.pool_manager.autoscale.errors import ErrorCode, FormulaError


@dataclass(frozen=True, slots=True)
class DoubleVec:
    items: tuple[float, ...]


@dataclass(frozen=True, slots=True, order=True)
class TimeInterval:
    seconds: float


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    seconds: float
    """Seconds since the Unix epoch, UTC."""

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.seconds, UTC)


Value = float | str | DoubleVec | TimeInterval | Timestamp

EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC).timestamp()
LONGEST = 922_337_203_685.4775807
"""The longest .NET TimeSpan, in seconds (Azure's time intervals are TimeSpans)."""


def timestamp(seconds: float) -> Timestamp:
    """A timestamp, or InvalidArgument when arithmetic took it outside the years 1 to 9999."""
    if not EARLIEST <= seconds <= LATEST:
        raise FormulaError(ErrorCode.INVALID_ARGUMENT,
                           "the timestamp falls outside the years 1 to 9999")
    return Timestamp(seconds)


def interval(seconds: float) -> TimeInterval:
    """A time interval, or InvalidArgument when it is NaN or longer than a TimeSpan can be."""
    if not abs(seconds) <= LONGEST:
        raise FormulaError(ErrorCode.INVALID_ARGUMENT,
                           f"the time interval of {format_double(seconds)} seconds is out of range")
    return TimeInterval(seconds)

TIMESTAMP_MEMBERS = ("year", "month", "day", "weekday", "hour", "minute", "second")


def type_name(value: Value) -> str:
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, DoubleVec):
        return "doubleVec"
    if isinstance(value, TimeInterval):
        return "timeinterval"
    return "timestamp"


def member(stamp: Timestamp, name: str) -> float:
    """A timestamp's member; weekday counts as .NET's DayOfWeek does (Sunday 0, Monday 1), which
    Azure's example `$curTime.weekday >= 1 && $curTime.weekday <= 5` relies on."""
    moment = stamp.datetime()
    if name == "weekday":
        return float(moment.isoweekday() % 7)
    return float(getattr(moment, name))


def format_double(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def format_interval(seconds: float) -> str:
    """As .NET prints a TimeSpan: [-][d.]hh:mm:ss[.fffffff]."""
    if not math.isfinite(seconds):
        return format_double(seconds)
    sign = "-" if seconds < 0 else ""
    ticks = round(abs(seconds) * 10_000_000)
    whole, fraction = divmod(ticks, 10_000_000)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    text = f"{sign}{f'{days}.' if days else ''}{hours:02}:{minutes:02}:{secs:02}"
    return text + (f".{fraction:07}" if fraction else "")


def format_timestamp(stamp: Timestamp) -> str:
    """ISO 8601 in UTC with milliseconds, as Azure's results show `$curTime`."""
    moment = stamp.datetime()
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03}Z"


def format_value(value: Value) -> str:
    if isinstance(value, float):
        return format_double(value)
    if isinstance(value, str):
        return value
    if isinstance(value, DoubleVec):
        return "[" + ",".join(format_double(x) for x in value.items) + "]"
    if isinstance(value, TimeInterval):
        return format_interval(value.seconds)
    return format_timestamp(value)
