"""What a formula reads: the pool as it is now and the sample histories of its metrics, given
as plain data (the pool-manager fills them from the scheduler's state and the nodes'
heartbeats), and the methods a sampled variable offers over its history.

Azure records a sample every 30 seconds; Shoal takes the period from the snapshot, so pools
evaluated every 5 seconds can be sampled as often.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.pool_manager.autoscale.errors import ErrorCode, FormulaError
from services.pool_manager.autoscale.values import (
    DoubleVec,
    TimeInterval,
    Timestamp,
    Value,
    format_double,
    timestamp,
    type_name,
)
from services.pool_manager.autoscale.variables import SAMPLED

METHODS: dict[str, tuple[int, int]] = {
    "GetSample": (1, 3), "GetSamplePeriod": (0, 0), "Count": (0, 0),
    "HistoryBeginTime": (0, 0), "GetSamplePercent": (1, 2),
}
"""Method -> (fewest, most) arguments."""


@dataclass(frozen=True)
class Sample:
    time: float
    """Seconds since the Unix epoch, when the value was recorded."""
    value: float


@dataclass(frozen=True)
class PoolSnapshot:
    """Everything a formula can read, as of `now`."""

    now: float
    """Seconds since the Unix epoch: time() and the end of every sample window."""
    target_dedicated_nodes: int
    """The pool's target before this evaluation: $TargetDedicatedNodes until the formula sets it."""
    current_dedicated_nodes: int
    usable_node_count: int
    """Nodes that can run tasks now (idle or running), $UsableNodeCount."""
    task_slots_per_node: int
    histories: Mapping[str, Sequence[Sample]] = field(default_factory=dict)
    """Sampled variable name ('$PendingTasks') -> its samples, oldest first. A variable not
    given has no samples."""
    sample_period: float = 30.0
    """Seconds between two samples: what GetSamplePeriod() returns and GetSamplePercent()
    counts against."""
    target_low_priority_nodes: int = 0
    current_low_priority_nodes: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.histories) - SAMPLED
        if unknown:
            raise ValueError(f"not sampled variables: {sorted(unknown)}")
        if not self.sample_period > 0:
            raise ValueError("sample_period must be positive")
        for variable, samples in self.histories.items():
            if any(a.time > b.time for a, b in zip(samples, samples[1:], strict=False)):
                raise ValueError(f"the samples of {variable} are not oldest first")

    def between(self, variable: str, earlier: float, later: float) -> Sequence[Sample]:
        """The samples of `variable` recorded in (earlier, later], oldest first (found by
        bisection: a formula may read long histories several times per evaluation)."""
        samples = self.histories.get(variable, ())
        start = bisect_right(samples, earlier, key=_time)
        return samples[start:bisect_right(samples, later, lo=start, key=_time)]

    def history(self, variable: str) -> Sequence[Sample]:
        """The samples of `variable` recorded up to now, oldest first."""
        return self.between(variable, -math.inf, self.now)


def _time(sample: Sample) -> float:
    return sample.time


def _insufficient(variable: str, wanted: str, received: str) -> FormulaError:
    return FormulaError(
        ErrorCode.INSUFFICIENT_SAMPLE_DATA,
        f"Insufficient data from data set: {variable} wanted {wanted}, received {received}",
        values=(("Variable", variable), ("Wanted", wanted), ("Received", received)),
    )


def _percent_text(percent: float) -> str:
    return format_double(math.floor(percent * 10) / 10) + "%"


def _moment(variable: str, method: str, position: int, value: Value, now: float) -> float:
    """A window bound: a timestamp as it is, a time interval as that long before now."""
    if isinstance(value, Timestamp):
        return value.seconds
    if isinstance(value, TimeInterval):
        return now - value.seconds
    raise FormulaError(
        ErrorCode.TYPE_MISMATCH,
        f"{variable}.{method}() argument {position} must be a timestamp or a timeinterval, "
        f"got {type_name(value)}",
        values=(("Method", method), ("Argument", str(position)), ("Type", type_name(value))),
    )


@dataclass(frozen=True)
class _Window:
    samples: Sequence[Sample]
    percent: float


