"""A node's processes, tracked outside its agent's memory, and killing what an agent left.

Every process an agent starts for its node (tasks, the start task, job preparation and
release tasks) runs in a session of its own, so it outlives the agent if the agent dies. Its
tasks must not run on while the scheduler requeues them elsewhere, and the node root must not
be deleted under them; so each agent life records, in its node root and before it starts
anything, where its processes can be found:

- **a cgroup** (cgroup v2 with `cgroup.kill`, Linux 5.14+, writable by the agent: root, or a
  delegated subtree under systemd): `shoal-node-<hash of the root>` below the agent's own
  cgroup. The agent steps into it for each spawn and back out, so every process
  of the node is born inside and no descendant can leave it (short of a root task writing
  `cgroup.procs`). One write to `cgroup.kill` ends them all at once.
- **process groups**, where no such cgroup can be made: each spawned group's id and its
  leader's start time are appended to `process-groups` as it starts. A group is killed only
  while its leader still lives with that start time, so a reused pid is never taken for ours.

Either way, every process of the node also carries SHOAL_NODE_ROOT_DIR in its environment,
and its children inherit it: one scan of /proc finds what left its process group without
cleaning its environment (and what an agent of an older version left).

Whoever learns that an agent died calls `kill_leftovers` holding the root's lock (`RootLock`):
the pool-manager's local provider as soon as its child exits, and every agent at its start,
before it registers (for a node on another host, the next life is the one that can). Live
agents hold the lock for their whole life, so a kill never touches a live agent's tasks.

The record needs no fsync per process: it must outlive the agent process, not the machine, and
a machine that goes down takes the processes with it. The boot id in the record marks a
record of an earlier boot as stale.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import structlog

from services.common import procfs
from services.common.durable import write_durably

log = structlog.get_logger()

RECORD = "processes.json"
"""Written once per agent life before it starts anything: the boot id and the cgroup, if any."""
GROUPS = "process-groups"
"""Process-group mode: one `pgid start-ticks` line per process group the agent started."""
LOCK = "agent.lock"
"""flock()ed by the node's live agent for its whole life."""
NODE_ROOT_VAR = "SHOAL_NODE_ROOT_DIR"
"""In every node process's environment: the node root (agent.runner sets it)."""
ATTEMPT_VAR = "SHOAL_TASK_ATTEMPT_ID"
"""In the environment of an attempt's processes: its id."""
CGROUP_PREFIX = "shoal-node-"
KILL_WAIT = 10.0
"""How long a kill waits for the processes to be gone."""
GROUPS_COMPACT_BYTES = 256 * 1024
"""Process-group mode rewrites its record with only the live groups past this size."""
_POLL = 0.01

class HasPid(Protocol):
    pid: int


P = TypeVar("P", bound=HasPid)


class RootBusy(Exception):
    """Another process (a live agent) holds the node root's lock."""


class TrackingError(OSError):
    """A process could not be started inside the node's cgroup."""


@dataclass(frozen=True)
class Leftovers:
    """What a kill found."""

    killed: int
    """Processes (or, for a cgroup, the processes it held) that were sent SIGKILL."""
    survivors: tuple[int, ...] = ()
    """Pids still alive when the wait ran out (uninterruptible sleep, say): the node root must
    not be deleted yet."""

    @property
    def clean(self) -> bool:
        return not self.survivors


# --- the node root's lock ---------------------------------------------------------------------


class RootLock:
    """The node root's lock: an agent holds it for its life, a kill of leftovers while it runs.
    A dead process's flock() is released by the kernel, so a crash never leaves it held. The
    descriptor is close-on-exec and spawns close every descriptor: no task inherits it."""

    def __init__(self, fd: int, root: Path) -> None:
        self._fd: int | None = fd
        self.root = root

    @classmethod
    def acquire(cls, root: Path, timeout: float = 0.0) -> RootLock:
        """Take the lock, waiting up to `timeout` seconds; RootBusy if it stays held."""
        root = Path(root).absolute()
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return cls(fd, root)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise RootBusy(f"node root {root} is in use by another agent") from None
                time.sleep(0.05)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RootLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --- cgroup v2 --------------------------------------------------------------------------------


def _node_cgroup_name(root: Path) -> str:
    return CGROUP_PREFIX + hashlib.sha256(str(root).encode()).hexdigest()[:16]


