"""`shoal task ...`."""

from __future__ import annotations

import inspect
import itertools
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import IO, TypeVar

import click
from google.protobuf import duration_pb2
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shoal.cli.common import (
    CliState,
    Flex,
    Group,
    Paging,
    confirm,
    enum_name,
    err,
    fail,
    key_values,
    last,
    list_options,
    output_option,
    pass_state,
    print_json,
    render_list,
    render_one,
    to_dict,
    when,
    yes_option,
)
from shoal.client import Client, TaskSpec, comparison
from shoal.errors import ShoalError, WaitTimeoutError
from shoal.specs import (
    OUTPUT_FILE_SYNTAX,
    PACKAGE_SYNTAX,
    RESOURCE_FILE_SYNTAX,
    OutputFile,
    PackageReference,
    ResourceFile,
)
from shoal.task_options import (
    DURATION_SYNTAX,
    EXIT_CONDITION_SYNTAX,
    DependencyLike,
    ExitConditions,
    parse_duration,
    parse_id_range,
)
from shoal.v1 import job_pb2, task_pb2

Task = task_pb2.Task
T = TypeVar("T")
Result = task_pb2.TaskExecutionInfo.Result
# Shown when a job had failures: enough to start looking, short enough to read.
FAILED_IDS_SHOWN = 5
EXIT_TIMEOUT = 124


def _exit_code(info: task_pb2.TaskExecutionInfo) -> str:
    return str(info.exit_code) if info.HasField("exit_code") else "-"


def _state(t: task_pb2.Task) -> str:
    """A completed task's state is how it ended, as people say it (and `--state` takes)."""
    if t.state == Task.COMPLETED:
        return {Result.SUCCESS: "SUCCEEDED", Result.FAILURE: "FAILED"}.get(
            t.execution_info.result, "COMPLETED")
    return enum_name(Task.State, t.state)


def _task_row(t: task_pb2.Task) -> list[str]:
    info = t.execution_info
    waiting = t.state == Task.ACTIVE
    return [
        last(t.name),
        _state(t),
        _exit_code(info),
        str(info.retry_count),
        last(info.node) if info.node else "-",
        (t.state_reason or "ready") if waiting else "-",
        t.command_line,
    ]


