"""The `shoal` command: global options, the command groups, and the console-script entry."""

from __future__ import annotations

from pathlib import Path

import click

from shoal.cli.apps import app
from shoal.cli.common import CliState, ShoalGroup
from shoal.cli.demo import demo
from shoal.cli.jobs import job
from shoal.cli.pools import node, pool
from shoal.cli.schedules import schedule
from shoal.cli.storage import storage
from shoal.cli.tasks import task
from shoal.cli.up import up
from shoal.cli.watch import job_watch, node_watch
from shoal.client import ENV_STATE_DIR


@click.group(cls=ShoalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Where `shoal up` keeps its state and client.json (default: ${ENV_STATE_DIR} or ./.shoal).",
)
@click.option("--endpoint", metavar="HOST:PORT", help="Gateway to talk to (default: discovered).")
@click.option("--key", help="Account key (default: $SHOAL_ACCOUNT_KEY or client.json).")
@click.version_option(package_name="shoal", prog_name="shoal")
@click.pass_context
def cli(ctx: click.Context, state_dir: Path | None, endpoint: str | None, key: str | None) -> None:
    """Shoal: pools of nodes run many command lines in parallel.

    Start everything on this machine with `shoal up`, or see it work with `shoal demo`.
    """
    state = CliState(state_dir, endpoint, key)
    ctx.obj = state
    ctx.call_on_close(state.close)


for command in (up, demo, pool, node, job, task, schedule, storage, app):
    cli.add_command(command)
job.add_command(job_watch)
node.add_command(node_watch)


def main() -> None:
    cli.main(prog_name="shoal")


if __name__ == "__main__":
    main()