def _checked_cgroup(path: str) -> Path | None:
    """A recorded cgroup, if it is one of ours under the cgroup v2 mount (the record sits in
    the node root, which tasks can write: it must not be able to aim a kill elsewhere)."""
    mount = procfs.cgroup2_mount()
    p = Path(path)
    if mount is None or not p.name.startswith(CGROUP_PREFIX) or ".." in p.parts:
        return None
    return p if p.is_relative_to(mount) else None


# --- the record -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    boot_id: str
    cgroup: str | None


def _write_record(root: Path, record: _Record) -> None:
    """Once per agent life, before anything is spawned: whole, and durably."""
    data = json.dumps({"boot_id": record.boot_id, "cgroup": record.cgroup}).encode()
    write_durably(root / RECORD, data)


def _read_record(root: Path) -> _Record | None:
    try:
        raw = json.loads((root / RECORD).read_bytes())
        cgroup = raw.get("cgroup")
        return _Record(str(raw["boot_id"]), str(cgroup) if cgroup else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _read_groups(root: Path) -> list[tuple[int, int]]:
    try:
        text = (root / GROUPS).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            pgid, ticks = line.split()
            out.append((int(pgid), int(ticks)))
    return out


# --- killing ----------------------------------------------------------------------------------


def kill_leftovers(root: Path, within: float = KILL_WAIT) -> Leftovers:
    """Kill every process left on the node root `root` by agent lives that are over, and wait
    (up to `within` seconds) until they are gone. Call it holding the root's lock. Once it
    returns clean, the root's record is cleared and its cgroup removed."""
    root = Path(root).absolute()
    record = _read_record(root)
    current = record is not None and record.boot_id == procfs.boot_id()
    cgroup = _checked_cgroup(record.cgroup) if current and record and record.cgroup else None
    groups = _read_groups(root) if current else []
    marker = f"{NODE_ROOT_VAR}={root}".encode()
    deadline = time.monotonic() + within
    killed: set[int] = set()
    if cgroup is not None and procfs.populated(cgroup):
        killed.update(procfs.cgroup_pids(cgroup))
        _kill_cgroup(cgroup)
    while True:
        found = _find(marker, groups)
        for pgid in {g for _, g in found}:
            if pgid != os.getpgrp():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
        for pid, _ in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.update(pid for pid, _ in found)
        if not found and not (cgroup is not None and procfs.populated(cgroup)):
            break
        if time.monotonic() >= deadline:
            survivors = {pid for pid, _ in found}
            if cgroup is not None:
                survivors.update(procfs.cgroup_pids(cgroup))
            log.error("node processes survived SIGKILL", node_root=str(root),
                      pids=sorted(survivors))
            return Leftovers(len(killed), tuple(sorted(survivors)))
        time.sleep(_POLL)
    if cgroup is not None:
        with contextlib.suppress(FileNotFoundError):
            cgroup.rmdir()
    for name in (GROUPS, RECORD):
        with contextlib.suppress(FileNotFoundError):
            (root / name).unlink()
    return Leftovers(len(killed))


def kill_attempts(root: Path, attempt_ids: Iterable[str]) -> int:
    """Kill what processes of these attempts of a live agent's node left their process group
    for (found by their environment); returns how many. Their groups are the caller's."""
    node = f"{NODE_ROOT_VAR}={Path(root).absolute()}".encode()
    wanted = {f"{ATTEMPT_VAR}={a}".encode() for a in attempt_ids}
    killed = 0
    for pid in procfs.pids():
        env = procfs.environ(pid)
        if node in env and env & wanted:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def _find(marker: bytes, groups: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """(pid, pgid) of the live processes that are the node's: carrying its marker, or in one
    of its recorded process groups whose leader still lives with its recorded start time."""
    verified = {pgid for pgid, ticks in groups if procfs.start_ticks(pgid) == ticks}
    found = []
    for pid in procfs.pids():
        stat = procfs.live_stat(pid)
        if stat is None:
            continue
        if stat.pgid in verified or procfs.has_env(pid, marker):
            found.append((pid, stat.pgid))
    return found


def _kill_cgroup(cgroup: Path) -> None:
    try:
        (cgroup / "cgroup.kill").write_text("1")
    except FileNotFoundError:
        pass  # removed meanwhile: nothing left in it


# --- tracking, for a live agent -----------------------------------------------------------------


class Tracker:
    """How this agent life keeps its node's processes findable (see the module's docstring).
    Made by `begin` once the previous lives' leftovers are gone; every spawn goes through
    `spawn`, every reaped process through `reaped`."""

    def __init__(self, root: Path, cgroup: Path | None, into: int | None, back: int | None,
                 groups: int | None) -> None:
        self.root = root
        self.cgroup = cgroup
        """The node's cgroup; None in process-group mode."""
        self._into, self._back, self._groups = into, back, groups
        self._me = str(os.getpid()).encode()
        self._live: dict[int, bytes] = {}
        self._groups_bytes = 0

    @property
    def mode(self) -> str:
        return "cgroup" if self.cgroup is not None else "process groups"

    @classmethod
    def begin(cls, root: Path, use_cgroup: bool = True) -> Tracker:
        """Record where this life's processes will be, before any is started: a cgroup if one
        can be made and entered here, else process groups. Call it holding the root's lock."""
        root = Path(root).absolute()
        if use_cgroup:
            made = _make_cgroup(root)
            if isinstance(made, tuple):
                cgroup, into, back = made
                return cls(root, cgroup, into, back, None)
            log.info("no usable cgroup v2 for the node's processes: tracking process groups",
                     reason=made)
        _write_record(root, _Record(procfs.boot_id(), None))
        groups = os.open(root / GROUPS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
                         | os.O_CLOEXEC, 0o600)
        return cls(root, None, None, None, groups)

    def spawn(self, start: Callable[[], P]) -> P:
        """Run `start` (which spawns one process and returns it) so that the process is
        tracked. TrackingError when the node's cgroup cannot be entered."""
        if self._into is None:
            proc = start()
            if self._groups is not None:
                self._record_group(proc.pid)
            return proc
        try:
            os.write(self._into, self._me)
        except OSError as e:
            raise TrackingError(e.errno, f"cannot enter the node's cgroup {self.cgroup}: "
                                f"{e.strerror}") from e
        try:
            return start()
        finally:
            assert self._back is not None
            try:
                os.write(self._back, self._me)
            except OSError as e:  # the agent then lives on inside its node's cgroup
                log.error("cannot leave the node's cgroup", error=str(e))

    def reaped(self, pid: int) -> None:
        """The process `pid` (a group leader spawned here) has been reaped."""
        if self._live.pop(pid, None) is not None and self._groups_bytes > GROUPS_COMPACT_BYTES:
            self._compact()

    def _record_group(self, pid: int) -> None:
        ticks = procfs.start_ticks(pid)
        if ticks is None:
            return  # gone already: nothing to find later
        line = f"{pid} {ticks}\n".encode()
        assert self._groups is not None
        os.write(self._groups, line)
        self._live[pid] = line
        self._groups_bytes += len(line)

    def _compact(self) -> None:
        """Rewrite the record with only the live groups (atomically: a crash leaves the old
        record or the new one, both complete)."""
        tmp = self.root / (GROUPS + ".tmp")
        data = b"".join(self._live.values())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
                     0o600)
        os.write(fd, data)
        os.replace(tmp, self.root / GROUPS)
        assert self._groups is not None
        os.close(self._groups)
        self._groups, self._groups_bytes = fd, len(data)

    def close(self) -> Leftovers:
        """The agent is stopping and its attempts are over: kill whatever of the node still
        runs (the start task, what tasks left behind), remove the cgroup and the record."""
        for fd in (self._into, self._back, self._groups):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._into = self._back = self._groups = None
        return kill_leftovers(self.root)


def _make_cgroup(root: Path) -> tuple[Path, int, int] | str:
    """The node's cgroup below this process's own, entered and left once to prove it works,
    with descriptors of both `cgroup.procs`; or why there is none."""
    mount = procfs.cgroup2_mount()
    if mount is None:
        return "no cgroup v2 hierarchy is mounted"
    own = procfs.own_cgroup(mount)
    if own is None or not own.is_dir():
        return "this process's cgroup v2 directory was not found"
    cgroup = own / _node_cgroup_name(root)
    # Recorded before it exists: an agent killed right after the mkdir leaves it findable.
    _write_record(root, _Record(procfs.boot_id(), str(cgroup)))
    try:
        with contextlib.suppress(FileExistsError):
            cgroup.mkdir()
    except OSError as e:
        return f"cannot create {cgroup}: {e.strerror}"
    into = back = -1
    try:
        if not (cgroup / "cgroup.kill").exists():
            raise OSError(errno.ENOTSUP, "no cgroup.kill (Linux 5.14 or newer is needed)")
        into = os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
        back = os.open(own / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
        me = str(os.getpid()).encode()
        os.write(into, me)
        os.write(back, me)
    except OSError as e:
        for fd in (into, back):
            if fd >= 0:
                os.close(fd)
        with contextlib.suppress(OSError):
            cgroup.rmdir()
        return f"cannot use {cgroup}: {e.strerror}"
    return cgroup, into, back