def _check_comparison(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            comparison(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return value


TASK_COLUMNS = ["ID", "STATE", "EXIT", "RETRIES", "NODE", Flex("REASON"), Flex("COMMAND")]
TASK_STATES = ["active", "preparing", "running", "completed", "succeeded", "failed"]


def _syntax_block(option: str, syntax: str) -> str:
    # '\b' keeps click from rewrapping the block's lines.
    first, *rest = syntax.splitlines()
    return "\n".join(["\b", f"{option} {first}", *(f"  {line}" for line in rest)])


def parse_each(values: Sequence[str], parse: Callable[[str], T], option: str) -> list[T]:
    """Each value of a repeatable option through `parse`; a usage error (exit 2) names the
    option and the bad value."""
    parsed = []
    for value in values:
        try:
            parsed.append(parse(value))
        except ValueError as e:
            fail(f"{option}: {e}", 2)
    return parsed


class Duration(click.ParamType):
    """Seconds, or a duration such as 90s, 15m, 2h, 7d, 1h30m."""

    name = "duration"

    def __init__(self, positive: bool = False) -> None:
        self.positive = positive

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value) if isinstance(value, int | float) else parse_duration(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)
        if self.positive and seconds <= 0:
            self.fail(f"{value!r} must be more than 0", param, ctx)
        return seconds


def dependencies(ids: Sequence[str], ranges: Sequence[str]) -> list[DependencyLike]:
    """--depends-on ID[,ID...] and --depends-on-range START-END as TaskSpec.depends_on."""
    deps: list[DependencyLike] = []
    for value in ids:
        items = [i.strip() for i in value.split(",")]
        if not all(items):
            fail(f"--depends-on: {value!r} has an empty task id", 2)
        deps.extend(items)
    deps.extend(parse_each(ranges, parse_id_range, "--depends-on-range"))
    return deps


def exit_conditions(values: Sequence[str]) -> ExitConditions | None:
    if not values:
        return None
    try:
        return ExitConditions.parse(values)
    except ValueError as e:
        fail(f"--exit-code: {e}", 2)


def seconds(d: duration_pb2.Duration) -> str:
    """A Duration proto for people: 90s, 2h, 1h30m."""
    total = round(d.ToTimedelta().total_seconds(), 3)
    if total < 60 or total != int(total):
        return f"{total:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(int(total), size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def _failure(f: task_pb2.FailureInfo) -> str:
    if not f.code:
        return "-"
    category = enum_name(task_pb2.FailureInfo.Category, f.category)
    return f"{f.code} ({category}): {f.message}"


@click.group("task", cls=Group)
def task() -> None:
    """Tasks: command lines run on a job's pool."""


@task.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("job_id")
@click.argument("task_id")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--command-line", "command_line", help="The command line as one string.")
@click.option("--env", multiple=True, metavar="K=V", help="Environment variable; repeatable.")
@click.option("--max-wall-clock", type=Duration(positive=True), metavar="DURATION",
              help="Kill and fail the task after this long: seconds or 90s, 15m, 2h.")
@click.option("--max-retries", type=click.IntRange(0, 100),
              help="Retries of a non-zero exit.  [default: the job's]")
@click.option("--display-name", default="", help="Free text shown to people.")
@click.option("--depends-on", "depends_on", multiple=True, metavar="ID[,ID...]",
              help="Run after these tasks of the job; repeatable.")
@click.option("--depends-on-range", "depends_on_ranges", multiple=True, metavar="START-END",
              help="Run after the tasks with integer ids START to END; repeatable.")
@click.option("--exit-code", "exit_codes", multiple=True, metavar="WHEN=ACTION[,ACTION]",
              help="What an end does to the job and the dependents; repeatable. See below.")
@click.option("--required-slots", type=click.IntRange(1), default=1, show_default=True,
              help="Slots the task takes on a node.")
@click.option("--priority", type=click.IntRange(-1000, 1000), default=0, show_default=True,
              help="Order among the job's ready tasks: higher first.")
@click.option("--retention", type=Duration(), metavar="DURATION",
              help="Keep its directory on the node this long after it ends.  [default: 7d]")
@click.option(
    "--resource-file",
    "resource_files",
    multiple=True,
    metavar="SOURCE[=PATH][:MODE]",
    help="Download before the task starts; repeatable. See below.",
)
@click.option(
    "--output-file",
    "output_files",
    multiple=True,
    metavar="PATTERN=CONTAINER[/PATH][:WHEN]",
    help="Upload when the task ends; repeatable. See below.",
)
@click.option(
    "--app-package",
    "app_packages",
    multiple=True,
    metavar="APP[:VERSION]",
    help="Install on the node first; repeatable. No version: the default version.",
)
@output_option
@pass_state
def task_add(
    state: CliState,
    job_id: str,
    task_id: str,
    command: tuple[str, ...],
    command_line: str | None,
    env: tuple[str, ...],
    max_wall_clock: float | None,
    max_retries: int | None,
    display_name: str,
    depends_on: tuple[str, ...],
    depends_on_ranges: tuple[str, ...],
    exit_codes: tuple[str, ...],
    required_slots: int,
    priority: int,
    retention: float | None,
    resource_files: tuple[str, ...],
    output_files: tuple[str, ...],
    app_packages: tuple[str, ...],
    output: str,
) -> None:
    """Add one task: `shoal task add JOB ID -- PROGRAM ARGS...`.

    The command runs without a shell; write `-- /bin/sh -c '...'` for pipes and globs.
    """
    if command and command_line is not None:
        raise click.UsageError("give the command after `--` or with --command-line, not both")
    if not command and command_line is None:
        raise click.UsageError("missing the command: `shoal task add JOB ID -- PROGRAM ARGS...`")
    line = command_line if command_line is not None else shlex.join(command)
    inputs = parse_each(resource_files, ResourceFile.parse, "--resource-file")
    outputs = parse_each(output_files, OutputFile.parse, "--output-file")
    packages = parse_each(app_packages, PackageReference.parse, "--app-package")
    deps = dependencies(depends_on, depends_on_ranges)
    exits = exit_conditions(exit_codes)
    t = state.client().add_task(
        job_id,
        task_id,
        line,
        environment=key_values(env, "--env"),
        max_wall_clock_time=max_wall_clock,
        max_task_retry_count=max_retries,
        display_name=display_name,
        resource_files=inputs,
        output_files=outputs,
        application_package_references=packages,
        depends_on=deps,
        exit_conditions=exits,
        required_slots=required_slots,
        priority=priority,
        retention_time=retention,
    )
    _show_task(t, output)


# The forms are documented once, in shoal.specs, for the flags and for JSON lines alike.
task_add.help = "\n\n".join(
    [
        inspect.cleandoc(task_add.help or ""),
        _syntax_block("--resource-file", RESOURCE_FILE_SYNTAX),
        _syntax_block("--output-file", OUTPUT_FILE_SYNTAX),
        _syntax_block("--app-package", PACKAGE_SYNTAX),
        _syntax_block("--exit-code", EXIT_CONDITION_SYNTAX),
        _syntax_block("DURATION", DURATION_SYNTAX),
    ]
)


def read_task_lines(stream: IO[str], source: str) -> list[TaskSpec]:
    """TaskSpecs from JSON lines; blank lines are skipped; ValueError names the bad line."""
    specs: list[TaskSpec] = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source} line {number}: not valid JSON ({e.msg})") from None
        try:
            specs.append(TaskSpec.from_dict(raw))
        except ValueError as e:
            raise ValueError(f"{source} line {number}: {e}") from None
    return specs


