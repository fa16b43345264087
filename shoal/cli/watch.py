"""`shoal job watch` and `shoal node watch`: changes printed as they happen (the watch API),
one line each, or one JSON object per line with `-o json`."""

from __future__ import annotations

import json

import click

from shoal.cli.common import CliState, enum_name, last, out, output_option, pass_state, to_dict
from shoal.v1 import job_pb2, pool_pb2, task_pb2

JobEvent = job_pb2.JobEvent
NodeEvent = pool_pb2.NodeEvent
TASK_STATES = [n for n in task_pb2.Task.State.keys() if not n.endswith("UNSPECIFIED")]


def _counts(j: job_pb2.Job) -> str:
    c = j.task_counts
    return (f"{c.completed}/{c.active + c.running + c.completed} completed · {c.running} running"
            f" · {c.succeeded} succeeded · {c.failed} failed")


def job_line(e: job_pb2.JobEvent) -> str:
    kind = enum_name(JobEvent.Type, e.type)
    if e.HasField("job"):
        j = e.job
        if e.type == JobEvent.DELETED:
            return f"job  {last(j.name)}  DELETED"
        return f"job  {last(j.name)}  {enum_name(job_pb2.Job.State, j.state)}  {_counts(j)}"
    t = e.task
    if e.type == JobEvent.DELETED:
        return f"task {last(t.name)}  DELETED"
    line = f"task {last(t.name)}  {enum_name(task_pb2.Task.State, t.state)}"
    info = t.execution_info
    if t.state == task_pb2.Task.COMPLETED:
        result = enum_name(task_pb2.TaskExecutionInfo.Result, info.result)
        code = f" exit {info.exit_code}" if info.HasField("exit_code") else ""
        why = f" {info.failure_info.code}" if info.failure_info.code else ""
        line += f"  {result}{code}{why}"
    elif t.state == task_pb2.Task.PREPARING and info.node:
        line += f"  on {last(info.node)}"
    elif t.state == task_pb2.Task.ACTIVE and kind == "MODIFIED" and info.retry_count:
        line += f"  retry {info.retry_count}"
    return line


@click.command("watch")
@click.argument("job_id")
@click.option("--state", "states", multiple=True, type=click.Choice(TASK_STATES, case_sensitive=False),
              help="Only task changes into this state (repeatable); deletions always show.")
@click.option("--job-only", is_flag=True, help="Only the job's own changes (state and counts).")
@click.option("--summary", is_flag=True,
              help="Only the job's latest state, at most twice a second: a busy job's progress "
                   "without each change.")
@click.option("--from-revision", type=click.IntRange(min=0), default=0,
              help="Changes after this revision (a List/Get answer's), not from now.")
@output_option
@pass_state
def job_watch(state: CliState, job_id: str, states: tuple[str, ...], job_only: bool,
              summary: bool, from_revision: int, output: str) -> None:
    """Print a job's and its tasks' changes as they happen, until the job completes (or is
    deleted) or Ctrl-C. Resumes by itself if the connection drops; nothing is missed (with
    --summary, states in between are skipped, the latest always shows)."""
    if summary and states:
        raise click.UsageError("--summary shows no task changes: leave out --state")
    with state.client().watch_job(job_id, from_revision or None, task_state=states or None,
                                  job_only=job_only, summary=summary) as events:
        for e in events:
            if output == "json":
                click.echo(json.dumps(to_dict(e)))
            else:
                out.print(job_line(e), markup=False)
            if e.HasField("job") and (e.type == JobEvent.DELETED
                                      or e.job.state == job_pb2.Job.COMPLETED):
                return


def node_line(e: pool_pb2.NodeEvent) -> str:
    n = e.node
    kind = enum_name(NodeEvent.Type, e.type)
    if e.type == NodeEvent.DELETED:
        return f"{last(n.name)}  {kind}"
    line = f"{last(n.name)}  {kind}  {enum_name(pool_pb2.Node.State, n.state)}"
    if n.scheduling_state == pool_pb2.Node.DISABLED:
        line += "  scheduling disabled"
    if n.errors:
        line += f"  {n.errors[-1].code}: {n.errors[-1].message}"
    return line


@click.command("watch")
@click.argument("pool_id")
@click.option("--from-revision", type=click.IntRange(min=0), default=0,
              help="Changes after this revision (a ListNodes answer's), not from now.")
@output_option
@pass_state
def node_watch(state: CliState, pool_id: str, from_revision: int, output: str) -> None:
    """Print a pool's nodes as they come, change state and go, until Ctrl-C. Starts with
    every node as it is (CURRENT)."""
    with state.client().watch_nodes(pool_id, from_revision or None) as events:
        for e in events:
            if output == "json":
                click.echo(json.dumps(to_dict(e)))
            else:
                out.print(node_line(e), markup=False)
