"""The pure parts of metrics: the tally histogram's buckets, and the `observe` section of the
cluster file (defaults on loopback, an empty address turns an endpoint off, port 0 refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.tally import Buckets
from shoal.cluster_config import ClusterConfig, ObserveConfig


def test_buckets_count_each_value_at_or_below_its_bound() -> None:
    b = Buckets((0.1, 1.0, 10.0))
    for v in (0.05, 0.1, 0.5, 1.0, 20.0):
        b.observe(v)
    assert b.cumulative() == [(0.1, 2), (1.0, 4), (10.0, 4), (float("inf"), 5)]
    assert b.count == 5 and b.sum == pytest.approx(21.65)


def test_a_file_without_observe_gets_loopback_defaults(tmp_path: Path) -> None:
    config = ClusterConfig.new(tmp_path / "state")
    config.save(tmp_path / "cluster.json")
    raw = json.loads((tmp_path / "cluster.json").read_text())
    del raw["observe"]
    (tmp_path / "cluster.json").write_text(json.dumps(raw))
    observe = ClusterConfig.load(tmp_path / "cluster.json").observe
    assert observe == ObserveConfig()
    assert observe.metrics_address("job-scheduler") == "127.0.0.1:9453"
    assert observe.dashboard.startswith("127.0.0.1:")


@pytest.mark.parametrize("setting, value, ok", [
    ("dashboard", "", True),
    ("gateway_metrics", "", True),
    ("dashboard", "0.0.0.0:8080", False),  # plain HTTP carrying account keys: loopback only
    ("job_scheduler_metrics", "0.0.0.0:9453", True),
    ("dashboard", "127.0.0.1:0", False),
    ("job_scheduler_metrics", "nohost", False),
    ("storage_stager_metrics", "127.0.0.1:70000", False),
])
def test_addresses_are_checked_when_the_file_is_loaded(
    tmp_path: Path, setting: str, value: str, ok: bool
) -> None:
    config = ClusterConfig.new(tmp_path / "state")
    config.save(tmp_path / "cluster.json")
    raw = json.loads((tmp_path / "cluster.json").read_text())
    raw["observe"][setting] = value
    (tmp_path / "cluster.json").write_text(json.dumps(raw))
    if ok:
        assert getattr(ClusterConfig.load(tmp_path / "cluster.json").observe, setting) == value
    else:
        with pytest.raises(ValueError, match=f"observe.{setting}"):
            ClusterConfig.load(tmp_path / "cluster.json")
