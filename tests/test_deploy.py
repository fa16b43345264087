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


def test_the_grafana_dashboard_uses_only_documented_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    documented = set(re.findall(r"^\| `(shoal_\w+)`", (DEPLOY / "README.md").read_text(), re.M))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = {re.sub(r"_(bucket|count|sum)$", "", m) for e in exprs
            for m in re.findall(r"\bshoal_\w+", e)}
    assert len(exprs) > 20 and len(used) > 12
    assert used <= documented, f"not in deploy/README.md: {sorted(used - documented)}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