@task.command("add-many", short_help="Add tasks from a JSON-lines file.")
@click.argument("job_id")
@click.argument("source", type=click.File("r"), metavar="FILE|-")
@click.option(
    "--chunk",
    type=click.IntRange(1, 100_000),
    default=10_000,
    show_default=True,
    help="Tasks per request.",
)
@pass_state
def task_add_many(state: CliState, job_id: str, source: IO[str], chunk: int) -> None:
    """Add tasks from JSON lines, one task per line:

    {"id": "t1", "command_line": "echo 1", "environment": {"K": "V"},
    "max_wall_clock_time": "1h", "max_task_retry_count": 2, "display_name": "...",
    "resource_files": ["data:in/1.csv=in.csv"], "output_files": ["out/*=results/t1"],
    "application_package_references": ["blender:2.8"], "depends_on": ["t0", [1, 100]],
    "exit_conditions": ["3=terminate,satisfy", "default=block"], "required_slots": 2,
    "priority": 10, "retention_time": "1d"}

    Files, packages and exit conditions take the same one-line forms as `task add`'s flags,
    or objects with the protos' fields ({"container": "data", "object_key": "in/1.csv",
    "file_path": "in.csv"}). `depends_on` lists task ids and [START, END] ranges; durations
    are seconds or strings such as "90s", "2h", "7d".

    Every line is checked before anything is sent.
    """
    name = "<stdin>" if source.name == "<stdin>" else source.name
    try:
        specs = read_task_lines(source, name)
    except ValueError as e:
        fail(str(e))
    if not specs:
        fail(f"{name} has no tasks")
    done = 0

    def note(total: int) -> None:
        nonlocal done
        done = total

    try:
        added = state.client().add_tasks(job_id, specs, chunk=chunk, on_chunk=note)
    except ShoalError:
        if done:  # each chunk is all or nothing, so say what is already in
            err.print(f"{done} of {len(specs)} tasks were added before the error")
        raise
    err.print(f"added {added} tasks to job {job_id}")


