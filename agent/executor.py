"""Runs one attempt as its own process group and turns its end into a TaskResult.

The process is run by the node's Runner (agent.runner), as the node's own commands are: the
command line is split like a shell splits words and run without a shell (Azure Batch's rule),
in a session of its own so that a kill reaches everything it started, reaped by awaiting its
exit (no polling), spawned with no preexec_fn so CPython can use vfork.

An assignment that carries `files` is staged (agent.staging): inputs before the process
(the attempt is then PREPARING), outputs and non-empty stdout.txt/stderr.txt after it. `files`
set but empty asks for the logs only — the scheduler sets it when storage is there to keep
logs beyond the node. An assignment without `files` takes exactly the path it always did: no
extra await, no extra message.

An assignment that carries `job_preparation_task` first waits until its job is prepared on
this node (`jobs`, agent.job_tasks); the wait is part of the attempt, so cancel() stops it,
and the attempt's wall clock starts after it (the preparation task has a limit of its own).

The wall clock is a timer of the attempt's own, not a timeout of one wait: it covers staging
and the process alike, and `update()` moves it while the attempt runs (the scheduler sends
new limits when the task is updated).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypeVar

import structlog

from agent.layout import NodeLayout, TaskPaths, UnsafePath
from agent.runner import Launch, Runner, both, failure, timed_out
from agent.spawn import Child, kill_group
from agent.staging import (
    OUTPUT_FILE_UPLOAD_FAILED,
    RESOURCE_FILE_DOWNLOAD_FAILED,
    StagingFailure,
)
from agent.staging.attempt import Staging, any_log, needs_downloads, with_failure
from services.common.node_processes import kill_attempts
from services.common.timeutil import from_duration, to_timestamp
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2

USER_ERROR = task_pb2.FailureInfo.USER_ERROR
SERVER_ERROR = task_pb2.FailureInfo.SERVER_ERROR

log = structlog.get_logger()

OnStarted = Callable[[str, float], None]
T = TypeVar("T")

JOB_PREPARATION_TASK_FAILED = "JOB_PREPARATION_TASK_FAILED"


class JobPreparation(Protocol):
    """Makes sure an assignment's job is prepared on this node (agent.job_tasks.JobTasks)."""

    def seen(self, a: agent_pb2.Assignment) -> None:
        """Note which incarnation of its job an assignment belongs to."""

    def ready(self, a: agent_pb2.Assignment) -> dict[str, str] | task_pb2.FailureInfo | None:
        """Without waiting: the environment the job's tasks get once it is prepared, the
        failure when its preparation failed, or None when it must be waited for."""

    async def prepare(self, a: agent_pb2.Assignment) -> dict[str, str] | task_pb2.FailureInfo:
        """Wait until the job is prepared (running its preparation task if nobody has)."""


def failed(
    attempt_id: str,
    info: task_pb2.FailureInfo,
    *,
    end: float,
    start: float | None = None,
    exit_code: int | None = None,
) -> agent_pb2.TaskResult:
    r = agent_pb2.TaskResult(
        attempt_id=attempt_id,
        start_time=to_timestamp(start),
        end_time=to_timestamp(end),
        failure_info=info,
    )
    if exit_code is not None:
        r.exit_code = exit_code
    return r


@dataclass
class _Attempt:
    proc: Child | None = None
    cancelled: bool = False
    timed_out: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    staging: asyncio.Future[Any] | None = None
    """The staging step in progress (downloads or uploads): cancel() stops it."""
    clock_start: float | None = None
    """When its wall clock started (time.monotonic()); None before, and once its process
    has ended (the clock no longer runs)."""
    timer: asyncio.TimerHandle | None = None
    """Ends the attempt when its wall clock runs out."""
    assignment: agent_pb2.Assignment | None = None
    """What the attempt runs, with its limits as they are now (update() changes them)."""
    dropped: bool = False
    """Killed by kill_all() or fence(): it ends with no result."""


