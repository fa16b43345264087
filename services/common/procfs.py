"""Processes and cgroups as Linux shows them in /proc and the cgroup v2 file system: the few
readings that the node's process tracking (services.common.node_processes) and the local
provider's agent watching share. Every reading tolerates a process that vanishes meanwhile."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple


class Stat(NamedTuple):
    state: str
    """One letter: R, S, D, Z (zombie), ..."""
    pgid: int
    start_ticks: int
    """Start time in clock ticks since boot: with the pid, names one process for good."""


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def stat(pid: int) -> Stat | None:
    """/proc/pid/stat of a process, zombies included; None if there is none."""
    try:
        # os.open, not open(): a spawn in process-group mode reads this once.
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    fields = text[text.rindex(b")") + 2:].split()
    return Stat(fields[0].decode(), int(fields[2]), int(fields[19]))


def live_stat(pid: int) -> Stat | None:
    """As `stat`, None for a process that has exited (a zombie) too."""
    s = stat(pid)
    return None if s is None or s.state in ("Z", "X") else s


def start_ticks(pid: int) -> int | None:
    """A live process's start time in clock ticks since boot; None when it is gone."""
    s = live_stat(pid)
    return None if s is None else s.start_ticks


def alive(pid: int) -> bool:
    return live_stat(pid) is not None


def has_env(pid: int, entry: bytes) -> bool:
    """Whether the process's environment holds `entry` (`NAME=value`)."""
    return entry in environ(pid)


def environ(pid: int) -> set[bytes]:
    """The `NAME=value` entries of a process's environment; empty if unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return set(f.read().split(b"\0"))
    except OSError:
        return set()


def pids() -> Iterator[int]:
    """Every process but this one."""
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != me:
            yield int(entry.name)


def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on
    a hybrid host); None without one."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split(" ")[4])
    return None


def own_cgroup(mount: Path) -> Path | None:
    """This process's cgroup v2 directory."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return mount / line[3:].lstrip("/")
    return None


def populated(cgroup: Path) -> bool:
    """Whether a live process is in the cgroup or below it."""
    try:
        text = (cgroup / "cgroup.events").read_text()
    except FileNotFoundError:
        return False
    return "populated 1" in text


def cgroup_pids(cgroup: Path) -> list[int]:
    try:
        return [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
    except (FileNotFoundError, ValueError):
        return []
