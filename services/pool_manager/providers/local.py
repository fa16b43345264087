"""The `local` provider: each node is an agent process on the pool-manager's own host.

Agents run in their own session (process group), so a signal to the pool-manager does not
reach them and they can outlive a crashed pool-manager; the next one adopts them by pid and
start time. Our own children are watched with `await proc.wait()`; adopted processes are not
our children, so they are watched through a pidfd (polled where there is none).

An agent that ends without being stopped may leave its node's processes running (they run in
sessions of their own). They are killed, and gone, before the end is reported (`poll`), so the
pool-manager never has a dead agent's tasks requeued while they still run; and a node root is
deleted only once nothing of it runs (services.common.node_processes).
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
from typing import IO, Any

import structlog

from services.common import procfs
from services.common.ids import ID_RE
from services.common.node_processes import Leftovers, RootBusy, RootLock, kill_leftovers
from services.pool_manager.providers.base import AgentKey, Exit, NodeSpec, ProcessRef
from shoal.cluster_config import ClusterConfig

log = structlog.get_logger()

JOIN_TOKEN_ENV = "SHOAL_JOIN_TOKEN"

DEFAULT_AGENT_COMMAND = (sys.executable, "-m", "agent")
ROOT_LOCK_WAIT = 10.0
"""How long a kill of leftovers waits for the node root's lock (a dead agent holds none)."""


class NodeBusy(OSError):
    """A node root still has live processes (or a live agent): it is not deleted."""


def is_alive(ref: ProcessRef) -> bool:
    """Whether the process `ref` names still runs (and is not a reused pid)."""
    try:
        os.kill(ref.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if not Path("/proc/self/stat").exists():
        return True  # no /proc here: trust kill(0)
    ticks = procfs.start_ticks(ref.pid)
    return ticks is not None and (ref.start_time is None or ticks == ref.start_time)


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
        lock_wait: float = ROOT_LOCK_WAIT,
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
        self._lock_wait = lock_wait
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
            return ProcessRef(pid, procfs.start_ticks(pid))
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
        log.info("agent started", node=spec.node, pid=proc.pid)
        return ProcessRef(proc.pid, procfs.start_ticks(proc.pid))

    async def _wait(self, key: AgentKey, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        await self._ended(key, self._children, proc, code)

    async def _watch_adopted(self, key: AgentKey, ref: ProcessRef) -> None:
        await self._gone(ref, None)
        await self._ended(key, self._adopted, ref, None)

    async def _ended(self, key: AgentKey, table: dict[AgentKey, Any], agent: object,
                     code: int | None) -> None:
        """The node's agent (`agent`, held in `table`) ended without being stopped: kill what
        it left, then report its end. Until then it counts as running: the loop must not take
        the node for ended (and have its tasks requeued) while they may still run."""

        def ours() -> bool:
            return table.get(key) is agent and key not in self._stopping

        if not ours():
            return
        await self._kill_leftovers(key, f"agent ended (exit code {code})")
        if ours():
            del table[key]
            self._waiters.pop(key, None)
            self._exits.append(Exit(key, code))
            self._listener()

    async def _kill_leftovers(self, key: AgentKey, why: str) -> bool:
        """Kill what the node's dead agent left running and wait until it is gone; False if
        something survived (or the root is in use by a live agent)."""
        root = self.node_root(key)
        if not root.is_dir():
            return True
        try:
            left = await asyncio.to_thread(_kill_under_lock, root, self._lock_wait)
        except RootBusy as e:
            log.error("cannot kill a node's leftovers", node=key[2], error=str(e))
            return False
        if left.killed or not left.clean:
            log.info("node processes killed", node=key[2], why=why, killed=left.killed,
                     surviving=list(left.survivors))
        return left.clean

    def adopt(self, spec: NodeSpec, ref: ProcessRef) -> bool:
        if self.running(spec.key):
            return True
        if ref.start_time is None or not is_alive(ref):
            return False
        self._adopted[spec.key] = ref
        self._waiters[spec.key] = asyncio.create_task(self._watch_adopted(spec.key, ref))
        log.info("agent adopted", node=spec.node, pid=ref.pid)
        return True

    def running(self, key: AgentKey) -> bool:
        return key in self._children or key in self._adopted

    def poll(self) -> list[Exit]:
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
        elif ref is not None:
            await self._stop_adopted(ref)
            self._adopted.pop(key, None)
        task = self._waiters.pop(key, None)
        if task is not None:
            task.cancel()
        # An agent that stops cleanly kills its node's processes itself; one that had to be
        # killed could not.
        await self._kill_leftovers(key, "agent stopped")
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

    async def _gone(self, ref: ProcessRef, within: float | None) -> bool:
        """Wait until the process is gone (at most `within` seconds; None: however long)."""
        exited = _exit_of(ref)
        if exited is not None:
            try:
                await asyncio.wait_for(exited, within)
            except TimeoutError:
                return False
            finally:
                exited.cancel()
            return True
        deadline = None if within is None else time.monotonic() + within
        while is_alive(ref):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self._poll_interval)
        return True

    async def remove(self, spec: NodeSpec) -> None:
        root = self.node_root(spec.key)
        # Never under running processes: NodeBusy leaves it for the next round.
        if not await self._kill_leftovers(spec.key, "node removed"):
            raise NodeBusy(f"node root {root} still has live processes; not deleted")
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


def _kill_under_lock(root: Path, wait: float) -> Leftovers:
    with RootLock.acquire(root, wait):
        return kill_leftovers(root)


def _exit_of(ref: ProcessRef) -> asyncio.Future[None] | None:
    """A future done when the process `ref` names exits, through a pidfd (Linux 5.3+); None
    where there is none. Already done if it is gone (or its pid was reused)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    try:
        fd = os.pidfd_open(ref.pid)
    except ProcessLookupError:
        done.set_result(None)
        return done
    except (OSError, AttributeError):
        return None
    # Checked after the pidfd pins the process: a pid reused before it is not ours.
    if not is_alive(ref):
        os.close(fd)
        done.set_result(None)
        return done

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    def closed(_: asyncio.Future[None]) -> None:
        loop.remove_reader(fd)
        os.close(fd)

    loop.add_reader(fd, readable)
    done.add_done_callback(closed)
    return done
