"""The ceiling: how fast this machine spawns and reaps processes from Python's asyncio.

Every task Shoal runs is at least one such spawn in a node agent (which uses
asyncio.create_subprocess_exec and reaps through a pidfd), so this rate, with no Shoal at all,
is the reference the throughput figures are read against.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass

from bench.common import TRIVIAL, say
from bench.figures import Outcome, median


@dataclass(frozen=True)
class Params:
    processes: int = 3000
    in_flight: int = 64
    repeats: int = 3


QUICK = Params(processes=500)


def _use_pidfd_child_watcher() -> None:
    # As the agent does: Python 3.11's default watcher reaps each child from a thread of
    # its own, which would measure threads, not spawning (3.12 uses pidfds by default).
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


async def spawn_rate(processes: int, in_flight: int) -> float:
    """Processes per second: `processes` runs of /bin/true, `in_flight` at a time."""
    left = processes

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            proc = await asyncio.create_subprocess_exec(
                TRIVIAL,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await proc.wait()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return processes / (time.perf_counter() - start)


async def _rates(p: Params) -> list[float]:
    _use_pidfd_child_watcher()
    return [await spawn_rate(p.processes, p.in_flight) for _ in range(p.repeats)]


def run(quick: bool) -> Outcome:
    p = QUICK if quick else Params()
    out = Outcome("ceiling")
    rates = asyncio.run(_rates(p))
    say("spawn rates: " + ", ".join(f"{r:,.0f}/s" for r in rates))
    out.add(
        "processes_per_s",
        f"process spawn rate: {p.processes:,} × /bin/true, {p.in_flight} in flight "
        f"(median of {p.repeats})",
        median(rates),
        "processes/s",
    )
    out.series["runs"] = rates
    return out
