"""The node's one way to run a process: a task's attempt, the pool's start task and a job's
preparation and release tasks all run through here, so they split their command lines, build
their environments, write their logs, keep their wall clocks and end the same way.

The rules are pure: `launch` turns a command line and its variables into a `Launch` (or the
failure of a command that cannot run), `timed_out` and `not_started` say how a run failed.
`Runner` holds the node's part of every environment and does the one piece of I/O, `run`:
it spawns the process (agent.spawn: vfork, reaped through a pidfd, no polling) with
stdout.txt and stderr.txt beside its working directory, waits for its exit, and kills its
process group at the deadline or when the wait is cancelled. What a run means — an attempt's
result, a node command's retries — is the caller's.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.layout import NodeLayout, TaskPaths
from agent.spawn import Child, exit_code_of, open_logs, wait_exit
from services.common.cmdline import split_command
from services.common.node_processes import Tracker, TrackingError
from shoal.v1 import task_pb2

KILLED_EXIT_CODE = 128 + signal.SIGKILL
BASE_ENV_VARS = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

USER_ERROR = task_pb2.FailureInfo.USER_ERROR
SERVER_ERROR = task_pb2.FailureInfo.SERVER_ERROR
INVALID_COMMAND_LINE = "INVALID_COMMAND_LINE"
INVALID_ENVIRONMENT = "INVALID_ENVIRONMENT"
MAX_WALL_CLOCK_TIME_EXCEEDED = "MAX_WALL_CLOCK_TIME_EXCEEDED"
PROCESS_TRACKING_FAILED = "PROCESS_TRACKING_FAILED"

Started = Callable[[Child, float], None]
"""Called with the process and its start time as soon as it runs."""


def failure(
    category: task_pb2.FailureInfo.Category, code: str, message: str
) -> task_pb2.FailureInfo:
    return task_pb2.FailureInfo(category=category, code=code, message=message)


# --- the rules (pure) -----------------------------------------------------------------------


@dataclass(slots=True)
class Launch:
    """A process ready to start: its command line split, its environment built."""

    argv: list[str]
    env: dict[str, str]
    """Built by `launch`; a caller may add what it learns before the run (package paths)."""
    paths: TaskPaths
    """Its directory (HOME; stdout.txt and stderr.txt) and working directory (its cwd)."""


@dataclass(frozen=True, slots=True)
class Exit:
    """How a process that ran ended."""

    exit_code: int
    """Like a shell's: 128 + N for a process a signal N ended; KILLED_EXIT_CODE when timed out."""
    start: float
    end: float
    timed_out: bool
    """Killed at its deadline."""