@task.command("list")
@click.argument("job_id")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(TASK_STATES, case_sensitive=False),
    help="Only tasks in this state; repeatable. succeeded and failed are completed tasks "
    "with that result.",
)
@click.option("--node", metavar="NODE", help="Only tasks whose current or last attempt ran "
              "on this node (its id, or pools/POOL/nodes/NODE).")
@click.option("--exit-code", metavar="[OP]N", callback=_check_comparison,
              help="Only tasks whose last exit code is N, or compares so: '!=0', '>1', '<=2'.")
@list_options
@output_option
@pass_state
def task_list(
    state: CliState,
    job_id: str,
    states: tuple[str, ...],
    node: str | None,
    exit_code: str | None,
    paging: Paging,
    output: str,
) -> None:
    """List a job's tasks, by id. REASON says why an active task waits (`task why` for more)."""
    tasks = state.client().list_tasks(
        job_id, state=list(states) or None, node=node, exit_code=exit_code)
    render_list(paging.take(tasks), output, TASK_COLUMNS, _task_row, f"no tasks in job {job_id}")


def _dependencies(d: task_pb2.TaskDependencies) -> str:
    items = [*d.task_ids, *(f"{r.start}-{r.end}" for r in d.task_id_ranges)]
    shown = ", ".join(items[:10])
    return f"{shown} ... ({len(items)} in all)" if len(items) > 10 else shown or "-"


def _exit_options(o: task_pb2.ExitOptions) -> str:
    words = [enum_name(task_pb2.ExitOptions.JobAction, o.job_action),
             enum_name(task_pb2.ExitOptions.DependencyAction, o.dependency_action)]
    return ",".join(w.lower() for w in words if w != "-") or "-"


def _exit_conditions(e: task_pb2.ExitConditions) -> str:
    """In the one-line forms `--exit-code` takes."""
    parts = [f"{m.code}={_exit_options(m.exit_options)}" for m in e.exit_codes]
    parts += [f"{m.start}-{m.end}={_exit_options(m.exit_options)}" for m in e.exit_code_ranges]
    for name, key in (("pre-processing", "pre_processing_error"),
                      ("upload", "file_upload_error"), ("default", "default")):
        if e.HasField(key):
            parts.append(f"{name}={_exit_options(getattr(e, key))}")
    return "  ".join(parts) or "-"


def _show_task(t: task_pb2.Task, output: str) -> None:
    info = t.execution_info
    c = t.constraints
    env = ", ".join(f"{k}={v}" for k, v in sorted(t.environment.items())) or "-"
    rows = [
        ("id", last(t.name)),
        ("name", t.name),
        ("display name", t.display_name or "-"),
        ("command line", t.command_line),
        ("environment", env),
        ("max wall clock", seconds(c.max_wall_clock_time)
         if c.HasField("max_wall_clock_time") else "none"),
        ("max retries", str(c.max_task_retry_count)
         if c.HasField("max_task_retry_count") else "the job's"),
        ("retention", seconds(c.retention_time) if c.HasField("retention_time") else "7d"),
        ("depends on", _dependencies(t.depends_on)),
        ("exit conditions", _exit_conditions(t.exit_conditions)),
        ("required slots", str(t.required_slots or 1)),
        ("priority", str(t.priority)),
        ("state", enum_name(Task.State, t.state)),
    ]
    if t.state_reason:
        rows.append(("state reason", t.state_reason))
    render_one(
        t,
        output,
        [
            *rows,
            ("result", enum_name(Result, info.result)),
            ("exit code", _exit_code(info)),
            ("failure", _failure(info.failure_info)),
            ("node", info.node or "-"),
            ("attempt", info.attempt_id or "-"),
            ("retries", str(info.retry_count)),
            ("requeues", str(info.requeue_count)),
            ("earlier attempts", str(len(info.previous_attempts))),
            ("started", when(info.start_time)),
            ("ended", when(info.end_time)),
            ("created", when(t.create_time)),
            ("updated", when(t.update_time)),
            ("etag", t.etag or "-"),
        ],
    )


