"""`shoal admin`: operator commands run on the control-plane host, against a state directory's
files (no service is called)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from shoal import dbfiles
from shoal.cli.common import CliState, err, fail, pass_state


@click.group()
def admin() -> None:
    """Back up, restore and check a state directory's databases."""


@admin.command("backup")
@click.argument("dest", type=click.Path(path_type=Path), required=False)
@pass_state
def admin_backup(state: CliState, dest: Path | None) -> None:
    """Copy every database of the state directory into DEST (a new directory; default
    ./shoal-backup-<time>) while Shoal runs: each copy is consistent and checked. It holds
    what lets one act as the services: keep it as safe as the state directory."""
    state_dir = state.effective_state_dir
    dest = dest or Path(time.strftime("shoal-backup-%Y%m%d-%H%M%S"))
    try:
        copies = dbfiles.backup(state_dir, dest)
    except (OSError, dbfiles.DatabaseUnreadable) as e:
        fail(str(e))
    for c in copies:
        err.print(f"{c.name}: {c.stat().st_size:,} bytes")
    err.print(f"backed up {len(copies)} databases of {state_dir} to {dest}")


@admin.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask first.")
@pass_state
def admin_restore(state: CliState, source: Path, yes: bool) -> None:
    """Replace the state directory's databases with those of a backup (SOURCE), Shoal stopped.
    The replaced files are kept in <state dir>/replaced-<time>/. Nodes' tasks that changed
    since the backup are reconciled when their agents reconnect."""
    state_dir = state.effective_state_dir
    if not yes:
        click.confirm(f"replace the databases of {state_dir} with those of {source}?",
                      abort=True, err=True)
    try:
        aside = dbfiles.restore(source, state_dir)
    except (OSError, RuntimeError, dbfiles.DatabaseUnreadable) as e:
        fail(str(e))
    err.print(f"restored {source} into {state_dir}; the files it replaced are in {aside}")


@admin.command("check")
@pass_state
def admin_check(state: CliState) -> None:
    """Check every database of the state directory (SQLite's quick_check, as each service does
    when it starts). Exit 1 naming the first damaged one."""
    dbs = dbfiles.databases(state.effective_state_dir)
    for db in dbs:
        try:
            dbfiles.check_file(db)
        except dbfiles.DatabaseUnreadable as e:
            fail(str(e))
    err.print(f"{len(dbs)} databases of {state.effective_state_dir}: ok")