def _window(variable: str, method: str, bounds: Sequence[Value], snapshot: PoolSnapshot) -> _Window:
    """The samples in (earlier, later] of the one or two bounds (one: up to now), and what
    percent they are of the samples a full history would have there."""
    now = snapshot.now
    moments = [_moment(variable, method, i, b, now) for i, b in enumerate(bounds, 1)]
    if len(moments) == 1:
        moments.append(now)
    earlier, later = min(moments), max(moments)
    samples = snapshot.between(variable, earlier, min(later, now))
    expected = max(1, math.floor((later - earlier) / snapshot.sample_period + 1e-9))
    return _Window(samples, min(100.0, 100.0 * len(samples) / expected))


def _sample_percent(variable: str, value: Value, position: int) -> float:
    if not isinstance(value, float):
        raise FormulaError(
            ErrorCode.TYPE_MISMATCH,
            f"{variable}.GetSample() argument {position} must be a double (a percent), "
            f"got {type_name(value)}",
            values=(("Method", "GetSample"), ("Argument", str(position))),
        )
    if not 0 <= value <= 100:
        raise FormulaError(ErrorCode.INVALID_ARGUMENT,
                           f"{variable}.GetSample(): a sample percent must be between 0 and 100, "
                           f"got {format_double(value)}", values=(("Method", "GetSample"),))
    return value


def _get_sample(variable: str, args: Sequence[Value], snapshot: PoolSnapshot) -> DoubleVec:
    first = args[0]
    if isinstance(first, float):
        if len(args) > 1:
            raise FormulaError(ErrorCode.TYPE_MISMATCH,
                               f"{variable}.GetSample(count) takes one argument",
                               values=(("Method", "GetSample"),))
        if not (first.is_integer() and first >= 1):
            raise FormulaError(ErrorCode.INVALID_ARGUMENT,
                               f"{variable}.GetSample(): a count of samples must be a whole "
                               f"number of 1 or more, got {format_double(first)}",
                               values=(("Method", "GetSample"),))
        history = snapshot.history(variable)
        wanted = int(first)
        if len(history) < wanted:
            raise _insufficient(variable, f"{wanted} sample{'s' if wanted > 1 else ''}", f"{len(history)}")
        return DoubleVec(tuple(s.value for s in history[len(history) - wanted:]))
    # (start [, end] [, percent]): the last argument is the percent when it is a double.
    bounds, percent = list(args), None
    if len(bounds) > 1 and isinstance(bounds[-1], float):
        percent = _sample_percent(variable, bounds.pop(), len(args))
    if len(bounds) > 2:
        raise FormulaError(ErrorCode.TYPE_MISMATCH,
                           f"{variable}.GetSample() takes a start, an end and a percent at most",
                           values=(("Method", "GetSample"),))
    window = _window(variable, "GetSample", bounds, snapshot)
    if percent is not None and window.percent < percent:
        raise _insufficient(variable, _percent_text(percent), _percent_text(window.percent))
    if not window.samples:
        # No percent asked for still means some data: an empty vector would only fail later,
        # in avg() or min(), with a message that no longer names the variable.
        raise _insufficient(variable, "1 sample", "0")
    return DoubleVec(tuple(s.value for s in window.samples))


def call_method(variable: str, method: str, args: Sequence[Value], snapshot: PoolSnapshot) -> Value:
    """`variable.method(args)`; the method and the number of arguments were checked at compile
    time."""
    if method == "GetSample":
        return _get_sample(variable, args, snapshot)
    if method == "GetSamplePercent":
        return _window(variable, method, args, snapshot).percent
    if method == "GetSamplePeriod":
        return TimeInterval(snapshot.sample_period)
    history = snapshot.history(variable)
    if method == "Count":
        return float(len(history))
    if not history:
        raise _insufficient(variable, "1 sample", "0")
    return timestamp(history[0].time)


def latest(variable: str, snapshot: PoolSnapshot) -> float:
    """A sampled variable read as a plain double: its most recent sample (Shoal's reading)."""
    history = snapshot.history(variable)
    if not history:
        raise _insufficient(variable, "1 sample", "0")
    return history[-1].value
