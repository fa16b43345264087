"""`shoal job ...`."""

from __future__ import annotations

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
from shoal.cli.tasks import Duration, parse_each, seconds
from shoal.client import state_filter
from shoal.specs import NodeCommand, ResourceFile
from shoal.v1 import job_pb2

Job = job_pb2.Job


def _job_row(j: job_pb2.Job) -> list[str]:
    c = j.task_counts
    return [
        last(j.name),
        last(j.pool),
        enum_name(Job.State, j.state),
        str(j.priority),
        str(c.active),
        str(c.running),
        str(c.succeeded),
        str(c.failed),
        when(j.create_time),
    ]


def show_job(j: job_pb2.Job, output: str) -> None:
    c = j.task_counts
    total = c.active + c.running + c.completed
    limits = j.constraints
    render_one(
        j,
        output,
        [
            ("id", last(j.name)),
            ("name", j.name),
            ("display name", j.display_name or "-"),
            ("pool", last(j.pool)),
            ("state", enum_name(Job.State, j.state)),
            ("priority", str(j.priority)),
            (
                "when all tasks complete",
                enum_name(job_pb2.OnAllTasksComplete, j.on_all_tasks_complete),
            ),
            ("on task failure", enum_name(job_pb2.OnTaskFailure, j.on_task_failure)),
            ("uses dependencies", "yes" if j.uses_task_dependencies else "no"),
            ("max parallel tasks", str(j.max_parallel_tasks or "no limit")),
            ("max wall clock", seconds(limits.max_wall_clock_time)
             if limits.HasField("max_wall_clock_time") else "none"),
            ("max task retries", str(limits.max_task_retry_count)),
            (
                "tasks",
                f"{total} total: {c.active} active, {c.running} running, {c.completed} completed "
                f"({c.succeeded} succeeded, {c.failed} failed)",
            ),
            ("terminate reason", j.terminate_reason or "-"),
            ("metadata", ", ".join(f"{k}={v}" for k, v in sorted(j.metadata.items())) or "-"),
            ("created", when(j.create_time)),
            ("state since", when(j.state_transition_time)),
            ("ended", when(j.end_time)),
            ("updated", when(j.update_time)),
            ("etag", j.etag or "-"),
        ],
    )


@click.group("job", cls=Group)
def job() -> None:
    """Jobs: sets of tasks that run on one pool."""


@job.command("create")
@click.argument("job_id")
@click.option("--pool", "pool_id", required=True, help="Pool that runs the job's tasks.")
@click.option("--priority", type=click.IntRange(-1000, 1000), default=0, show_default=True)
@click.option(
    "--terminate-on-complete",
    is_flag=True,
    help="Complete the job once all its tasks have completed.",
)
@click.option("--display-name", default="", help="Free text shown to people.")
@click.option("--metadata", multiple=True, metavar="K=V", help="Metadata entry; repeatable.")
@click.option("--prep", metavar="COMMAND",
              help="Job preparation task: run on each node before the job's first task there.")
@click.option("--prep-file", "prep_files", multiple=True, metavar="RESOURCE",
              help="A resource file of the preparation task; repeatable.")
@click.option("--release", metavar="COMMAND",
              help="Job release task: run on each node that ran the job, when it ends.")
@click.option("--release-file", "release_files", multiple=True, metavar="RESOURCE",
              help="A resource file of the release task; repeatable.")
@click.option("--uses-dependencies", is_flag=True,
              help="Let the job's tasks depend on each other (task add --depends-on).")
@click.option("--max-parallel", "--max-parallel-tasks", "max_parallel", type=click.IntRange(0),
              default=0, help="At most this many of its tasks run at once.  [default: no limit]")
@click.option("--max-wall-clock", type=Duration(positive=True), metavar="DURATION",
              help="Terminate the job when it has existed this long: seconds or 90s, 15m, 2h.")
@click.option("--max-task-retries", type=click.IntRange(0, 100), default=0, show_default=True,
              help="Retries of a non-zero exit, for tasks that set none.")
@click.option(
    "--on-task-failure",
    type=click.Choice(["no-action", "perform-exit-options-job-action"], case_sensitive=False),
    help="Whether a failed task's exit conditions act on the job.  [default: no-action]",
)
@output_option
@pass_state
def job_create(
    state: CliState,
    job_id: str,
    pool_id: str,
    priority: int,
    terminate_on_complete: bool,
    display_name: str,
    metadata: tuple[str, ...],
    prep: str | None,
    prep_files: tuple[str, ...],
    release: str | None,
    release_files: tuple[str, ...],
    uses_dependencies: bool,
    max_parallel: int,
    max_wall_clock: float | None,
    max_task_retries: int,
    on_task_failure: str | None,
    output: str,
) -> None:
    """Create a job on a pool."""
    meta = key_values(metadata, "--metadata")
    if prep_files and not prep:
        raise click.UsageError("--prep-file needs --prep")
    if release_files and not release:
        raise click.UsageError("--release-file needs --release")
    prep_task = NodeCommand(
        prep, tuple(parse_each(prep_files, ResourceFile.parse, "--prep-file"))) if prep else None
    release_task = NodeCommand(
        release, tuple(parse_each(release_files, ResourceFile.parse, "--release-file"))
    ) if release else None
    j = state.client().create_job(
        job_id,
        pool_id=pool_id,
        priority=priority,
        on_all_tasks_complete="terminate_job" if terminate_on_complete else "no_action",
        display_name=display_name,
        metadata=meta,
        job_preparation_task=prep_task,
        job_release_task=release_task,
        uses_task_dependencies=uses_dependencies,
        max_parallel_tasks=max_parallel,
        max_wall_clock_time=max_wall_clock,
        max_task_retry_count=max_task_retries,
        on_task_failure=on_task_failure,
    )
    show_job(j, output)