@task.command("show")
@click.argument("job_id")
@click.argument("task_id")
@output_option
@pass_state
def task_show(state: CliState, job_id: str, task_id: str, output: str) -> None:
    """Show one task with its execution info."""
    _show_task(state.client().get_task(job_id, task_id), output)


class RetryCount(click.ParamType):
    """0 to 100 retries, or `job`: the job's count."""

    name = "retries"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int | str:
        if str(value).lower() == "job":
            return "job"
        count: int = click.IntRange(0, 100).convert(value, param, ctx)  # type: ignore[arg-type]
        return count


@task.command("update")
@click.argument("job_id")
@click.argument("task_id")
@click.option("--max-wall-clock", type=Duration(), metavar="DURATION",
              help="Kill and fail the task when its attempt has run this long (the one running "
                   "now too, counted from its start): seconds or 90s, 15m, 2h; 0: no limit.")
@click.option("--max-task-retries", "--max-retries", "max_retries", type=RetryCount(),
              metavar="N|job",
              help="Retries of a non-zero exit, from its next failure on; `job`: the job's.")
@click.option("--retention", type=Duration(), metavar="DURATION",
              help="Keep the directories of its attempts that end from now on this long; "
                   "0: the default, 7d.")
@click.option("--if-match", metavar="ETAG",
              help="Update only if the task's etag (task show) is still this: nothing changes "
                   "if it changed since (it ran, for one).")
@output_option
@pass_state
def task_update(
    state: CliState,
    job_id: str,
    task_id: str,
    max_wall_clock: float | None,
    max_retries: int | str | None,
    retention: float | None,
    if_match: str | None,
    output: str,
) -> None:
    """Change a task's constraints; the rest stays. A completed task cannot be updated."""
    if (max_wall_clock, max_retries, retention) == (None, None, None):
        raise click.UsageError(
            "nothing to update: give --max-wall-clock, --max-task-retries or --retention")
    _show_task(state.client().update_task(
        job_id, task_id, max_wall_clock_time=max_wall_clock, max_task_retry_count=max_retries,
        retention_time=retention, if_match=if_match), output)


@task.command("terminate")
@click.argument("job_id")
@click.argument("task_id")
@output_option
@pass_state
def task_terminate(state: CliState, job_id: str, task_id: str, output: str) -> None:
    """Stop a task: a running one is killed, a waiting or blocked one never runs. It completes
    as failed (TASK_TERMINATED)."""
    _show_task(state.client().terminate_task(job_id, task_id), output)


@task.command("reactivate")
@click.argument("job_id")
@click.argument("task_id")
@output_option
@pass_state
def task_reactivate(state: CliState, job_id: str, task_id: str, output: str) -> None:
    """Run a failed task again, its retry count reset."""
    _show_task(state.client().reactivate_task(job_id, task_id), output)


@task.command("unblock")
@click.argument("job_id")
@click.argument("task_id")
@output_option
@pass_state
def task_unblock(state: CliState, job_id: str, task_id: str, output: str) -> None:
    """Run a task blocked by a failed dependency anyway."""
    _show_task(state.client().unblock_task(job_id, task_id), output)


@task.command("delete")
@click.argument("job_id")
@click.argument("task_id")
@yes_option
@pass_state
def task_delete(state: CliState, job_id: str, task_id: str, yes: bool) -> None:
    """Delete a task (killing it if it runs) and its files on the nodes."""
    confirm(f"task {task_id} of job {job_id}", yes)
    state.client().delete_task(job_id, task_id)
    err.print(f"deleted task {task_id} of job {job_id}", markup=False)


@task.command("why")
@click.argument("job_id")
@click.argument("task_id")
@output_option
@pass_state
def task_why(state: CliState, job_id: str, task_id: str, output: str) -> None:
    """Say why a task is not running yet (or what it is doing): waiting on dependencies, no
    free slot, no nodes, the job disabled, ..."""
    e = state.client().explain_task(job_id, task_id)
    if output == "json":
        print_json(to_dict(e))
        return
    # Plain echo: a summary or detail holding '[...]' must not be read as rich markup.
    click.echo(e.summary or enum_name(Task.State, e.state))
    for line in e.details:
        click.echo(f"  {line}")


