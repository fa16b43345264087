"""Clock injection and protobuf time conversions."""

from __future__ import annotations

import time
from collections.abc import Callable

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

Clock = Callable[[], float]
"""Returns seconds since the epoch. Injected so expiry logic is tested without sleeping."""

wall_clock: Clock = time.time


def to_timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def set_time(ts: Timestamp, seconds: float) -> None:
    """Fill a Timestamp in place from seconds since the epoch (not before it). A page of
    ListTasks sets four per task: two field writes cost a third of FromNanoseconds, which is
    pure Python with checks."""
    whole = int(seconds)
    ts.seconds = whole
    ts.nanos = int((seconds - whole) * 1e9)


def from_timestamp(ts: Timestamp) -> float | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToNanoseconds() / 1e9


def to_duration(seconds: float | None) -> Duration | None:
    if seconds is None:
        return None
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def from_duration(d: Duration) -> float:
    return d.ToNanoseconds() / 1e9
