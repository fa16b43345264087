"""The `shoal` command: global options, the command groups, and the console-script entry."""

from __future__ import annotations

from pathlib import Path

import click
from click.shell_completion import get_completion_class

from shoal.cli.accounts import account
from shoal.cli.admin import admin
from shoal.cli.apps import app
from shoal.cli.common import CliState, ShoalGroup
from shoal.cli.demo import demo
from shoal.cli.jobs import job
from shoal.cli.pools import node, pool
from shoal.cli.profile import profile
from shoal.cli.schedules import schedule
from shoal.cli.status import status
from shoal.cli.storage import storage
from shoal.cli.tasks import task
from shoal.cli.up import up
from shoal.cli.watch import job_watch, node_watch
from shoal.client import ENV_STATE_DIR
from shoal.profiles import ENV_PROFILE


@click.group(cls=ShoalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Where `shoal up` keeps its state and client.json (default: ${ENV_STATE_DIR} or ./.shoal).",
)
@click.option("--endpoint", metavar="HOST:PORT",
              help="Gateway to talk to (default: $SHOAL_ENDPOINT, the profile, client.json).")
@click.option("--key", help="Account key (default: $SHOAL_ACCOUNT_KEY, the profile, client.json).")
@click.option("-p", "--profile", metavar="NAME",
              help=f"A profile of the config file (default: ${ENV_PROFILE}, else ./.shoal, else "
                   "the default profile). See `shoal profile`.")
@click.version_option(package_name="shoal", prog_name="shoal")
@click.pass_context
def cli(
    ctx: click.Context,
    state_dir: Path | None,
    endpoint: str | None,
    key: str | None,
    profile: str | None,
) -> None:
    """Shoal: pools of nodes run many command lines in parallel.

    Start everything on this machine with `shoal up`, or see it work with `shoal demo`.
    Where Shoal is and which account to use come from, in order: --endpoint and --key,
    $SHOAL_ENDPOINT and $SHOAL_ACCOUNT_KEY, --profile or $SHOAL_PROFILE, --state-dir or
    $SHOAL_STATE_DIR, ./.shoal/client.json, the default profile (`shoal profile list`).
    """
    state = CliState(state_dir, endpoint, key, profile)
    ctx.obj = state
    ctx.call_on_close(state.close)


for command in (up, demo, status, pool, node, job, task, schedule, storage, app, profile,
                account, admin):
    cli.add_command(command)
job.add_command(job_watch)
node.add_command(node_watch)


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell code that completes shoal's commands and options.

    \b
    bash:  eval "$(shoal completion bash)"         (add it to ~/.bashrc)
    zsh:   eval "$(shoal completion zsh)"          (add it to ~/.zshrc)
    fish:  shoal completion fish > ~/.config/fish/completions/shoal.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None  # click knows all three
    click.echo(cls(cli, {}, "shoal", "_SHOAL_COMPLETE").source())


cli.add_command(completion)


def main() -> None:
    cli.main(prog_name="shoal")


if __name__ == "__main__":
    main()