class _Stopped(Enum):
    CANCELLED = "cancelled"
    TIMED_OUT = "timed out"


class Executor:
    def __init__(
        self,
        layout: NodeLayout,
        *,
        pool_id: str = "",
        node_id: str = "",
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        staging: Staging | None = None,
        jobs: JobPreparation | None = None,
    ) -> None:
        self.layout = layout
        self.runner = Runner(layout, pool_id=pool_id, node_id=node_id, environ=environ,
                             clock=clock)
        """Runs the processes; the node's own commands share it (agent.node_commands)."""
        self.staging = staging
        self.jobs = jobs
        """Runs job preparation tasks; None: assignments that need one fail."""
        self.upload_logs = False
        """Set from the scheduler's Welcome: upload every attempt's non-empty logs."""
        self._clock = clock
        self._attempts: dict[str, _Attempt] = {}
        # Attempts handed to a task whose run() has not begun yet, and those of them already
        # cancelled: an assignment and its cancel can arrive in one message.
        self._expected: dict[str, agent_pb2.Assignment] = {}
        self._cancelled_early: set[str] = set()
        self._dropped_early: set[str] = set()
        self._stopping = False

    @property
    def running(self) -> list[str]:
        return list(self._attempts)

    async def run(
        self, a: agent_pb2.Assignment, on_started: OnStarted | None = None
    ) -> agent_pb2.TaskResult | None:
        """Run an attempt to its end. Returns None only when the agent is stopping (kill_all):
        such an attempt reports nothing, so the scheduler requeues it."""
        aid = a.attempt_id
        if aid in self._attempts:
            raise ValueError(f"attempt {aid!r} is already running")
        self._expected.pop(aid, None)
        if aid in self._dropped_early or self._stopping:
            self._dropped_early.discard(aid)
            self._cancelled_early.discard(aid)
            return None
        if aid in self._cancelled_early:
            self._cancelled_early.discard(aid)
            return _cancelled(aid, end=self._clock())
        state = _Attempt(assignment=a)
        self._attempts[aid] = state
        if self.jobs is not None and a.job_uid:
            self.jobs.seen(a)
        try:
            return await self._run(a, state, on_started)
        finally:
            self._stop_clock(state)
            del self._attempts[aid]
            state.done.set()

    async def _run(
        self, a: agent_pb2.Assignment, state: _Attempt, on_started: OnStarted | None
    ) -> agent_pb2.TaskResult | None:
        aid = a.attempt_id
        try:
            paths = self.layout.attempt(a.job_id, a.task_id, aid)
        except UnsafePath as e:
            return failed(aid, failure(SERVER_ERROR, "INVALID_ASSIGNMENT", str(e)),
                          end=self._clock())
        process = self.runner.launch(a.command_line, paths, a.environment, _variables(a, paths))
        if not isinstance(process, Launch):
            return failed(aid, process, end=self._clock())
        _fresh_dir(paths)
        if state.cancelled or state.dropped:
            return None if state.dropped else _cancelled(aid, end=self._clock())
        if a.HasField("job_preparation_task"):
            # Before the wall clock starts: the preparation task has a limit of its own.
            prepared = await self._job_prepared(a, state)
            if not isinstance(prepared, dict):
                return prepared
            process.env.update(prepared)
        state.clock_start = time.monotonic()
        self._arm(state, a)
        if a.HasField("files"):
            if self.staging is None:
                return failed(aid, failure(
                    SERVER_ERROR, RESOURCE_FILE_DOWNLOAD_FAILED,
                    "this agent cannot stage files (no staging configured)"), end=self._clock())
            if needs_downloads(a):
                prepared = await self._prepare(a, state, paths)
                if not isinstance(prepared, dict):
                    return prepared
                process.env.update(prepared)
        result = await self._execute(a, state, process, on_started)
        if result is None or state.cancelled or state.dropped:
            return None if state.dropped else result
        if self.staging is None or not (a.files.output_files or self.upload_logs):
            return result
        # Outputs, and logs when the scheduler asks for them; a task with nothing to upload
        # (a trivial one that printed nothing) costs two stat calls, no await, no message.
        if a.files.output_files or any_log(paths.dir):
            return await self._finish(a, state, paths, result)
        return result

    async def _execute(
        self, a: agent_pb2.Assignment, state: _Attempt, process: Launch,
        on_started: OnStarted | None,
    ) -> agent_pb2.TaskResult | None:
        aid = a.attempt_id

        def started(proc: Child, start: float) -> None:
            state.proc = proc
            if state.cancelled or state.timed_out or state.dropped:
                kill_group(proc)
            if on_started is not None:
                on_started(aid, start)

        # What staging took counts: the limit is the attempt's, as in Azure Batch. The
        # attempt's timer kills the process when it runs out.
        ended = await self.runner.run(process, None, started)
        self._stop_clock(state)
        if isinstance(ended, task_pb2.FailureInfo):
            return failed(aid, ended, end=self._clock())
        if state.dropped:
            return None
        start, end = ended.start, ended.end
        if state.timed_out:
            return _timed_out(aid, _limit(a), start=start, end=end, exit_code=ended.exit_code)
        if state.cancelled:
            return _cancelled(aid, start=start, end=end, exit_code=ended.exit_code)
        return agent_pb2.TaskResult(
            attempt_id=aid, exit_code=ended.exit_code, start_time=to_timestamp(start),
            end_time=to_timestamp(end),
        )

    async def _job_prepared(
        self, a: agent_pb2.Assignment, state: _Attempt
    ) -> dict[str, str] | agent_pb2.TaskResult | None:
        """The job's preparation environment once the job is prepared here, or the attempt's
        result when its preparation failed or the wait was cancelled (None: stopping). The
        attempt has no start time of its own then: its process never ran."""
        aid = a.attempt_id
        if self.jobs is None:
            return failed(aid, failure(SERVER_ERROR, JOB_PREPARATION_TASK_FAILED,
                                       "this agent cannot run job preparation tasks"),
                          end=self._clock())
        out = self.jobs.ready(a)
        if out is None:
            try:
                waited = await _step(state, self.jobs.prepare(a))
            except Exception as e:  # noqa: BLE001 - a bug must fail the attempt, not the agent
                log.exception("job preparation crashed")
                return failed(aid, failure(
                    SERVER_ERROR, JOB_PREPARATION_TASK_FAILED,
                    f"job {a.job_id}: the agent failed to prepare the job: {e}"), end=self._clock())
            if state.dropped:
                return None
            if state.cancelled or waited is _Stopped.CANCELLED:
                return _cancelled(aid, end=self._clock())
            assert not isinstance(waited, _Stopped)
            out = waited
        if isinstance(out, task_pb2.FailureInfo):
            return failed(aid, out, end=self._clock())
        return out

    async def _prepare(
        self, a: agent_pb2.Assignment, state: _Attempt, paths: TaskPaths
    ) -> dict[str, str] | agent_pb2.TaskResult | None:
        """The inputs staged: the package environment, or the attempt's result when staging
        failed, was cancelled or ran out of wall clock time (None: the agent is stopping)."""
        assert self.staging is not None
        aid = a.attempt_id
        try:
            out = await _step(state, self.staging.prepare(a, paths.wd), on_clock=True)
        except StagingFailure as f:
            r = failed(aid, f.info(), end=self._clock())
            log.info("staging failed", code=f.code, error=f.message)
            return r
        except Exception as e:  # noqa: BLE001 - a bug must fail the attempt, not the agent
            log.exception("staging crashed")
            return failed(aid, failure(
                SERVER_ERROR, RESOURCE_FILE_DOWNLOAD_FAILED,
                f"the agent failed to stage the attempt's files: {e}"), end=self._clock())
        if state.dropped:
            return None
        if out is _Stopped.TIMED_OUT:
            return _timed_out(aid, _limit(a), end=self._clock())
        if state.cancelled or out is _Stopped.CANCELLED:
            return _cancelled(aid, end=self._clock())
        assert isinstance(out, dict)
        return out

    async def _finish(
        self, a: agent_pb2.Assignment, state: _Attempt, paths: TaskPaths,
        result: agent_pb2.TaskResult,
    ) -> agent_pb2.TaskResult | None:
        assert self.staging is not None
        try:
            out = await _step(state, self.staging.finish(a, paths.dir, paths.wd, result))
        except Exception as e:  # noqa: BLE001 - a bug must fail the attempt, not the agent
            log.exception("uploading outputs crashed")
            return with_failure(result, StagingFailure(
                SERVER_ERROR, OUTPUT_FILE_UPLOAD_FAILED, f"the agent failed to upload: {e}"
            ))
        if state.dropped:
            return None
        if state.cancelled or out is _Stopped.CANCELLED:
            return _cancelled(
                a.attempt_id, start=_seconds(result.start_time), end=self._clock(),
                exit_code=result.exit_code if result.HasField("exit_code") else None,
            )
        assert isinstance(out, agent_pb2.TaskResult)
        return out

    def expect(self, a: agent_pb2.Assignment) -> None:
        """An attempt's run() is about to be started (in a task of its own): from now on a
        cancel finds it, and its run() returns at once as cancelled; an update finds it too."""
        self._expected[a.attempt_id] = a

    def update(self, c: agent_pb2.AttemptConstraints) -> bool:
        """New limits of an attempt (its task was updated), written into its assignment (the
        object its run() was given or will be, which its end reads too): a new wall clock
        counts from when the attempt's clock started, so one already passed ends it now; a
        new retention applies when it ends. False when the attempt is not running (or
        expected) here."""
        state = self._attempts.get(c.attempt_id)
        a = state.assignment if state is not None else self._expected.get(c.attempt_id)
        if a is None:
            return False
        for name in ("max_wall_clock_time", "retention_time"):
            if c.HasField(name):
                getattr(a, name).CopyFrom(getattr(c, name))
            else:
                a.ClearField(name)
        if state is not None and state.clock_start is not None:
            self._arm(state, a)
        return True

    def _arm(self, state: _Attempt, a: agent_pb2.Assignment) -> None:
        """Set the attempt's timer from its limit, counted from when its clock started."""
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        limit = _limit(a)
        if limit is None or state.clock_start is None:
            return
        left = max(0.0, state.clock_start + limit - time.monotonic())
        state.timer = asyncio.get_running_loop().call_later(left, self._expire, state)

    def _expire(self, state: _Attempt) -> None:
        """The wall clock ran out: stop whatever the attempt is doing (staging or its
        process); one not started yet is killed as it starts."""
        state.timer = None
        if state.clock_start is None:
            return  # its process ended meanwhile
        state.timed_out = True
        if state.proc is not None:
            kill_group(state.proc)
        if state.staging is not None:
            state.staging.cancel()

    @staticmethod
    def _stop_clock(state: _Attempt) -> None:
        state.clock_start = None
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None

    def cancel(self, attempt_id: str) -> bool:
        """Kill an attempt's process group (or stop its staging); its run() still returns a
        result. False when the attempt is not running (or expected) here."""
        state = self._attempts.get(attempt_id)
        if state is None:
            if attempt_id not in self._expected:
                return False
            self._cancelled_early.add(attempt_id)
            return True
        state.cancelled = True
        if state.proc is not None:
            kill_group(state.proc)
        if state.staging is not None:
            state.staging.cancel()
        return True

    async def kill_all(self, grace: float = 5.0) -> None:
        """Stop: kill every attempt's process group and wait (bounded) until each is reaped.
        Their run() calls return None: no result is written for them; nor for any attempt
        started from now on."""
        self._stopping = True
        await self.fence(grace)

    async def fence(self, grace: float = 5.0) -> list[str]:
        """Kill every attempt's process group (and stop its staging), as kill_all does, and
        wait (bounded) until each is reaped; the executor takes work again afterwards. Their
        run() calls return None, as do those of attempts expected and not yet begun. Returns
        the attempts dropped."""
        states = list(self._attempts.values())
        for s in states:
            s.dropped = True
            if s.proc is not None:
                kill_group(s.proc)
            if s.staging is not None:
                s.staging.cancel()
        dropped = list(self._attempts) + sorted(self._expected)
        self._dropped_early.update(self._expected)
        if states:
            # What they started in sessions of their own would run on.
            await asyncio.to_thread(kill_attempts, self.layout.root, list(self._attempts))
        waits = [asyncio.ensure_future(s.done.wait()) for s in states]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=grace)
            for w in pending:
                w.cancel()
        return dropped


