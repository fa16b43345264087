"""The `local` provider: each node is an agent process on the pool-manager's own host.

Agents run in their own session (process group), so a signal to the pool-manager does not
reach them and they can outlive a crashed pool-manager; the next one adopts them by pid and
start time. Our own children are watched with `await proc.wait()`; adopted processes are not
our children, so they are polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import structlog

from services.common.ids import ID_RE
from services.pool_manager.providers.base import AgentKey, Exit, NodeSpec, ProcessRef
from shoal.cluster_config import ClusterConfig

log = structlog.get_logger()

JOIN_TOKEN_ENV = "SHOAL_JOIN_TOKEN"

DEFAULT_AGENT_COMMAND = (sys.executable, "-m", "agent")


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in ticks) of a process, or None if /proc has no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def is_alive(ref: ProcessRef) -> bool:
    """Whether the process `ref` names still runs (and is not a reused pid)."""
    try:
        os.kill(ref.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = proc_stat(ref.pid)
    if stat is None:
        return not Path("/proc/self/stat").exists()  # no /proc here: trust kill(0)
    state, start = stat
    return state not in ("Z", "X") and (ref.start_time is None or start == ref.start_time)


def _open_log(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


class LocalProvider:
    def __init__(
        self,
        config: ClusterConfig,
        pool_manager_address: str,
        agent_command: Sequence[str] = DEFAULT_AGENT_COMMAND,
        stop_timeout: float = 10.0,
        poll_interval: float = 0.05,
    ) -> None:
        """`agent_command` is the agent's command line without the arguments this provider
        adds (--pool-manager, --node-id, --node-root, --log-level; the join token goes in the
        environment as SHOAL_JOIN_TOKEN)."""
        self._state_dir = Path(config.state_dir)
        self._log_level = config.log_level
        self._address = pool_manager_address
        self._command = list(agent_command)
        self._stop_timeout = stop_timeout
        self._poll_interval = poll_interval
        self._children: dict[AgentKey, asyncio.subprocess.Process] = {}
        self._waiters: dict[AgentKey, asyncio.Task[None]] = {}
        self._adopted: dict[AgentKey, ProcessRef] = {}
        self._stopping: set[AgentKey] = set()
        self._exits: list[Exit] = []
        self._detached: list[asyncio.subprocess.Process] = []
        self._listener: Callable[[], None] = lambda: None

    def node_root(self, key: AgentKey) -> Path:
        if not all(ID_RE.fullmatch(part) for part in key):
            raise ValueError(f"not a safe node key: {key!r}")
        return self._state_dir.joinpath("nodes", *key)

    def log_path(self, key: AgentKey) -> Path:
        return self._state_dir / "logs" / f"agent-{'-'.join(key)}.log"

    def watch(self, listener: Callable[[], None]) -> None:
        self._listener = listener

    async def start(self, spec: NodeSpec) -> ProcessRef:
        key = spec.key
        if key in self._children:
            pid = self._children[key].pid
            return ProcessRef(pid, (proc_stat(pid) or ("", None))[1])
        root = self.node_root(key)
        root.mkdir(parents=True, exist_ok=True)
        argv = [
            *self._command,
            "--pool-manager", self._address,
            "--node-id", spec.node,
            "--node-root", str(root),
            "--log-level", self._log_level,
        ]
        with _open_log(self.log_path(key)) as out:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                # In the environment, not argv: other users on the host can read argv (ps).
                env={**os.environ, JOIN_TOKEN_ENV: spec.join_token},
            )
        self._children[key] = proc
        self._waiters[key] = asyncio.create_task(self._wait(key, proc))
        stat = proc_stat(proc.pid)
        log.info("agent started", node=spec.node, pid=proc.pid)
        return ProcessRef(proc.pid, stat[1] if stat else None)

    async def _wait(self, key: AgentKey, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._children.get(key) is proc:
            del self._children[key]
            self._waiters.pop(key, None)
            if key not in self._stopping:
                self._exits.append(Exit(key, code))
                self._listener()

    def adopt(self, spec: NodeSpec, ref: ProcessRef) -> bool:
        if self.running(spec.key):
            return True
        if ref.start_time is None or not is_alive(ref):
            return False
        self._adopted[spec.key] = ref
        log.info("agent adopted", node=spec.node, pid=ref.pid)
        return True

    def running(self, key: AgentKey) -> bool:
        return key in self._children or key in self._adopted

    def poll(self) -> list[Exit]:
        for key, ref in list(self._adopted.items()):
            if key not in self._stopping and not is_alive(ref):
                del self._adopted[key]
                self._exits.append(Exit(key, None))
        exits, self._exits = self._exits, []
        return exits

    async def stop(self, key: AgentKey) -> None:
        proc, ref = self._children.get(key), self._adopted.get(key)
        if proc is None and ref is None:
            return
        self._stopping.add(key)
        if proc is not None:
            await self._stop_child(proc)
            self._children.pop(key, None)
            task = self._waiters.pop(key, None)
            if task is not None:
                task.cancel()
        elif ref is not None:
            await self._stop_adopted(ref)
            self._adopted.pop(key, None)
        # Left in place if cancelled above, so a late exit is not mistaken for a crash.
        self._stopping.discard(key)

    async def _stop_child(self, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self._stop_timeout)
            return
        except TimeoutError:
            log.warning("agent ignored SIGTERM; killing it", pid=proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

    async def _stop_adopted(self, ref: ProcessRef) -> None:
        if not is_alive(ref):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(ref.pid, signal.SIGTERM)
        if await self._gone(ref, self._stop_timeout):
            return
        log.warning("agent ignored SIGTERM; killing it", pid=ref.pid)
        if is_alive(ref):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(ref.pid, signal.SIGKILL)
        await self._gone(ref, self._stop_timeout)

    async def _gone(self, ref: ProcessRef, within: float) -> bool:
        deadline = time.monotonic() + within
        while is_alive(ref):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self._poll_interval)
        return True

    async def remove(self, spec: NodeSpec) -> None:
        root = self.node_root(spec.key)
        await asyncio.to_thread(shutil.rmtree, root, True)
        # The pool's and account's directories go too once empty.
        for parent in (root.parent, root.parent.parent):
            with contextlib.suppress(OSError):
                parent.rmdir()

    async def close(self, stop_nodes: bool = True) -> None:
        if stop_nodes:
            keys = [*self._children, *self._adopted]
            results = await asyncio.gather(*(self.stop(k) for k in keys), return_exceptions=True)
            for key, result in zip(keys, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("could not stop agent", node=key[2], error=repr(result))
        for task in self._waiters.values():
            task.cancel()
        # Left running for a successor: keep the process objects referenced, because asyncio
        # kills a child whose transport is garbage-collected.
        self._detached.extend(self._children.values())
        self._waiters.clear()
        self._children.clear()
        self._adopted.clear()
