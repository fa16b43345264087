"""A task command that records each run of itself, and the reading of those records: what a
fault experiment needs to tell a task that ran twice from one that ran once.

Each run appends to `{dir}/{task id}`, one line per event:

    start <attempt> <wall time> <pid> <overlap>   as it begins; overlap 1 when a process of an
                                                  earlier run of the task was still alive
    rootgone <attempt> <wall time>                its directory vanished while it ran
    end <attempt> <wall time>                     it ran its command to the end
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = r"""
import os, sys, time
d, seconds = sys.argv[1], float(sys.argv[2])
log = os.path.join(d, os.environ["SHOAL_TASK_ID"])
attempt = os.environ["SHOAL_TASK_ATTEMPT_ID"]

def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False

def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")

earlier = []
if os.path.exists(log):
    earlier = [int(l.split()[3]) for l in open(log) if l.startswith("start ")]
note(f"start {attempt} {time.time():.6f} {os.getpid()} {int(any(alive(p) for p in earlier))}")
task_dir = os.environ["SHOAL_TASK_DIR"]
until = time.monotonic() + seconds
gone = False
while time.monotonic() < until:
    time.sleep(0.05)
    if not gone and not os.path.isdir(task_dir):
        gone = True
        note(f"rootgone {attempt} {time.time():.6f}")
note(f"end {attempt} {time.time():.6f}")
"""


def command(runs: Path, seconds: float, python: str = sys.executable) -> str:
    """The command line of a recording task that sleeps `seconds`."""
    return f"{python} -c {shlex.quote(SCRIPT)} {runs} {seconds:g}"


@dataclass
class Runs:
    """What one task's record says."""

    starts: list[tuple[str, float, int, bool]] = field(default_factory=list)
    """(attempt, wall time, pid, overlap) of each run that began."""
    ends: list[str] = field(default_factory=list)
    """Attempts that ran to the end."""
    root_gone: list[str] = field(default_factory=list)
    """Attempts whose directory vanished while they ran."""

    @property
    def double(self) -> bool:
        return len(self.ends) > 1

    @property
    def overlapped(self) -> bool:
        return any(o for *_, o in self.starts)


def read(runs: Path, task_id: str) -> Runs:
    r = Runs()
    path = runs / task_id
    if not path.exists():
        return r
    for line in path.read_text().splitlines():
        kind, attempt, *rest = line.split()
        if kind == "start":
            r.starts.append((attempt, float(rest[0]), int(rest[1]), rest[2] == "1"))
        elif kind == "end":
            r.ends.append(attempt)
        elif kind == "rootgone":
            r.root_gone.append(attempt)
    return r