COMPLETION = {"no-action": "no_action", "noaction": "no_action",
              "terminate-job": "terminate_job", "terminatejob": "terminate_job",
              "terminate": "terminate_job"}
"""--on-all-tasks-complete: our names, az batch's (noaction, terminatejob), and `terminate`."""


@job.command("update")
@click.argument("job_id")
@click.option("--priority", type=click.IntRange(-1000, 1000), help="The job's new priority.")
@click.option("--on-all-tasks-complete", "completion", metavar="[no-action|terminate-job]",
              type=click.Choice(list(COMPLETION), case_sensitive=False),
              help="terminate-job: complete the job once all its tasks have (at once if they "
                   "already have). It cannot be set back to no-action.")
@click.option("--max-parallel", "--max-parallel-tasks", "max_parallel", type=click.IntRange(0),
              help="At most this many of its tasks run at once; 0: no limit.")
@click.option("--max-wall-clock", type=Duration(), metavar="DURATION",
              help="Terminate the job when it has existed this long (from its creation): "
                   "seconds or 90s, 15m, 2h; 0: no limit.")
@click.option("--max-task-retries", type=click.IntRange(0, 100),
              help="Retries of a non-zero exit, for tasks that set none (running ones too).")
@click.option("--metadata", multiple=True, metavar="K=V",
              help="Replace the job's metadata with these entries; repeatable.")
@click.option("--clear-metadata", is_flag=True, help="Remove all the job's metadata.")
@click.option("--if-match", metavar="ETAG",
              help="Update only if the job's etag (job show) is still this: nothing changes "
                   "if someone changed it since.")
@output_option
@pass_state
def job_update(
    state: CliState,
    job_id: str,
    priority: int | None,
    completion: str | None,
    max_parallel: int | None,
    max_wall_clock: float | None,
    max_task_retries: int | None,
    metadata: tuple[str, ...],
    clear_metadata: bool,
    if_match: str | None,
    output: str,
) -> None:
    """Change some of a job's settings; the others stay as they are."""
    if metadata and clear_metadata:
        raise click.UsageError("--metadata and --clear-metadata exclude each other")
    meta = {} if clear_metadata else key_values(metadata, "--metadata") if metadata else None
    if (priority, completion, max_parallel, max_wall_clock, max_task_retries, meta) == (
            None, None, None, None, None, None):
        raise click.UsageError(
            "nothing to update: give --priority, --on-all-tasks-complete, --max-parallel, "
            "--max-wall-clock, --max-task-retries or --metadata")
    j = state.client().update_job(
        job_id,
        priority=priority,
        on_all_tasks_complete=COMPLETION[completion.lower()] if completion else None,
        max_parallel_tasks=max_parallel,
        max_wall_clock_time=max_wall_clock,
        max_task_retry_count=max_task_retries,
        metadata=meta,
        if_match=if_match,
    )
    show_job(j, output)


@job.command("list")
@click.option("--state", "job_states", multiple=True, type=state_choice(Job.State),
              help="Only jobs in this state; repeatable.")
@list_options
@output_option
@pass_state
def job_list(state: CliState, job_states: tuple[str, ...], paging: Paging, output: str) -> None:
    """List jobs with their task counts, by id."""
    jobs = state.client().list_jobs(filter=state_filter(job_states or None, Job.State))
    render_list(
        paging.take(jobs),
        output,
        ["ID", "POOL", "STATE", "PRIORITY", "ACTIVE", "RUNNING", "SUCCEEDED", "FAILED", "CREATED"],
        _job_row,
        "no jobs",
    )


@job.command("show")
@click.argument("job_id")
@output_option
@pass_state
def job_show(state: CliState, job_id: str, output: str) -> None:
    """Show one job with its task counts."""
    show_job(state.client().get_job(job_id), output)


@job.command("terminate")
@click.argument("job_id")
@click.option("--reason", default="", help="Why; kept as the job's terminate reason.")
@output_option
@pass_state
def job_terminate(state: CliState, job_id: str, reason: str, output: str) -> None:
    """Terminate a job: active tasks fail without running, running tasks are stopped."""
    show_job(state.client().terminate_job(job_id, reason), output)


@job.command("disable")
@click.argument("job_id")
@click.option(
    "--option",
    "disable_option",
    type=click.Choice(["requeue", "terminate", "wait"], case_sensitive=False),
    default="requeue",
    show_default=True,
    help="What happens to its running tasks: requeued, terminated, or let finish.",
)
@output_option
@pass_state
def job_disable(state: CliState, job_id: str, disable_option: str, output: str) -> None:
    """Start none of the job's tasks until it is enabled."""
    show_job(state.client().disable_job(job_id, disable_option), output)


@job.command("enable")
@click.argument("job_id")
@output_option
@pass_state
def job_enable(state: CliState, job_id: str, output: str) -> None:
    """Schedule a disabled job's tasks again."""
    show_job(state.client().enable_job(job_id), output)


@job.command("delete")
@click.argument("job_id")
@yes_option
@pass_state
def job_delete(state: CliState, job_id: str, yes: bool) -> None:
    """Delete a job and all its tasks (running ones are killed) and its stored logs."""
    confirm(f"job {job_id} and all its tasks", yes)
    state.client().delete_job(job_id)
    err.print(f"deleted job {job_id}", markup=False)