def both(variables: Mapping[str, str]) -> dict[str, str]:
    """Shoal's variables under both their names: SHOAL_{name} and AZ_BATCH_{name}."""
    out = {}
    for name, value in variables.items():
        out["SHOAL_" + name] = value
        out["AZ_BATCH_" + name] = value
    return out


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The few variables of the agent's own environment a process inherits; nothing else leaks
    (the agent's environment may hold its join token)."""
    env = {k: environ[k] for k in BASE_ENV_VARS if k in environ}
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def add_environment(env: dict[str, str], extra: Mapping[str, str]) -> None:
    """Add a command's own variables to `env`; ValueError for a name or value a process cannot
    have."""
    for k, v in extra.items():
        if not k or "=" in k or "\x00" in k or "\x00" in v:
            raise ValueError(
                f"environment variable {k[:80]!r}: no '=' or NUL in names, no NUL in values"
            )
        env[k] = v


def launch(
    command_line: str, paths: TaskPaths, base: Mapping[str, str], own: Mapping[str, str],
    node: Mapping[str, str], variables: Mapping[str, str],
) -> Launch | task_pb2.FailureInfo:
    """The process a command line makes, or why it cannot run. Its environment: `base`, HOME
    (its directory), its `own` variables, the `node`'s, then Shoal's `variables` (which win)."""
    try:
        argv = split_command(command_line)
    except ValueError as e:
        return failure(USER_ERROR, INVALID_COMMAND_LINE,
                       f"the command line cannot be split into words: {e}")
    if not argv:
        return failure(USER_ERROR, INVALID_COMMAND_LINE, "the command line is empty")
    env = dict(base)
    env["HOME"] = str(paths.dir)
    if own:
        try:
            add_environment(env, own)
        except ValueError as e:
            return failure(USER_ERROR, INVALID_ENVIRONMENT, str(e))
    env.update(node)
    env.update(variables)
    return Launch(argv, env, paths)


def timed_out(what: str, limit: float | None) -> task_pb2.FailureInfo:
    """`what` ("the task", "the start task") ran out of its wall clock time."""
    return failure(
        USER_ERROR, MAX_WALL_CLOCK_TIME_EXCEEDED,
        f"{what} ran longer than its max_wall_clock_time of {limit or 0:g}s and was killed",
    )


def not_started(launch: Launch, e: OSError) -> task_pb2.FailureInfo:
    """The failure of a program that could not be started."""
    program = launch.argv[0]
    if isinstance(e, TrackingError):
        # The node's fault, not the command's: the scheduler's rules treat it as such.
        return failure(SERVER_ERROR, PROCESS_TRACKING_FAILED,
                       f"program {program!r} was not started: {e.strerror}")
    if isinstance(e, FileNotFoundError):
        return failure(
            USER_ERROR, "COMMAND_NOT_FOUND",
            f"program {program!r} not found (PATH={launch.env.get('PATH')}, cwd {launch.paths.wd})",
        )
    if isinstance(e, PermissionError):
        return failure(USER_ERROR, "COMMAND_NOT_EXECUTABLE",
                       f"program {program!r} is not executable (permission denied)")
    return failure(USER_ERROR, "COMMAND_NOT_EXECUTABLE",
                   f"program {program!r} cannot be executed: {e.strerror or e}")


# --- running ---------------------------------------------------------------------------------


class Runner:
    """Runs the node's processes; holds what every process's environment shares: the agent's
    base variables and the node's (identity, directories, pool application packages)."""

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
        self._base_env = base_environment(os.environ if environ is None else environ)
        self._node_env: dict[str, str] = {}
        self._node_packages: dict[str, str] = {}
        self._clock = clock
        self.tracker: Tracker | None = None
        """Keeps every process findable outside the agent (services.common.node_processes);
        set by the agent before it takes work. None: processes are not tracked (tests)."""
        self.set_identity(pool_id, node_id)

    def set_identity(self, pool_id: str, node_id: str) -> None:
        """The node's pool and id (known once the agent has registered). The node's part of
        every process's environment is built here, once, not per process."""
        layout = self.layout
        self._node_env = both({
            "NODE_ROOT_DIR": str(layout.root), "NODE_SHARED_DIR": str(layout.shared),
            "NODE_STARTUP_DIR": str(layout.startup), "POOL_ID": pool_id, "NODE_ID": node_id,
        })
        self._node_env.update(self._node_packages)

    def set_node_packages(self, env: Mapping[str, str]) -> None:
        """The environment of the pool's application packages, for every process on the node."""
        for k in self._node_packages:
            self._node_env.pop(k, None)
        self._node_packages = dict(env)
        self._node_env.update(self._node_packages)

    def launch(
        self, command_line: str, paths: TaskPaths, own: Mapping[str, str],
        variables: Mapping[str, str],
    ) -> Launch | task_pb2.FailureInfo:
        """`launch` with this node's base and node variables."""
        return launch(command_line, paths, self._base_env, own, self._node_env, variables)

    async def run(
        self, process: Launch, deadline: float | None, started: Started | None = None
    ) -> Exit | task_pb2.FailureInfo:
        """Run a process to its exit; the failure when it could not be started. At `deadline`
        (time.monotonic()) its process group is killed; cancelling the wait kills it too."""
        paths = process.paths
        out, err = open_logs(paths.stdout, paths.stderr)

        def spawn() -> Child:
            return Child.spawn(process.argv, cwd=str(paths.wd), env=process.env, stdout=out,
                               stderr=err)

        tracker = self.tracker
        try:
            proc = spawn() if tracker is None else tracker.spawn(spawn)
        except OSError as e:
            return not_started(process, e)
        finally:
            os.close(out)
            os.close(err)
        start = self._clock()
        try:
            if started is not None:
                started(proc, start)
            killed = await wait_exit(proc, deadline)
        finally:
            if tracker is not None and proc.returncode is not None:
                tracker.reaped(proc.pid)
        end = self._clock()
        return Exit(KILLED_EXIT_CODE if killed else exit_code_of(proc), start, end, killed)
