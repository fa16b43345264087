"""Runs one attempt as its own process group and turns its end into a TaskResult.

The command line is split like a shell splits words and run without a shell (Azure Batch's
rule); the process gets a session of its own so that a kill reaches everything it started.
Each process is reaped by awaiting its exit (no polling), and spawning uses no preexec_fn so
CPython can use vfork.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from agent.layout import AttemptPaths, NodeLayout, UnsafePath
from agent.spawn import Child
from services.common.cmdline import split_command
from services.common.timeutil import from_duration, to_timestamp
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2

KILLED_EXIT_CODE = 128 + signal.SIGKILL
BASE_ENV_VARS = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

USER_ERROR = task_pb2.FailureInfo.USER_ERROR
SERVER_ERROR = task_pb2.FailureInfo.SERVER_ERROR

log = structlog.get_logger()

OnStarted = Callable[[str, float], None]


def failed(
    attempt_id: str,
    category: task_pb2.FailureInfo.Category,
    code: str,
    message: str,
    *,
    end: float,
    start: float | None = None,
    exit_code: int | None = None,
) -> agent_pb2.TaskResult:
    r = agent_pb2.TaskResult(
        attempt_id=attempt_id,
        start_time=to_timestamp(start),
        end_time=to_timestamp(end),
        failure_info=task_pb2.FailureInfo(category=category, code=code, message=message),
    )
    if exit_code is not None:
        r.exit_code = exit_code
    return r


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The few variables of the agent's own environment a task inherits; nothing else leaks
    (the agent's environment may hold its join token)."""
    env = {k: environ[k] for k in BASE_ENV_VARS if k in environ}
    env.setdefault("PATH", DEFAULT_PATH)
    return env


