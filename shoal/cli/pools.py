"""`shoal pool ...` and `shoal node ...`."""

from __future__ import annotations

from typing import Any, TypeVar

import click

from shoal.cli.common import (
    CliState,
    Group,
    Paging,
    confirm,
    enum_name,
    err,
    key_values,
    last,
    list_options,
    output_option,
    pass_state,
    render_list,
    render_one,
    state_choice,
    when,
    yes_option,
)
from shoal.cli.tasks import parse_each
from shoal.client import state_filter
from shoal.specs import NodeCommand, PackageReference, ResourceFile
from shoal.v1 import pool_pb2

F = TypeVar("F", bound=Any)
Pool = pool_pb2.Pool
Node = pool_pb2.Node


def _pool_row(p: pool_pb2.Pool) -> list[str]:
    return [
        last(p.name),
        enum_name(Pool.State, p.state),
        enum_name(Pool.AllocationState, p.allocation_state),
        f"{p.current_nodes}/{p.target_nodes}",
        str(p.task_slots_per_node),
        p.provider or "-",
        when(p.create_time),
    ]


def _show_pool(p: pool_pb2.Pool, output: str) -> None:
    render_one(
        p,
        output,
        [
            ("id", last(p.name)),
            ("name", p.name),
            ("display name", p.display_name or "-"),
            ("state", enum_name(Pool.State, p.state)),
            ("allocation", enum_name(Pool.AllocationState, p.allocation_state)),
            ("nodes", f"{p.current_nodes} of {p.target_nodes}"),
            ("slots per node", str(p.task_slots_per_node)),
            ("provider", p.provider or "-"),
            ("metadata", ", ".join(f"{k}={v}" for k, v in sorted(p.metadata.items())) or "-"),
            ("start task", p.start_task.command_line if p.HasField("start_task") else "-"),
            ("app packages", ", ".join(
                r.application_id + (f":{r.version}" if r.version else "")
                for r in p.application_package_references) or "-"),
            ("created", when(p.create_time)),
            ("state since", when(p.state_transition_time)),
            ("updated", when(p.update_time)),
            ("etag", p.etag or "-"),
        ],
    )


# What a node sets up when it joins: the same options for pool create and pool update.
_app_packages = click.option(
    "--app-package",
    "app_packages",
    multiple=True,
    metavar="APP[:VERSION]",
    help="Installed by every node when it joins; repeatable. No version: the default version.",
)
_start_task_options = (
    click.option("--start-task", metavar="COMMAND",
                 help="Run by every node when it joins, after its packages are installed."),
    click.option("--start-task-file", "start_files", multiple=True, metavar="RESOURCE",
                 help="A resource file of the start task (as task add --resource-file); "
                      "repeatable."),
    click.option("--start-task-no-wait", is_flag=True,
                 help="Let nodes take tasks while the start task runs (default: wait for "
                      "success)."),
    click.option("--start-task-retries", type=click.IntRange(0, 100), default=0,
                 show_default=True, help="Retries of a start task that exits non-zero."),
)


def _start_task(f: F) -> F:
    for option in reversed(_start_task_options):
        f = option(f)
    return f


def _start_command(
    command: str | None, files: tuple[str, ...], no_wait: bool, retries: int
) -> NodeCommand | None:
    if files and not command:
        raise click.UsageError("--start-task-file needs --start-task")
    return NodeCommand(
        command, tuple(parse_each(files, ResourceFile.parse, "--start-task-file")),
        max_task_retry_count=retries, wait_for_success=not no_wait,
    ) if command else None


@click.group("pool", cls=Group)
def pool() -> None:
    """Pools of compute nodes."""


@pool.command("create")
@click.argument("pool_id")
@click.option("--nodes", "nodes", type=click.IntRange(0), required=True, help="Target node count.")
@click.option(
    "--slots", type=click.IntRange(1), default=1, show_default=True, help="Task slots per node."
)
@click.option("--display-name", default="", help="Free text shown to people.")
@click.option("--metadata", multiple=True, metavar="K=V", help="Metadata entry; repeatable.")
@_app_packages
@_start_task
@click.option("--fill-type", type=click.Choice(["spread", "pack"], case_sensitive=False),
              help="spread: each task to the node with the most free slots; pack: fill one "
                   "node's slots before the next.  [default: spread]")
