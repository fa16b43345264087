"""The deployment files agree with the code: the example cluster file loads, and each unit
starts a module that exists."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from shoal.cluster_config import ClusterConfig, Limits

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_example_cluster_file_loads(tmp_path: Path) -> None:
    raw = json.loads((DEPLOY / "cluster.example.json").read_text())
    raw["secret"] = "ab" * 32
    (tmp_path / "cluster.json").write_text(json.dumps(raw))
    config = ClusterConfig.load(tmp_path / "cluster.json")
    assert config.gateway_address.endswith(":50051")
    assert config.timing.lost_after > config.timing.unreachable_after
    assert config.limits == Limits()  # the example shows the defaults


def test_a_limit_that_is_not_positive_is_refused_naming_it(tmp_path: Path) -> None:
    raw = json.loads((DEPLOY / "cluster.example.json").read_text())
    raw["secret"] = "ab" * 32
    raw["limits"]["calls_per_account"] = 0
    (tmp_path / "cluster.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="limits.calls_per_account"):
        ClusterConfig.load(tmp_path / "cluster.json")


def test_every_unit_runs_an_existing_module() -> None:
    units = sorted((DEPLOY / "systemd").glob("shoal-*.service"))
    assert len(units) == 4
    for unit in units:
        m = re.search(r"^ExecStart=\S+ -m (\S+) --config", unit.read_text(), re.M)
        assert m, unit.name
        assert importlib.util.find_spec(m.group(1)) is not None, unit.name
