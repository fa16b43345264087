"""The node's own commands: the pool's start task, and a job's preparation and release tasks
(agent.job_tasks) — Azure Batch's node-level tasks.

A command runs in a directory of its own: `wd/` is its cwd, stdout.txt and stderr.txt sit
beside it. Its resource files are placed first (like a task's, through the node's cache);
its environment is the agent's base variables, its own, the node's (identity, directories,
pool packages) and SHOAL_/AZ_BATCH_ variables naming its directories, which win. A non-zero
exit runs it again, up to its retry count, in the same directory (its files stay; the logs
start over). The wall clock limit applies to each run; a run it kills is not retried, as for
tasks. Each run is the node's Runner's (agent.runner), the one that runs tasks' attempts.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent.layout import NodeLayout, TaskPaths
from agent.runner import Launch, Runner, both, failure, timed_out
from agent.staging import RESOURCE_FILE_DOWNLOAD_FAILED, SERVER_ERROR, USER_ERROR, StagingFailure
from agent.staging.attempt import Staging
from agent.staging.resources import place_downloads
from services.common.timeutil import from_duration, to_timestamp
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2

log = structlog.get_logger()

START_TASK_FAILED = "START_TASK_FAILED"
MAX_RETRIES = 100

Stage = Callable[[Path], Awaitable[None]]
"""Places a command's files in its working directory; raises StagingFailure."""
OnSpawn = Callable[[int, float], None]
"""Called with (retry_count, start time) each time the command's process starts."""

NodeTaskInfo = task_pb2.NodeTaskInfo


@dataclass(frozen=True)
class Command:
    what: str
    """For people: "the start task", "the job preparation task"."""
    command_line: str
    environment: Mapping[str, str]
    dir: Path
    """Its directory: wd/, stdout.txt, stderr.txt."""
    variables: Mapping[str, str]
    """Set as SHOAL_{name} and AZ_BATCH_{name}."""
    max_retries: int = 0
    limit: float | None = None
    """Seconds each run may take; None: no limit."""
    fresh: bool = True
    """Empty wd/ first (the start task keeps its own across lives, as Azure Batch does)."""

    @property
    def wd(self) -> Path:
        return self.dir / "wd"

    @property
    def paths(self) -> TaskPaths:
        return TaskPaths.of(self.dir)


@dataclass
class Outcome:
    """How a command ended."""

    exit_code: int | None = None
    failure: task_pb2.FailureInfo | None = None
    retry_count: int = 0
    start: float | None = None
    """When its last run started; None when no process ran."""
    end: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None and self.exit_code == 0

    def describe(self) -> str:
        """What went wrong, for a message: "exited with code 3 after 2 retries"."""
        if self.failure is not None:
            return f"failed: {self.failure.code}: {self.failure.message}"
        retries = self.retry_count
        after = f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
        return f"exited with code {self.exit_code}{after}"

    def info(self) -> NodeTaskInfo:
        """As the node shows it: COMPLETED with its result."""
        ok = self.ok
        out = NodeTaskInfo(
            state=NodeTaskInfo.COMPLETED,
            result=task_pb2.TaskExecutionInfo.SUCCESS if ok else task_pb2.TaskExecutionInfo.FAILURE,
            retry_count=self.retry_count,
            start_time=to_timestamp(self.start),
            end_time=to_timestamp(self.end),
        )
        if self.exit_code is not None:
            out.exit_code = self.exit_code
        if self.failure is not None:
            out.failure_info.CopyFrom(self.failure)
        return out


def limit_of(spec: task_pb2.StartTask | task_pb2.JobPreparationTask | task_pb2.JobReleaseTask,
             default: float | None = None) -> float | None:
    if not spec.HasField("max_wall_clock_time"):
        return default
    seconds = from_duration(spec.max_wall_clock_time)
    return seconds if seconds > 0 else default


def retries_of(spec: task_pb2.StartTask | task_pb2.JobPreparationTask) -> int:
    return min(MAX_RETRIES, max(0, spec.max_task_retry_count))