@output_option
@pass_state
def pool_create(
    state: CliState,
    pool_id: str,
    nodes: int,
    slots: int,
    display_name: str,
    metadata: tuple[str, ...],
    app_packages: tuple[str, ...],
    start_task: str | None,
    start_files: tuple[str, ...],
    start_task_no_wait: bool,
    start_task_retries: int,
    fill_type: str | None,
    output: str,
) -> None:
    """Create a pool of NODES nodes."""
    meta = key_values(metadata, "--metadata")
    packages = parse_each(app_packages, PackageReference.parse, "--app-package")
    start = _start_command(start_task, start_files, start_task_no_wait, start_task_retries)
    p = state.client().create_pool(
        pool_id,
        target_nodes=nodes,
        task_slots_per_node=slots,
        display_name=display_name,
        metadata=meta,
        application_package_references=packages,
        start_task=start,
        node_fill_type=fill_type,
    )
    _show_pool(p, output)


@pool.command("update")
@click.argument("pool_id")
@_start_task
@click.option("--clear-start-task", is_flag=True, help="Nodes that join run no start task.")
@_app_packages
@click.option("--clear-app-packages", is_flag=True, help="Nodes that join install no packages.")
@click.option("--metadata", multiple=True, metavar="K=V",
              help="Replace the pool's metadata with these entries; repeatable.")
@click.option("--clear-metadata", is_flag=True, help="Remove all the pool's metadata.")
@click.option("--if-match", metavar="ETAG",
              help="Update only if the pool's etag (pool show) is still this: nothing changes "
                   "if someone changed it since.")
@output_option
@pass_state
def pool_update(
    state: CliState,
    pool_id: str,
    start_task: str | None,
    start_files: tuple[str, ...],
    start_task_no_wait: bool,
    start_task_retries: int,
    clear_start_task: bool,
    app_packages: tuple[str, ...],
    clear_app_packages: bool,
    metadata: tuple[str, ...],
    clear_metadata: bool,
    if_match: str | None,
    output: str,
) -> None:
    """Change a pool's start task, application packages or metadata; the rest stays.

    As in Azure Batch, a new start task or package list reaches nodes as they join (pool
    resize) or are rebooted (node reboot), not the nodes running now."""
    for given, clear, names in (
        (start_task, clear_start_task, "--start-task and --clear-start-task"),
        (app_packages, clear_app_packages, "--app-package and --clear-app-packages"),
        (metadata, clear_metadata, "--metadata and --clear-metadata"),
    ):
        if given and clear:
            raise click.UsageError(f"{names} exclude each other")
    start = _start_command(start_task, start_files, start_task_no_wait, start_task_retries)
    packages = ([] if clear_app_packages
                else parse_each(app_packages, PackageReference.parse, "--app-package")
                if app_packages else None)
    meta = {} if clear_metadata else key_values(metadata, "--metadata") if metadata else None
    if start is None and not clear_start_task and packages is None and meta is None:
        raise click.UsageError(
            "nothing to update: give --start-task, --clear-start-task, --app-package, "
            "--clear-app-packages or --metadata")
    p = state.client().update_pool(
        pool_id, start_task=start, clear_start_task=clear_start_task,
        application_package_references=packages, metadata=meta, if_match=if_match)
    _show_pool(p, output)


@pool.command("list")
@click.option("--state", "pool_states", multiple=True, type=state_choice(Pool.State),
              help="Only pools in this state; repeatable.")
@list_options
@output_option
@pass_state
def pool_list(state: CliState, pool_states: tuple[str, ...], paging: Paging, output: str) -> None:
    """List pools, by id."""
    pools = state.client().list_pools(filter=state_filter(pool_states or None, Pool.State))
    render_list(
        paging.take(pools),
        output,
        ["ID", "STATE", "ALLOCATION", "NODES", "SLOTS", "PROVIDER", "CREATED"],
        _pool_row,
        "no pools",
    )


@pool.command("show")
@click.argument("pool_id")
@output_option
@pass_state
def pool_show(state: CliState, pool_id: str, output: str) -> None:
    """Show one pool."""
    _show_pool(state.client().get_pool(pool_id), output)


@pool.command("resize")
@click.argument("pool_id")
@click.option("--nodes", type=click.IntRange(0), required=True, help="New target node count.")
@click.option(
    "--deallocation",
    type=click.Choice(["requeue", "terminate", "taskcompletion"], case_sensitive=False),
    default="requeue",
    show_default=True,
    help="What happens to tasks on removed nodes.",
)
@output_option
@pass_state
def pool_resize(state: CliState, pool_id: str, nodes: int, deallocation: str, output: str) -> None:
    """Change the target node count of a pool."""
    p = state.client().resize_pool(pool_id, nodes, node_deallocation_option=deallocation)
    _show_pool(p, output)


