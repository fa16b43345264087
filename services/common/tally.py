"""Counts kept as plain numbers where things happen, for a metrics Collector to read when
Prometheus scrapes (services/common/metrics.py). Pure and lock-free: everything that counts
runs on the service's event loop, so a hot path pays an integer add, not a metrics library's
lock and label look-up."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

DISPATCH_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
"""Seconds a task waits to be dispatched: milliseconds on an idle pool, up to an hour behind
a long queue."""


class Buckets:
    """A histogram as plain numbers: `observe` is one bisect and two adds."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        """Per bucket, not cumulative: the value fell at or below its bound and above the one
        before. The last is above every bound (+Inf)."""
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, values at or below it), Prometheus' `le` buckets, +Inf last."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out