def _wait_for_tasks(
    client: Client, job_id: str, task_ids: Sequence[str], timeout: float | None
) -> None:
    progress = wait_progress()
    with progress:
        bar = progress.add_task(job_id, total=len(task_ids), detail="")
        try:
            done = client.wait_for_tasks(
                job_id, task_ids, timeout=timeout,
                on_progress=lambda n, total: progress.update(bar, completed=n, total=total))
        except WaitTimeoutError as e:
            fail(f"timed out: {e.message}", EXIT_TIMEOUT)
    failed = [last(t.name) for t in done if t.execution_info.result != Result.SUCCESS]
    if failed:
        fail(f"{len(failed)} of {len(done)} tasks failed: {', '.join(failed)}")
    err.print(f"all {len(done)} tasks waited for succeeded")


def failed_task_ids(client: Client, job_id: str, limit: int = FAILED_IDS_SHOWN) -> list[str]:
    failed = (
        last(t.name)
        for t in client.list_tasks(job_id, state="COMPLETED")
        if t.execution_info.result == Result.FAILURE
    )
    return list(itertools.islice(failed, limit))


def wait_progress(title: str = "job {task.description}") -> Progress:
    """The bar `task wait` and the demo show, fed by the job's changes as they happen."""
    return Progress(
        TextColumn(f"[bold]{title}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err,
    )


@task.command("wait")
@click.argument("job_id")
@click.argument("task_ids", nargs=-1)
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds.")
@pass_state
def task_wait(state: CliState, job_id: str, task_ids: tuple[str, ...],
              timeout: float | None) -> None:
    """Wait until no task of the job is active or running (or, given TASK_IDS, until those
    tasks have completed), following the job's changes as they happen.

    Exit 0 when all succeeded, 1 when any failed, 124 on timeout.
    """
    client = state.client()
    if task_ids:
        _wait_for_tasks(client, job_id, task_ids, timeout)
        return
    progress = wait_progress()
    timed_out: WaitTimeoutError | None = None
    with progress:
        bar = progress.add_task(job_id, total=None, detail="")

        def update(c: job_pb2.TaskCounts) -> None:
            progress.update(
                bar,
                total=c.active + c.running + c.completed,
                completed=c.completed,
                detail=f"{c.succeeded} succeeded · {c.failed} failed · {c.running} running",
            )

        try:
            final = client.wait_job(job_id, timeout=timeout, on_progress=update)
        except WaitTimeoutError as e:
            timed_out = e
    if timed_out is not None:
        fail(f"timed out: {timed_out.message}", EXIT_TIMEOUT)
    c = final.task_counts
    if c.failed:
        ids = failed_task_ids(client, job_id)
        more = " ..." if c.failed > len(ids) else ""
        fail(f"{c.failed} of {c.completed} tasks failed: {', '.join(ids)}{more}")
    err.print(f"all {c.completed} tasks of job {job_id} succeeded")


@task.command("logs")
@click.argument("job_id")
@click.argument("task_id")
@click.option("--stderr", "use_stderr", is_flag=True, help="stderr.txt instead of stdout.txt.")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing what the task writes until its attempt ends (waits for a task "
                   "that has not started).")
@click.option("--tail", type=click.IntRange(1, 100_000), default=None, metavar="N",
              help="Start at the last N lines.")
@pass_state
def task_logs(state: CliState, job_id: str, task_id: str, use_stderr: bool, follow: bool,
              tail: int | None) -> None:
    """Print a task's stdout (or stderr): from the node running it, or the copy stored when
    its attempt ended."""
    path = "stderr.txt" if use_stderr else "stdout.txt"
    client = state.client()
    if follow:
        pieces = client.follow_task_file(job_id, task_id, path, tail=tail)
    else:
        pieces = iter([client.read_task_file(job_id, task_id, path, tail=tail)])
    sys.stdout.flush()
    for data in pieces:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