@dataclass
class _Attempt:
    proc: Child | None = None
    cancelled: bool = False
    timed_out: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Executor:
    def __init__(
        self,
        layout: NodeLayout,
        *,
        pool_id: str = "",
        node_id: str = "",
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.layout = layout
        self._node_env: dict[str, str] = {}
        self.set_identity(pool_id, node_id)
        self._base_env = base_environment(os.environ if environ is None else environ)
        self._clock = clock
        self._attempts: dict[str, _Attempt] = {}
        self._stopping = False

    def set_identity(self, pool_id: str, node_id: str) -> None:
        """The node's pool and id (known once the agent has registered). The node's part of
        every task's environment is built here, once, not per task."""
        self.pool_id, self.node_id = pool_id, node_id
        layout = self.layout
        self._node_env = {
            f"{prefix}{name}": value
            for name, value in (
                ("NODE_ROOT_DIR", str(layout.root)), ("NODE_SHARED_DIR", str(layout.shared)),
                ("NODE_STARTUP_DIR", str(layout.startup)), ("POOL_ID", pool_id),
                ("NODE_ID", node_id),
            )
            for prefix in ("SHOAL_", "AZ_BATCH_")
        }

    @property
    def running(self) -> list[str]:
        return list(self._attempts)

    def environment(self, a: agent_pb2.Assignment, paths: AttemptPaths) -> dict[str, str]:
        """Base variables, then the task's own, then Shoal's (which win)."""
        env = dict(self._base_env)
        task_dir, wd = str(paths.dir), str(paths.wd)
        env["HOME"] = task_dir
        if a.environment:
            for k, v in a.environment.items():
                if not k or "=" in k or "\x00" in k or "\x00" in v:
                    raise ValueError(
                        f"environment variable {k[:80]!r}: no '=' or NUL in names, no NUL in values"
                    )
                env[k] = v
        env.update(self._node_env)
        for name, value in (("TASK_DIR", task_dir), ("TASK_WORKING_DIR", wd),
                            ("JOB_ID", a.job_id), ("TASK_ID", a.task_id)):
            env["SHOAL_" + name] = value
            env["AZ_BATCH_" + name] = value
        env["SHOAL_TASK_ATTEMPT"] = str(a.attempt_number)
        env["SHOAL_TASK_ATTEMPT_ID"] = a.attempt_id
        return env

    async def run(
        self, a: agent_pb2.Assignment, on_started: OnStarted | None = None
    ) -> agent_pb2.TaskResult | None:
        """Run an attempt to its end. Returns None only when the agent is stopping (kill_all):
        such an attempt reports nothing, so the scheduler requeues it."""
        aid = a.attempt_id
        if aid in self._attempts:
            raise ValueError(f"attempt {aid!r} is already running")
        state = _Attempt()
        self._attempts[aid] = state
        try:
            return await self._run(a, state, on_started)
        finally:
            del self._attempts[aid]
            state.done.set()

    async def _run(
        self, a: agent_pb2.Assignment, state: _Attempt, on_started: OnStarted | None
    ) -> agent_pb2.TaskResult | None:
        aid = a.attempt_id
        try:
            paths = self.layout.attempt(a.job_id, a.task_id, aid)
        except UnsafePath as e:
            return failed(aid, SERVER_ERROR, "INVALID_ASSIGNMENT", str(e), end=self._clock())
        try:
            argv = split_command(a.command_line)
        except ValueError as e:
            return failed(
                aid, USER_ERROR, "INVALID_COMMAND_LINE",
                f"the command line cannot be split into words: {e}", end=self._clock(),
            )
        if not argv:
            return failed(
                aid, USER_ERROR, "INVALID_COMMAND_LINE", "the command line is empty", end=self._clock()
            )
        try:
            env = self.environment(a, paths)
        except ValueError as e:
            return failed(aid, USER_ERROR, "INVALID_ENVIRONMENT", str(e), end=self._clock())
        _fresh_dir(paths)
        if state.cancelled or self._stopping:
            return None if self._stopping else _cancelled(aid, end=self._clock())

        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        out = os.open(paths.stdout, flags, 0o644)
        err = os.open(paths.stderr, flags, 0o644)
        try:
            proc = Child.spawn(argv, cwd=str(paths.wd), env=env, stdout=out, stderr=err)
        except FileNotFoundError:
            return failed(
                aid, USER_ERROR, "COMMAND_NOT_FOUND",
                f"program {argv[0]!r} not found (PATH={env['PATH']}, cwd {paths.wd})",
                end=self._clock(),
            )
        except PermissionError:
            return failed(
                aid, USER_ERROR, "COMMAND_NOT_EXECUTABLE",
                f"program {argv[0]!r} is not executable (permission denied)", end=self._clock(),
            )
        except OSError as e:
            return failed(
                aid, USER_ERROR, "COMMAND_NOT_EXECUTABLE",
                f"program {argv[0]!r} cannot be executed: {e.strerror or e}", end=self._clock(),
            )
        finally:
            os.close(out)
            os.close(err)
        start = self._clock()
        state.proc = proc
        if state.cancelled or self._stopping:
            _kill_group(proc)
        if on_started is not None:
            on_started(aid, start)

        limit = from_duration(a.max_wall_clock_time) if a.HasField("max_wall_clock_time") else None
        try:
            if limit is not None and limit > 0:
                try:
                    await asyncio.wait_for(proc.wait(), limit)
                except TimeoutError:
                    state.timed_out = True
                    _kill_group(proc)
                    await proc.wait()
            else:
                await proc.wait()
        except asyncio.CancelledError:
            # Whoever cancels us must not leave the process behind.
            _kill_group(proc)
            raise
        end = self._clock()
        if self._stopping:
            return None

        rc = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        code = rc if rc >= 0 else 128 - rc
        if state.timed_out:
            return failed(
                aid, USER_ERROR, "MAX_WALL_CLOCK_TIME_EXCEEDED",
                f"the task ran longer than its max_wall_clock_time of {limit:g}s and was killed",
                start=start, end=end, exit_code=KILLED_EXIT_CODE,
            )
        if state.cancelled:
            return _cancelled(aid, start=start, end=end, exit_code=code)
        return agent_pb2.TaskResult(
            attempt_id=aid, exit_code=code, start_time=to_timestamp(start), end_time=to_timestamp(end)
        )

    def cancel(self, attempt_id: str) -> bool:
        """Kill an attempt's process group; its run() still returns a result. False when the
        attempt is not running here."""
        state = self._attempts.get(attempt_id)
        if state is None:
            return False
        state.cancelled = True
        if state.proc is not None:
            _kill_group(state.proc)
        return True

    async def kill_all(self, grace: float = 5.0) -> None:
        """Stop: kill every attempt's process group and wait (bounded) until each is reaped.
        Their run() calls return None: no result is written for them."""
        self._stopping = True
        states = list(self._attempts.values())
        for s in states:
            if s.proc is not None:
                _kill_group(s.proc)
        waits = [asyncio.ensure_future(s.done.wait()) for s in states]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=grace)
            for w in pending:
                w.cancel()


def _cancelled(
    aid: str, *, end: float, start: float | None = None, exit_code: int | None = None
) -> agent_pb2.TaskResult:
    return failed(
        aid, USER_ERROR, "TASK_CANCELLED", "the scheduler cancelled the attempt",
        start=start, end=end, exit_code=exit_code,
    )


def _fresh_dir(paths: AttemptPaths) -> None:
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


def _kill_group(proc: Child) -> None:
    # Only while the leader is unreaped: until then its pid (= the group id) cannot be reused.
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_leftovers(layout: NodeLayout) -> list[int]:
    """Kill what tasks of a previous life of the agent left running on this node; returns
    the pids killed.

    Every task process carries SHOAL_NODE_ROOT_DIR in its environment and passes it to its
    children, so one scan of /proc at start finds them all — no per-task pid file on the hot
    path, and grandchildren that left their process group are found too.
    """
    marker = f"SHOAL_NODE_ROOT_DIR={layout.root}".encode()
    me = os.getpid()
    killed = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        entries = env.split(b"\0")
        if marker not in entries:
            continue
        pid = int(entry.name)
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, PermissionError) as e:
            log.warning("cannot kill leftover process", pid=pid, error=str(e))
    return killed