class NodeCommands:
    """Runs the node's commands (retries included) with the node's Runner."""

    def __init__(
        self, runner: Runner, staging: Staging | None, *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runner = runner
        self.staging = staging
        self._clock = clock

    def place(self, downloads: Sequence[agent_pb2.Download]) -> Stage:
        """A Stage that places granted downloads like a task's resource files."""

        async def stage(wd: Path) -> None:
            if self.staging is None:
                raise StagingFailure(SERVER_ERROR, RESOURCE_FILE_DOWNLOAD_FAILED,
                                     "this agent cannot stage files (no staging configured)")
            await place_downloads(downloads, wd, self.staging.cache, self.staging.transfers)

        return stage

    def failed(self, failure: task_pb2.FailureInfo) -> Outcome:
        """A command that fails without running."""
        return Outcome(failure=failure, end=self._clock())

    async def run(
        self, cmd: Command, stage: Stage | None = None, on_spawn: OnSpawn | None = None
    ) -> Outcome:
        """Run a command to its end (retries included). Cancelling it kills its process."""
        process = self._runner.launch(
            cmd.command_line, cmd.paths, cmd.environment, both(cmd.variables))
        if not isinstance(process, Launch):
            return self.failed(process)
        try:
            _make_dirs(cmd)
        except OSError as e:
            return self.failed(failure(SERVER_ERROR, "AGENT_ERROR",
                                       f"cannot create {cmd.wd}: {e.strerror or e}"))
        if stage is not None:
            try:
                await stage(cmd.wd)
            except StagingFailure as f:
                log.info("staging failed", command=cmd.what, code=f.code, error=f.message)
                return self.failed(f.info())
        retries = 0
        while True:
            out = await self._run_once(cmd, process, retries, on_spawn)
            if out.failure is not None or out.exit_code == 0 or retries >= cmd.max_retries:
                return out
            retries += 1
            log.info("node command exited non-zero; running it again", command=cmd.what,
                     exit_code=out.exit_code, retry=retries, max_retries=cmd.max_retries)

    async def _run_once(
        self, cmd: Command, process: Launch, retries: int, on_spawn: OnSpawn | None
    ) -> Outcome:
        deadline = None if cmd.limit is None else time.monotonic() + cmd.limit
        ended = await self._runner.run(
            process, deadline,
            None if on_spawn is None else lambda _proc, start: on_spawn(retries, start))
        if isinstance(ended, task_pb2.FailureInfo):
            return Outcome(failure=ended, retry_count=retries, end=self._clock())
        return Outcome(
            exit_code=ended.exit_code, retry_count=retries, start=ended.start, end=ended.end,
            failure=timed_out(cmd.what, cmd.limit) if ended.timed_out else None,
        )


def _make_dirs(cmd: Command) -> None:
    cmd.dir.mkdir(parents=True, exist_ok=True)
    if cmd.fresh:
        shutil.rmtree(cmd.wd, ignore_errors=True)
    cmd.wd.mkdir(exist_ok=True)


# --- the pool's start task ------------------------------------------------------------------


def waits_for_success(spec: task_pb2.StartTask) -> bool:
    """Unset means true, as in Azure Batch."""
    return not spec.HasField("wait_for_success") or spec.wait_for_success


def running_info(retry_count: int = 0, start: float | None = None) -> NodeTaskInfo:
    return NodeTaskInfo(state=NodeTaskInfo.RUNNING, retry_count=retry_count,
                        start_time=to_timestamp(start))


def start_command(layout: NodeLayout, spec: task_pb2.StartTask) -> Command:
    d = layout.startup
    return Command(
        "the start task", spec.command_line, spec.environment, d,
        {"TASK_DIR": str(d), "TASK_WORKING_DIR": str(d / "wd")},
        max_retries=retries_of(spec), limit=limit_of(spec), fresh=False,
    )


async def run_start_task(
    commands: NodeCommands, layout: NodeLayout, run: agent_pb2.StartTaskRun,
    report: Callable[[NodeTaskInfo], None],
) -> NodeTaskInfo:
    """Run the pool's start task; `report` hears RUNNING each time its process starts and
    COMPLETED at the end, which is also returned."""
    if run.HasField("failure") and run.failure.code:
        outcome = commands.failed(run.failure)  # its files could not be granted: it never runs
    else:
        try:
            outcome = await commands.run(
                start_command(layout, run.spec),
                commands.place(run.downloads) if run.downloads else None,
                lambda retries, start: report(running_info(retries, start)),
            )
        except Exception as e:  # noqa: BLE001 - a bug fails the start task, not the agent
            log.exception("start task crashed in the agent")
            outcome = commands.failed(failure(SERVER_ERROR, "AGENT_ERROR", f"the agent failed: {e}"))
    info = outcome.info()
    if outcome.ok:
        log.info("start task succeeded", retry_count=outcome.retry_count)
    else:
        log.warning("start task failed", why=outcome.describe())
    report(info)
    return info


def start_task_failure(info: NodeTaskInfo) -> task_pb2.FailureInfo:
    """The setup failure of a node whose start task failed and whose pool waits for it."""
    outcome = Outcome(
        exit_code=info.exit_code if info.HasField("exit_code") else None,
        failure=info.failure_info if info.HasField("failure_info") else None,
        retry_count=info.retry_count,
    )
    return failure(USER_ERROR, START_TASK_FAILED, f"the start task {outcome.describe()}")