async def _step(
    state: _Attempt, coro: Coroutine[Any, Any, T], *, on_clock: bool = False
) -> T | _Stopped:
    """Run a staging step where cancel() and kill_all() can stop it — and, `on_clock`, the
    attempt's wall clock: its value, or why it stopped. Its own exceptions (StagingFailure)
    propagate."""
    task = asyncio.ensure_future(coro)
    state.staging = task
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        state.staging = None
    if on_clock and state.timed_out:
        if not task.cancelled():
            task.exception()  # whatever the step made of its cancel, the clock ran out
        return _Stopped.TIMED_OUT
    if task.cancelled():
        return _Stopped.CANCELLED
    return task.result()


def _limit(a: agent_pb2.Assignment) -> float | None:
    """The attempt's wall clock limit in seconds; None: no limit."""
    limit = from_duration(a.max_wall_clock_time) if a.HasField("max_wall_clock_time") else None
    return limit if limit is not None and limit > 0 else None


def _seconds(ts: Any) -> float | None:
    return ts.ToNanoseconds() / 1e9 if ts.ByteSize() else None


def _variables(a: agent_pb2.Assignment, paths: TaskPaths) -> dict[str, str]:
    """Shoal's variables of an attempt's process."""
    out = both({"TASK_DIR": str(paths.dir), "TASK_WORKING_DIR": str(paths.wd),
                "JOB_ID": a.job_id, "TASK_ID": a.task_id})
    out["SHOAL_TASK_ATTEMPT"] = str(a.attempt_number)
    out["SHOAL_TASK_ATTEMPT_ID"] = a.attempt_id
    return out


def _timed_out(
    aid: str, limit: float | None, *, end: float, start: float | None = None,
    exit_code: int | None = None,
) -> agent_pb2.TaskResult:
    return failed(aid, timed_out("the task", limit), start=start, end=end, exit_code=exit_code)


def _cancelled(
    aid: str, *, end: float, start: float | None = None, exit_code: int | None = None
) -> agent_pb2.TaskResult:
    return failed(
        aid, failure(USER_ERROR, "TASK_CANCELLED", "the scheduler cancelled the attempt"),
        start=start, end=end, exit_code=exit_code,
    )


def _fresh_dir(paths: TaskPaths) -> None:
    # Three mkdir calls in the common case (a task's first attempt on this node): this runs
    # once per task, so no exists() probes and no parents=True recursion through exceptions.
    task_dir = paths.dir.parent
    try:
        os.mkdir(task_dir)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(task_dir, exist_ok=True)
    try:
        os.mkdir(paths.dir)
    except FileExistsError:
        # An attempt id is never reused, but a directory left by a previous life of the
        # agent must not leak its files into this run.
        shutil.rmtree(paths.dir, ignore_errors=True)
        os.mkdir(paths.dir)
    os.mkdir(paths.wd)
