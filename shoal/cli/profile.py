"""`shoal profile ...`: named settings in the config file, so the CLI finds Shoal from any
directory."""

from __future__ import annotations

import sys

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
    yes_option,
)
from shoal.profiles import Profile


def masked(key: str) -> str:
    """Enough of a key to tell two apart, not enough to use."""
    return f"{key[:10]}…" if len(key) > 14 else "…"


@click.group("profile", cls=Group)
def profile() -> None:
    """Profiles: where Shoal is and which account to use, by name.

    They live in ~/.config/shoal/config.toml ($SHOAL_CONFIG to move it); `shoal up` adds one
    named `local`. Choose one with `shoal --profile NAME ...` or $SHOAL_PROFILE.
    """


@profile.command("list")
@output_option
def profile_list(output: str) -> None:
    """List the profiles; * marks the default."""
    config = profiles.read_profiles()
    items = sorted(config.by_name.values(), key=lambda p: p.name)
    if output == "json":
        print_json([{"id": p.name, "default": p.name == config.default, "endpoint": p.endpoint,
                     "account": p.account, "state_dir": p.state_dir} for p in items])
        return
    if not items:
        err.print(f"no profiles in {config.path}", markup=False)
        return
    rows = [[p.name, "*" if p.name == config.default else "", p.endpoint or "-",
             p.account or "-", p.state_dir or "-"] for p in items]
    for line in table_lines(["NAME", "DEFAULT", "ENDPOINT", "ACCOUNT", "STATE DIR"], rows,
                            terminal_width()):
        click.echo(line)


@profile.command("set")
@click.argument("name")
@click.option("--endpoint", metavar="HOST:PORT", help="The gateway.")
@click.option("--key-stdin", is_flag=True, help="Read the account key from stdin (not argv, "
              "which other users can see).")
@click.option("--account", default="", help="The account's name, for people.")
@click.option("--state-dir", default="", help="Instead of --endpoint and a key: the state dir "
              "of a `shoal up`, whose client.json has both.")
@click.option("--default", "make_default", is_flag=True, help="Also make it the default.")
def profile_set(
    name: str, endpoint: str | None, key_stdin: bool, account: str, state_dir: str,
    make_default: bool,
) -> None:
    """Add or replace a profile."""
    key = sys.stdin.readline().strip() if key_stdin else ""
    if key_stdin and not key:
        fail("--key-stdin: stdin gave no key", 2)
    if state_dir and (endpoint or key):
        raise click.UsageError("give --state-dir, or --endpoint with --key-stdin, not both")
    if not state_dir and not (endpoint and key):
        raise click.UsageError("give --endpoint and --key-stdin, or --state-dir")
    path = profiles.save_profile(
        Profile(name, endpoint or "", key, account,
                str(click.format_filename(state_dir)) if state_dir else ""),
        make_default=make_default,
    )
    err.print(f"saved profile {name} in {path}", markup=False)


@profile.command("use")
@click.argument("name")
def profile_use(name: str) -> None:
    """Make a profile the default."""
    profiles.set_default(name)
    err.print(f"{name} is the default profile", markup=False)


@profile.command("delete")
@click.argument("name")
@yes_option
def profile_delete(name: str, yes: bool) -> None:
    """Delete a profile (nothing on the server changes)."""
    profiles.read_profiles().get(name)
    confirm(f"profile {name}", yes)
    path = profiles.delete_profile(name)
    err.print(f"deleted profile {name} from {path}", markup=False)


@profile.command("show")
@output_option
@pass_state
def profile_show(state: CliState, output: str) -> None:
    """Show what the next command would use, and where it came from."""
    config = state.config()
    shown = {"endpoint": config.endpoint, "account": config.account or "-",
             "key": masked(config.key), "from": config.source}
    if output == "json":
        print_json(shown)
        return
    for k, v in shown.items():
        click.echo(f"{k:<9} {v}")