@pool.command("delete")
@click.argument("pool_id")
@yes_option
@pass_state
def pool_delete(state: CliState, pool_id: str, yes: bool) -> None:
    """Delete a pool; its nodes leave and their running tasks are requeued."""
    confirm(f"pool {pool_id} and its nodes", yes)
    state.client().delete_pool(pool_id)
    err.print(f"deleted pool {pool_id}", markup=False)


def _node_row(n: pool_pb2.Node) -> list[str]:
    return [
        last(n.name),
        enum_name(Node.State, n.state),
        enum_name(Node.SchedulingState, n.scheduling_state),
        str(n.running_tasks),
        f"{n.running_task_slots}/{n.total_task_slots}",
        str(n.completed_tasks),
        n.hostname or "-",
        when(n.last_heartbeat_time),
    ]


@click.group("node", cls=Group)
def node() -> None:
    """Nodes of a pool."""


@node.command("list")
@click.argument("pool_id")
@click.option("--state", "node_states", multiple=True, type=state_choice(Node.State),
              help="Only nodes in this state; repeatable.")
@list_options
@output_option
@pass_state
def node_list(
    state: CliState, pool_id: str, node_states: tuple[str, ...], paging: Paging, output: str
) -> None:
    """List the nodes of a pool, by id."""
    nodes = state.client().list_nodes(pool_id, filter=state_filter(node_states or None, Node.State))
    render_list(
        paging.take(nodes),
        output,
        ["ID", "STATE", "SCHEDULING", "TASKS", "SLOTS USED", "COMPLETED", "HOST", "HEARTBEAT"],
        _node_row,
        f"no nodes in pool {pool_id}",
    )


@node.command("show")
@click.argument("pool_id")
@click.argument("node_id")
@output_option
@pass_state
def node_show(state: CliState, pool_id: str, node_id: str, output: str) -> None:
    """Show one node."""
    _show_node(state.client().get_node(pool_id, node_id), output)


def _show_node(n: pool_pb2.Node, output: str) -> None:
    errors = "; ".join(f"{e.code}: {e.message}" for e in n.errors) or "-"
    render_one(
        n,
        output,
        [
            ("id", last(n.name)),
            ("name", n.name),
            ("state", enum_name(Node.State, n.state)),
            ("scheduling", enum_name(Node.SchedulingState, n.scheduling_state)),
            ("running tasks", str(n.running_tasks)),
            ("slots used", f"{n.running_task_slots} of {n.total_task_slots}"),
            ("completed tasks", str(n.completed_tasks)),
            ("host", n.hostname or "-"),
            ("last heartbeat", when(n.last_heartbeat_time)),
            ("created", when(n.create_time)),
            ("state since", when(n.state_transition_time)),
            ("errors", errors),
        ],
    )


_OPTION = click.Choice(["requeue", "terminate", "taskcompletion"], case_sensitive=False)


@node.command("disable")
@click.argument("pool_id")
@click.argument("node_id")
@click.option("--option", "option", type=_OPTION, default="requeue", show_default=True,
              help="What happens to its running tasks: requeued (not a retry), terminated "
                   "(they fail), or let finish.")
@output_option
@pass_state
def node_disable(state: CliState, pool_id: str, node_id: str, option: str, output: str) -> None:
    """Stop giving a node tasks (until `shoal node enable`)."""
    _show_node(state.client().disable_node_scheduling(pool_id, node_id, option), output)


@node.command("enable")
@click.argument("pool_id")
@click.argument("node_id")
@output_option
@pass_state
def node_enable(state: CliState, pool_id: str, node_id: str, output: str) -> None:
    """Let a node take tasks again."""
    _show_node(state.client().enable_node_scheduling(pool_id, node_id), output)


@node.command("reboot")
@click.argument("pool_id")
@click.argument("node_id")
@output_option
@pass_state
def node_reboot(state: CliState, pool_id: str, node_id: str, output: str) -> None:
    """Restart a node's agent; its running tasks are requeued (not a retry)."""
    _show_node(state.client().reboot_node(pool_id, node_id), output)


@node.command("remove")
@click.argument("pool_id")
@click.argument("node_ids", nargs=-1, required=True)
@click.option("--option", "option", type=_OPTION, default="requeue", show_default=True,
              help="What happens to their running tasks.")
@output_option
@pass_state
def node_remove(
    state: CliState, pool_id: str, node_ids: tuple[str, ...], option: str, output: str
) -> None:
    """Remove these nodes from a pool and lower its target by as many."""
    p = state.client().remove_nodes(pool_id, node_ids, node_deallocation_option=option)
    _show_pool(p, output)
