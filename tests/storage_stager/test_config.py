"""StorageConfig in the cluster file: defaults, round trip, refusals, no secrets in repr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal.cluster_config import ClusterConfig, StorageConfig


def test_defaults_and_round_trip(tmp_path: Path) -> None:
    config = ClusterConfig.new(tmp_path / "state")
    assert config.storage.backend == "local" and config.storage.url_ttl_seconds == 900
    assert config.storage.root(config.state_dir) == tmp_path / "state" / "storage"
    assert config.storage.base_url == "http://127.0.0.1:50055"
    s3 = StorageConfig(backend="s3", endpoint_url="http://minio:9000", region="eu-west-1",
                       access_key_id="AK", secret_access_key="SK", bucket="b", prefix="shoal/")
    config = ClusterConfig.new(tmp_path / "state", storage=s3)
    config.save(tmp_path / "cluster.json")
    raw = json.loads((tmp_path / "cluster.json").read_text())
    assert raw["storage"]["bucket"] == "b" and raw["storage"]["backend"] == "s3"
    assert ClusterConfig.load(tmp_path / "cluster.json") == config


def test_a_file_without_storage_loads_as_local(tmp_path: Path) -> None:
    config = ClusterConfig.new(tmp_path / "state")
    config.save(tmp_path / "cluster.json")
    raw = json.loads((tmp_path / "cluster.json").read_text())
    del raw["storage"]
    (tmp_path / "cluster.json").write_text(json.dumps(raw))
    assert ClusterConfig.load(tmp_path / "cluster.json").storage == StorageConfig()


@pytest.mark.parametrize("storage, word", [
    ({"backend": "ftp"}, "backend"),
    ({"http_address": "127.0.0.1:0"}, "http_address"),
    ({"http_address": "nohost"}, "http_address"),
    ({"backend": "s3"}, "bucket"),
    ({"url_ttl_seconds": 0}, "url_ttl_seconds"),
])
def test_unusable_settings_are_refused_on_load(tmp_path: Path, storage: dict, word: str) -> None:
    config = ClusterConfig.new(tmp_path / "state")
    config.save(tmp_path / "cluster.json")
    raw = json.loads((tmp_path / "cluster.json").read_text())
    raw["storage"] = storage
    (tmp_path / "cluster.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=word):
        ClusterConfig.load(tmp_path / "cluster.json")


def test_public_url_and_secrets() -> None:
    s = StorageConfig(public_url="https://files.example.com/", secret_access_key="SUPERSECRET",
                      access_key_id="AKIAXYZ")
    assert s.base_url == "https://files.example.com"
    assert "SUPERSECRET" not in repr(s) and "AKIAXYZ" not in repr(s)


@pytest.mark.parametrize("value", [0, -5])
def test_a_staging_outage_timeout_that_is_not_positive_is_refused(tmp_path: Path,
                                                                  value: float) -> None:
    config = ClusterConfig.new(tmp_path / "state")
    assert config.timing.staging_outage_timeout == 300.0
    config.save(tmp_path / "cluster.json")
    raw = json.loads((tmp_path / "cluster.json").read_text())
    raw["timing"]["staging_outage_timeout"] = value
    (tmp_path / "cluster.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="timing.staging_outage_timeout"):
        ClusterConfig.load(tmp_path / "cluster.json")
