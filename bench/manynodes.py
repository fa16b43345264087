"""Many nodes: 1,000 node sessions on one scheduler.

The sessions come from bench.lightagents, one separate process speaking the real agent
protocol (real credentials, real heartbeats at the Welcome's interval, a TaskStarted and a
TaskResult for every Assignment) without running anything, so the figures are the scheduler's
own cost. Measured: the job-scheduler's CPU while all sessions heartbeat and nothing else
happens, then 20,000 tasks through the pool (throughput and how evenly they spread).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.common import (
    BenchError,
    check_alive,
    cpu_seconds,
    memory_kib,
    run_tasks,
    running_suite,
    say,
    service_pid,
)
from bench.figures import Outcome, Target, of_ceiling
from shoal.suite import LocalSuite

POOL = "light"


@dataclass(frozen=True)
class Params:
    sessions: int = 1000
    slots: int = 4
    idle_seconds: float = 10.0
    tasks: int = 20_000
    channels: int = 4


QUICK = Params(sessions=100, idle_seconds=3.0, tasks=2_000)


class Fleet:
    """The lightagents child process and its JSON-lines conversation."""

    def __init__(self, suite: LocalSuite, p: Params) -> None:
        self.log_path = suite.logs_dir / "lightagents.log"
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.lightagents", "--config", str(suite.config_path),
             "--pool", POOL, "--count", str(p.sessions), "--slots", str(p.slots),
             "--channels", str(p.channels)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            cwd=Path(__file__).resolve().parent.parent,  # where `bench` imports from
        )
        self._buffer = b""

    def event(self, name: str, timeout: float) -> dict[str, Any]:
        stdout: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        deadline = time.monotonic() + timeout
        while True:
            line, sep, rest = self._buffer.partition(b"\n")
            if sep:
                self._buffer = rest
                data: dict[str, Any] = json.loads(line)
                if data.get("event") == name:
                    return data
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"lightagents: no {name!r} within {timeout:g}s")
            ready, _, _ = select.select([stdout], [], [], left)
            if ready:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise BenchError(
                        f"lightagents exited (code {self.proc.wait()}); see {self.log_path}"
                    )
                self._buffer += chunk

    def stats(self) -> dict[str, Any]:
        stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
        stdin.write(b"stats\n")
        stdin.flush()
        return self.event("stats", 30)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def run(quick: bool, ceiling: float | None) -> Outcome:
    p = QUICK if quick else Params()
    out = Outcome("manynodes")
    with running_suite("manynodes") as suite:
        client = suite.client(timeout=120)
        client.create_pool(POOL, target_nodes=0, task_slots_per_node=p.slots)
        pid = service_pid(suite, "job-scheduler")
        fleet = Fleet(suite, p)
        try:
            hello = fleet.event("connected", 120)
            if hello["broken"] or hello["sessions"] != p.sessions:
                raise BenchError(f"only {hello['sessions']}/{p.sessions} sessions connected: "
                                 f"{hello['first_error']}")
            say(f"{p.sessions:,} sessions connected in {hello['seconds']:.1f}s")
            # Let the connect burst's commits settle: one heartbeat interval.
            time.sleep(suite.config.timing.heartbeat_interval)
            check_alive(suite)
            beats0 = fleet.stats()["heartbeats"]
            cpu0, child0, t0 = cpu_seconds(pid), cpu_seconds(fleet.proc.pid), time.monotonic()
            time.sleep(p.idle_seconds)
            cpu1, child1, t1 = cpu_seconds(pid), cpu_seconds(fleet.proc.pid), time.monotonic()
            idle_pct = (cpu1 - cpu0) / (t1 - t0) * 100
            fleet_pct = (child1 - child0) / (t1 - t0) * 100
            rss = memory_kib(pid)["VmRSS"]
            beats = fleet.stats()["heartbeats"] - beats0
            say(f"idle: job-scheduler {idle_pct:.1f} % of a core, lightagents {fleet_pct:.1f} %")

            client.create_job("spread", pool_id=POOL)
            done = run_tasks(suite, client, "spread", p.tasks)
            rate = done.rate(p.tasks)
            final = fleet.stats()
            say(f"{p.tasks:,} tasks in {done.seconds:.2f}s = {rate:,.0f} tasks/s "
                f"{done.note(p.tasks)}")
        finally:
            fleet.stop()
    if final["broken"]:
        raise BenchError(f"{final['broken']} sessions broke: {final['first_error']}")
    per_node = final["assigned"]
    interval = suite.config.timing.heartbeat_interval
    out.add("idle_cpu_pct",
            f"job-scheduler CPU, {p.sessions:,} idle sessions heartbeating every {interval:g}s "
            f"({p.idle_seconds:g}s sample)",
            idle_pct, "% of a core", Target("<=", 20),
            f"{beats:,} heartbeats in the sample; RSS {rss / 1024:,.0f} MiB; "
            f"the sessions' own process {fleet_pct:.1f} %")
    notes = [n for n in (of_ceiling(rate, ceiling), done.note(p.tasks)) if n]
    out.add("tasks_per_s", f"{p.tasks:,} tasks on {p.sessions:,} light nodes × {p.slots} slots",
            rate, "tasks/s", None, "; ".join(notes))
    out.add("spread_min", "assignments per node: fewest", min(per_node), "tasks", None,
            f"most {max(per_node)}, mean {sum(per_node) / len(per_node):.1f}")
    out.add("spread_max", "assignments per node: most", max(per_node), "tasks")
    out.series.update(
        connect_s=hello["seconds"], idle_cpu_pct=idle_pct, fleet_cpu_pct=fleet_pct,
        scheduler_rss_kib=rss, heartbeats_during_idle=beats,
        seconds=done.seconds, failed=done.counts.failed, timed_out=done.timed_out,
        assigned_per_node=per_node,
    )
    return out
