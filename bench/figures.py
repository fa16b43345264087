"""What a benchmark hands back: figures with their targets, and the statistics behind them.

Pure data and arithmetic (stdlib only), so the report can be rebuilt from the JSON alone.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    op: str
    """">=" (higher is better) or "<=" (lower is better)."""
    value: float

    def met(self, value: float) -> bool:
        return value >= self.value if self.op == ">=" else value <= self.value


@dataclass
class Figure:
    key: str
    """Stable id in the JSON, `benchmark.what`: scripts and the README quote it."""
    label: str
    """What was measured, for the table."""
    value: float | None
    """None when the benchmark could not produce it (it failed or timed out)."""
    unit: str
    target: Target | None = None
    note: str = ""
    """Context printed after the value: a fraction of the ceiling, a spread, a timeout."""

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        return self.value is not None and self.target.met(self.value)


@dataclass
class Outcome:
    """One benchmark's run."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)
    """Everything else worth keeping in the JSON: sweep points, raw samples, counts."""
    seconds: float = 0.0
    error: str | None = None

    def add(
        self,
        what: str,
        label: str,
        value: float | None,
        unit: str,
        target: Target | None = None,
        note: str = "",
    ) -> Figure:
        f = Figure(f"{self.name}.{what}", label, value, unit, target, note)
        self.figures.append(f)
        return f


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100): a value that was actually observed, so p99
    of 200 samples is the second largest, not an interpolation."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return float(ordered[rank - 1])


def of_ceiling(rate: float | None, ceiling: float | None) -> str:
    """`0.48 × ceiling` — how a throughput compares with the machine's raw spawn rate."""
    if rate is None or not ceiling:
        return ""
    return f"{rate / ceiling:.2f} × ceiling"
