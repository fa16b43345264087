"""Settings from the environment and from a config file of profiles, found from any
directory: the order they are taken in, and `shoal profile` against the real suite."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoal.cli.main import cli
from shoal.client import ClientConfig, resolve_config, write_client_file
from shoal.errors import ClientConfigError
from shoal.profiles import Profile, read_profiles, save_profile
from shoal.suite import LocalSuite


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file of this test's own, in a directory with no ./.shoal, and no SHOAL_*
    settings in the environment."""
    for name in ("SHOAL_ENDPOINT", "SHOAL_ACCOUNT_KEY", "SHOAL_STATE_DIR", "SHOAL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "home" / "config.toml"
    monkeypatch.setenv("SHOAL_CONFIG", str(path))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return path


def test_the_order_settings_are_taken_in(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ClientConfigError, match="no Shoal to talk to"):
        resolve_config()
    up_dir = tmp_path / "up"
    up_dir.mkdir()
    write_client_file(up_dir, ClientConfig("h:1", "k-up", "default"))
    save_profile(Profile("local", state_dir=str(up_dir)))  # the first becomes the default
    save_profile(Profile("team", endpoint="h:2", key="k-team", account="team"))
    got = resolve_config()
    assert (got.endpoint, got.key, got.account) == ("h:1", "k-up", "default")
    assert "profile 'local'" in got.source

    (tmp_path / "cwd" / ".shoal").mkdir()  # a `shoal up` in this directory wins over the default
    write_client_file(tmp_path / "cwd" / ".shoal", ClientConfig("h:3", "k-here"))
    assert resolve_config().endpoint == "h:3"
    monkeypatch.setenv("SHOAL_STATE_DIR", str(up_dir))
    assert resolve_config().endpoint == "h:1"
    monkeypatch.setenv("SHOAL_PROFILE", "team")
    assert (resolve_config().endpoint, resolve_config().key) == ("h:2", "k-team")
    assert resolve_config(profile="local").key == "k-up"
    monkeypatch.setenv("SHOAL_ACCOUNT_KEY", "k-env")  # fills the key; the endpoint is the profile's
    assert (resolve_config().endpoint, resolve_config().key) == ("h:2", "k-env")
    assert resolve_config(endpoint="h:9", key="k-arg").endpoint == "h:9"

    with pytest.raises(ClientConfigError, match=r"no profile 'nope' in .*\(profiles: local, team\)"):
        resolve_config(profile="nope")


def test_a_profile_whose_shoal_is_gone_says_so(tmp_path: Path, config: Path) -> None:
    save_profile(Profile("local", state_dir=str(tmp_path / "gone")))
    with pytest.raises(ClientConfigError, match="profile 'local'.*is its `shoal up` gone"):
        resolve_config()


def test_edits_keep_the_files_comments(config: Path) -> None:
    config.parent.mkdir(parents=True)
    config.write_text('# mine\ndefault_profile = "a"\n\n[profiles.a]  # the lab\n'
                      'endpoint = "lab:50051"\nkey = "k"\n')
    save_profile(Profile("b", endpoint="b:1", key="kb"), make_default=True)
    text = config.read_text()
    assert "# mine" in text and "# the lab" in text
    assert tomllib.loads(text)["default_profile"] == "b"
    assert sorted(read_profiles().by_name) == ["a", "b"]
    assert config.stat().st_mode & 0o777 == 0o600


def test_a_broken_config_file_is_one_line(config: Path) -> None:
    config.parent.mkdir(parents=True)
    config.write_text("[profiles.a]\nendpoint = 5\n")
    result = CliRunner().invoke(cli, ["job", "list"])
    assert result.exit_code == 1
    assert result.output == (f"error: {config}: profile 'a' may hold only strings endpoint, key, "
                             "account, state_dir [NO_CLIENT_CONFIG]\n")


def test_profiles_from_the_cli_against_the_real_suite(
    shared_suite: LocalSuite, uid: str, config: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    key = shared_suite.client_config.key
    saved = runner.invoke(cli, ["profile", "set", "team", "--endpoint", shared_suite.endpoint,
                                "--key-stdin", "--account", "default"], input=key + "\n")
    assert saved.exit_code == 0, saved.output
    assert key not in saved.output
    assert runner.invoke(cli, ["profile", "set", "other", "--state-dir", str(tmp_path)]
                         ).exit_code == 0

    listed = runner.invoke(cli, ["profile", "ls"]).stdout.splitlines()
    assert listed[0].split() == ["NAME", "DEFAULT", "ENDPOINT", "ACCOUNT", "STATE", "DIR"]
    assert listed[1].split()[:3] == ["other", "-", "-"]
    assert listed[2].split()[:3] == ["team", "*", shared_suite.endpoint]

    # The real command, from a directory that knows nothing of the suite.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env["SHOAL_CONFIG"] = str(config)
    done = subprocess.run([sys.executable, "-m", "shoal.cli.main", "pool", "create", uid,
                           "--nodes", "0"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    shown = runner.invoke(cli, ["profile", "show"]).stdout
    assert f"endpoint  {shared_suite.endpoint}" in shown and key not in shown
    assert "from      profile 'team'" in shown

    assert runner.invoke(cli, ["profile", "use", "other"]).exit_code == 0
    gone = runner.invoke(cli, ["pool", "show", uid])
    assert gone.exit_code == 1 and "is its `shoal up` gone?" in gone.output
    assert runner.invoke(cli, ["-p", "team", "pool", "show", uid]).exit_code == 0
    assert runner.invoke(cli, ["pool", "show", uid], env={"SHOAL_PROFILE": "team"}).exit_code == 0

    refused = runner.invoke(cli, ["profile", "rm", "team"])
    assert refused.exit_code == 2 and "add --yes" in refused.output
    assert runner.invoke(cli, ["profile", "rm", "team", "--yes"]).exit_code == 0
    assert sorted(read_profiles().by_name) == ["other"]
