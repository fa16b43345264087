"""Spawning a process and reaping it, as cheaply as Python allows (agent.runner runs every
process on the node through here).

`subprocess.Popen` with no preexec_fn lets CPython use vfork; the exit is then read from a
pidfd registered with the event loop, so there is no watcher thread, no subprocess transport
and no polling. This path is the agent's hot loop: at thousands of tasks a second, asyncio's
subprocess machinery cost more than the fork itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class Child:
    """A running process in a session of its own (its pid is its process group id)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.returncode: int | None = None
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        self._loop = loop
        try:
            self._fd: int | None = os.pidfd_open(self.pid)
        except OSError:  # a kernel without pidfds (older than 5.3): one thread per child
            self._fd = None
            loop.run_in_executor(None, self._wait_blocking)
        else:
            loop.add_reader(self._fd, self._reap)

    @classmethod
    def spawn(
        cls, argv: Sequence[str], *, cwd: str, env: Mapping[str, str], stdout: int, stderr: int
    ) -> Child:
        """Start `argv` without a shell. Raises FileNotFoundError / PermissionError / OSError
        when it cannot be executed."""
        popen = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=stdout,
            stderr=stderr, start_new_session=True, close_fds=True,
        )
        return cls(popen)

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere; the status is lost
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return  # readable before the kernel has the status: wait for the next wake-up
        assert self._fd is not None
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = None
        self._finish(status)

    def _wait_blocking(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        self._loop.call_soon_threadsafe(self._finish, status)

    def _finish(self, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        self.returncode = code
        self._popen.returncode = code  # so Popen never tries to reap it again
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> int:
        """The exit code; negative -N when a signal N ended it."""
        return await asyncio.shield(self._exited)


def open_logs(stdout: Path, stderr: Path) -> tuple[int, int]:
    """stdout.txt and stderr.txt opened (truncated) for a process; the caller closes both."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    out = os.open(stdout, flags, 0o644)
    try:
        return out, os.open(stderr, flags, 0o644)
    except BaseException:
        os.close(out)
        raise


def exit_code_of(proc: Child) -> int:
    """Like a shell: 128 + N for a process a signal N ended."""
    rc = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return rc if rc >= 0 else 128 - rc


async def wait_exit(proc: Child, deadline: float | None) -> bool:
    """Wait for the process to exit; at `deadline` (time.monotonic()) kill its group and
    return True (timed out). Cancelling the wait kills the group too."""
    try:
        if deadline is not None:
            try:
                await asyncio.wait_for(proc.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                kill_group(proc)
                await proc.wait()
                return True
        else:
            await proc.wait()
    except asyncio.CancelledError:
        # Whoever cancels us must not leave the process behind.
        kill_group(proc)
        raise
    return False


def kill_group(proc: Child) -> None:
    # Only while the leader is unreaped: until then its pid (= the group id) cannot be reused.
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
