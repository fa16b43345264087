"""Builders for the autoscale evaluator's inputs: a complete, valid pool snapshot and sample
histories recorded every period up to `now`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.pool_manager.autoscale import AutoScaleRun, PoolSnapshot, Sample, evaluate_text

NOW = datetime(2016, 10, 13, 19, 18, 47, 805000, tzinfo=UTC).timestamp()
"""The moment of Azure's documented evaluation of the time-based formula (a Thursday)."""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def history(values: Sequence[float], *, now: float = NOW, period: float = 30.0) -> list[Sample]:
    """`values` oldest first, the last recorded at `now`, one every `period` seconds."""
    n = len(values)
    return [Sample(now - (n - 1 - i) * period, float(v)) for i, v in enumerate(values)]


def snapshot(**kw: Any) -> PoolSnapshot:
    base: dict[str, Any] = dict(now=NOW, target_dedicated_nodes=2, current_dedicated_nodes=2,
                                usable_node_count=2, task_slots_per_node=1)
    base.update(kw)
    return PoolSnapshot(**base)


def run(text: str, **kw: Any) -> AutoScaleRun:
    """Evaluate `text`; rand() gives 0.25 so results can be compared exactly."""
    return evaluate_text(text, snapshot(**kw), rand=lambda: 0.25)


def values(r: AutoScaleRun) -> dict[str, str]:
    return dict(r.variables)


def ok(text: str, **kw: Any) -> dict[str, str]:
    """The variables of a run that must succeed."""
    r = run(text, **kw)
    assert r.error is None, r.error
    return values(r)


def message(r: AutoScaleRun) -> str:
    assert r.error is not None, r.results
    return dict(r.error.values)["Message"]
