"""`shoal account ...`: accounts and their keys, managed on the control plane's host.

Accounts live in the gateway's database. There is no admin API: these commands run the
gateway's own admin command (`python -m gateway.accounts`) against the cluster file, so only
someone who can read that file — the operator of the host the gateway runs on — can create,
rotate or delete accounts, and no account's key can ever act on another account.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import click

from shoal import profiles
from shoal.cli.common import (
    CliState,
    Group,
    confirm,
    err,
    fail,
    output_option,
    pass_state,
    print_json,
    table_lines,
    terminal_width,
)
from shoal.cluster_config import ClusterConfig
from shoal.errors import ShoalError
from shoal.profiles import Profile
from shoal.suite import accounts_admin

CLUSTER_FILE = "cluster.json"


def cluster_file(state: CliState, given: Path | None) -> Path:
    """--cluster-config, else the cluster file of the state dir (--state-dir,
    $SHOAL_STATE_DIR, ./.shoal), else that of the profile in use if it is a `shoal up`'s."""
    if given is not None:
        return given
    candidates = [state.effective_state_dir / CLUSTER_FILE]
    try:
        config = profiles.read_profiles()
        name = state.profile or os.environ.get(profiles.ENV_PROFILE) or config.default
        if name and config.get(name).state_dir:
            candidates.append(Path(config.get(name).state_dir) / CLUSTER_FILE)
    except ShoalError:  # a broken profile only means one place fewer to look
        pass
    for path in candidates:
        if path.exists():
            return path
    fail(f"no cluster file at {', '.join(map(str, candidates))}: accounts are managed on the "
         "host the gateway runs on; give --cluster-config PATH (e.g. /etc/shoal/cluster.json)")


def _run(state: CliState, given: Path | None, command: str, *args: str) -> tuple[Path, str]:
    path = cluster_file(state, given)
    return path, accounts_admin(path, command, *args)


def _save(path: Path, account: str, key: str, profile_name: str) -> None:
    endpoint = ClusterConfig.load(path).gateway_address
    saved = profiles.save_profile(Profile(profile_name, endpoint, key, account))
    err.print(f"saved the key as profile {profile_name} in {saved}: "
              f"`shoal -p {profile_name} ...`", markup=False)


cluster_option = click.option(
    "--cluster-config", type=click.Path(dir_okay=False, path_type=Path),
    help="The cluster file (default: the state dir's cluster.json, e.g. ./.shoal/).")
profile_option = click.option(
    "--save-profile", "save_as", metavar="NAME",
    help="Keep the key in profile NAME (with the gateway's address) instead of printing it.")


@click.group("account", cls=Group)
def account() -> None:
    """Accounts and their keys (run on the gateway's host; see `shoal account create -h`).

    Every pool, job, task, container and application belongs to one account; a key is all a
    client needs, and it is not stored (derived from the cluster secret; only its hash and a
    nonce are kept).
    """


@account.command("create")
@click.argument("name")
@cluster_option
@profile_option
@pass_state
def account_create(state: CliState, name: str, cluster_config: Path | None,
                   save_as: str | None) -> None:
    """Create an account and print its key, once: the key itself is not kept."""
    path, key = _run(state, cluster_config, "create", "--account", name)
    err.print(f"created account {name}", markup=False)
    if save_as:
        _save(path, name, key, save_as)
    else:
        click.echo(key)


@account.command("list")
@cluster_option
@output_option
@pass_state
def account_list(state: CliState, cluster_config: Path | None, output: str) -> None:
    """List the accounts, by name."""
    _, lines = _run(state, cluster_config, "list")
    accounts = [json.loads(line) for line in lines.splitlines() if line.strip()]
    if output == "json":
        print_json([{"id": a["name"], **a} for a in accounts])
        return
    rows = [[a["name"], datetime.fromtimestamp(a["create_time"]).strftime("%Y-%m-%d %H:%M:%S")]
            for a in accounts]
    for line in table_lines(["NAME", "CREATED"], rows, terminal_width()):
        click.echo(line)


@account.command("delete")
@click.argument("name")
@cluster_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def account_delete(state: CliState, name: str, cluster_config: Path | None, yes: bool) -> None:
    """Delete an account and its key. Refused while it still has pools, jobs, job schedules,
    containers or applications: delete those first, as the account."""
    path = cluster_file(state, cluster_config)
    confirm(f"account {name} and its key", yes)
    accounts_admin(path, "delete", "--account", name)
    err.print(f"deleted account {name}", markup=False)


@account.group("keys", cls=Group)
def keys() -> None:
    """An account's key."""


@keys.command("rotate")
@click.argument("name")
@cluster_option
@profile_option
@pass_state
def keys_rotate(state: CliState, name: str, cluster_config: Path | None,
                save_as: str | None) -> None:
    """Give an account a new key and print it; the old key stops working (within seconds
    for a gateway that has it cached)."""
    path, key = _run(state, cluster_config, "rotate-key", "--account", name)
    err.print(f"new key for account {name}; the old one no longer works", markup=False)
    if save_as:
        _save(path, name, key, save_as)
    else:
        click.echo(key)
