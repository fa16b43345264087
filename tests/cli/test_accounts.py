"""gateway/accounts.py against a real SQLite file, and `shoal account` against the real suite."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway import accounts
from services.common.errors import Code, ShoalError
from shoal.cli.main import cli
from shoal.cluster_config import ClusterConfig
from shoal.suite import LocalSuite
from tests.support import wait_for

SECRET = "ab" * 32


def test_create_then_lookup_finds_the_account(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    key = accounts.create_account(db, "team-a", SECRET)
    # Azure Batch's key format (base64 of 64 bytes), so Azure's SDKs take it as they are.
    assert len(base64.b64decode(key, validate=True)) == 64
    found = accounts.lookup(db, key)
    assert found is not None and found.name == "team-a"
    assert accounts.lookup(db, key + "x") is None
    assert accounts.lookup(db, "") is None
    assert [a.name for a in accounts.list_accounts(db)] == ["team-a"]


def test_the_key_is_not_stored_but_derived_under_the_cluster_secret(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    key = accounts.create_account(db, "team-a", SECRET)
    with sqlite3.connect(db) as conn:
        stored, nonce = conn.execute("SELECT key_hash, key_nonce FROM accounts").fetchone()
    raw = (tmp_path / "gateway.db").read_bytes()
    assert stored == accounts.hash_key(key) and key.encode() not in raw
    assert accounts.derive_key(SECRET, nonce) == key
    # Without the cluster secret the nonce gives nothing: another secret, another key.
    assert accounts.derive_key("cd" * 32, nonce) != key


def test_a_file_from_before_derived_keys_is_upgraded_and_its_key_replaced(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE accounts (name TEXT PRIMARY KEY, key_hash TEXT UNIQUE NOT NULL, "
            "create_time REAL NOT NULL)"
        )
        conn.execute(
            "INSERT INTO accounts VALUES ('default', ?, 0)", (accounts.hash_key("shoal_old"),)
        )
    accounts.prepare(db)
    # The old key still answers bearer calls ...
    assert accounts.lookup(db, "shoal_old").name == "default"
    # ... and `shoal up` (ensure_key) replaces it with a derived one.
    new = accounts.ensure_key(db, "default", SECRET, "shoal_old")
    assert new != "shoal_old" and accounts.lookup(db, new).name == "default"
    assert accounts.lookup(db, "shoal_old") is None


def test_lookup_on_an_open_connection_as_the_gateway_holds_one(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    key = accounts.create_account(db, "team-a", SECRET)
    conn = sqlite3.connect(db)
    try:
        conn.executescript(accounts.SCHEMA)  # what the gateway does when it opens the file
        assert accounts.lookup(conn, key).name == "team-a"
    finally:
        conn.close()


def test_rotate_replaces_the_key(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    old = accounts.create_account(db, "team-a", SECRET)
    new = accounts.rotate_key(db, "team-a", SECRET)
    assert new != old
    assert accounts.lookup(db, old) is None
    assert accounts.lookup(db, new).name == "team-a"


def test_rotate_an_unknown_account_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ShoalError) as caught:
        accounts.rotate_key(tmp_path / "gateway.db", "ghost", SECRET)
    assert (caught.value.code, caught.value.reason) == (Code.NOT_FOUND, "ACCOUNT_NOT_FOUND")


def test_duplicate_names_are_refused_ignoring_case(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    first = accounts.create_account(db, "Team-A", SECRET)
    for name in ("Team-A", "team-a"):
        with pytest.raises(ShoalError) as caught:
            accounts.create_account(db, name, SECRET)
        assert caught.value.code == Code.ALREADY_EXISTS
        assert caught.value.reason == "ACCOUNT_ALREADY_EXISTS"
    assert accounts.lookup(db, first).name == "Team-A"
    assert len(accounts.list_accounts(db)) == 1


@pytest.mark.parametrize("name", ["", "has space", "slash/name", "x" * 65, "dot.name"])
def test_bad_names_are_invalid_and_create_nothing(tmp_path: Path, name: str) -> None:
    db = tmp_path / "gateway.db"
    with pytest.raises(ShoalError) as caught:
        accounts.create_account(db, name, SECRET)
    assert caught.value.code == Code.INVALID_ARGUMENT
    assert caught.value.field == "account"
    assert accounts.list_accounts(db) == []


def test_a_missing_database_has_no_accounts(tmp_path: Path) -> None:
    db = tmp_path / "nothing.db"
    assert accounts.list_accounts(db) == []
    assert accounts.lookup(db, "shoal_x") is None
    assert not db.exists()


def test_ensure_key_creates_keeps_and_replaces(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    first = accounts.ensure_key(db, "default", SECRET)
    assert accounts.lookup(db, first).name == "default"
    # A key that still works is kept; one of another account or an unknown one is replaced.
    assert accounts.ensure_key(db, "default", SECRET, first) == first
    other = accounts.create_account(db, "other", SECRET)
    for stale in (other, "shoal_forgotten"):
        new = accounts.ensure_key(db, "default", SECRET, stale)
        assert new not in (first, stale)
        assert accounts.lookup(db, new).name == "default"
        assert accounts.lookup(db, first) is None
        first = new
    assert accounts.lookup(db, other).name == "other"
    assert [a.name for a in accounts.list_accounts(db)] == ["default", "other"]


def test_the_ensure_key_command_takes_the_key_on_stdin_and_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ClusterConfig.new(tmp_path)
    config.save(tmp_path / "cluster.json")
    argv = ["ensure-key", "--config", str(tmp_path / "cluster.json"), "--account", "default"]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert accounts.main(argv) == 0
    key = capsys.readouterr().out.strip()
    assert accounts.lookup(config.db_path("gateway"), key).name == "default"
    monkeypatch.setattr("sys.stdin", io.StringIO(key + "\n"))
    assert accounts.main(argv) == 0
    assert capsys.readouterr().out.strip() == key

    assert accounts.main([*argv[:-1], "bad name"]) == 1
    assert "account" in capsys.readouterr().err


# `shoal account` on the gateway's host, against the real suite


def test_accounts_from_the_cli(shared_suite: LocalSuite, tmp_path: Path) -> None:
    suite = shared_suite
    runner = CliRunner()
    cluster = ["--cluster-config", str(suite.config_path)]

    def shoal(*args: str, key: str | None = None) -> Result:
        base = ["--endpoint", suite.endpoint, "--key", key] if key else []
        return runner.invoke(cli, [*base, *args],
                             env={"SHOAL_DEBUG": "", "SHOAL_CONFIG": str(tmp_path / "c.toml")})

    created = shoal("account", "create", "team-a", *cluster)
    assert created.exit_code == 0, created.output
    key_a = created.stdout.strip()
    assert len(base64.b64decode(key_a, validate=True)) == 64  # Azure's key format
    assert created.stderr == "created account team-a\n"
    # Its key acts for it alone: what team-a makes, default does not see, and back.
    assert shoal("pool", "create", "pa", "--nodes", "0", key=key_a).exit_code == 0
    assert shoal("pool", "show", "pa", key=suite.client_config.key).exit_code == 1
    assert shoal("account", "list", *cluster, "-o", "json").exit_code == 0
    names = [a["id"] for a in json.loads(shoal("account", "ls", *cluster, "-o", "json").stdout)]
    assert names == ["default", "team-a"]

    # A new key (the old one stops working: test_rotate_replaces_the_key), kept in a profile.
    rotated = shoal("account", "keys", "rotate", "team-a", *cluster, "--save-profile", "a")
    assert rotated.exit_code == 0 and rotated.stdout == ""
    assert "saved the key as profile a" in rotated.stderr
    assert shoal("-p", "a", "pool", "show", "pa").exit_code == 0

    refused = shoal("account", "delete", "team-a", *cluster, "--yes")
    assert refused.exit_code == 1
    assert refused.stderr == ("error: account 'team-a' still has pools: delete them first (as "
                              "the account: `shoal account keys rotate` gives you a key) "
                              "[ACCOUNT_NOT_EMPTY]\n")
    assert shoal("-p", "a", "pool", "delete", "pa", "--yes").exit_code == 0
    wait_for(lambda: shoal("-p", "a", "pool", "show", "pa").exit_code == 1, "the pool gone", 60)
    assert shoal("account", "rm", "team-a", *cluster, "-y").exit_code == 0
    assert [a["id"] for a in json.loads(
        shoal("account", "list", *cluster, "-o", "json").stdout)] == ["default"]
    missing = shoal("account", "rm", "team-a", *cluster, "-y")
    assert missing.exit_code == 1 and "[ACCOUNT_NOT_FOUND]" in missing.stderr


def test_accounts_need_the_cluster_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path), "account", "list"])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: no cluster file at {tmp_path}/cluster.json")
