"""Latency: from CreateTask to the task's process running, on an idle pool.

Each task is `/bin/date +%s.%N`, which prints the wall-clock time of its own process; its
latency is that time minus time.time() just before the add_task call. One task at a time: the
next is added only after the last completed and its stdout was read, so every task meets an
idle pool (4 nodes × 1 slot).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.common import BenchError, check_alive, running_suite, say, wait_nodes_ready
from bench.figures import Outcome, Target, median, percentile
from shoal.client import Client
from shoal.suite import LocalSuite
from shoal.v1 import task_pb2

COMMAND = "/bin/date +%s.%N"
TASK_TIMEOUT = 30.0


@dataclass(frozen=True)
class Params:
    tasks: int = 200
    warmup: int = 3
    """Tasks run first and not counted: the first calls set up connections on every hop."""
    nodes: int = 4
    poll: float = 0.005


QUICK = Params(tasks=30)


def _one(
    suite: LocalSuite, client: Client, job_id: str, task_id: str, poll: float
) -> tuple[float, float]:
    """(latency to process start, latency until the client saw it completed), in seconds."""
    before = time.time()
    client.add_task(job_id, task_id, COMMAND)
    deadline = time.monotonic() + TASK_TIMEOUT
    while True:
        task = client.get_task(job_id, task_id)
        if task.state == task_pb2.Task.COMPLETED:
            seen = time.time()
            break
        if time.monotonic() > deadline:
            check_alive(suite)
            raise BenchError(f"task {task_id} not completed after {TASK_TIMEOUT:g}s")
        time.sleep(poll)
    if task.execution_info.exit_code != 0:
        raise BenchError(f"task {task_id} exited {task.execution_info.exit_code}")
    stdout = client.read_task_file(job_id, task_id, "stdout.txt").decode().strip()
    try:
        started = float(stdout)
    except ValueError:
        raise BenchError(f"task {task_id} printed {stdout[:80]!r}, not a time") from None
    return started - before, seen - before


def run(quick: bool) -> Outcome:
    p = QUICK if quick else Params()
    out = Outcome("latency")
    with running_suite("latency") as suite:
        client = suite.client()
        client.create_pool("idle", target_nodes=p.nodes, task_slots_per_node=1)
        wait_nodes_ready(suite, client, "idle", p.nodes)
        client.create_job("latency", pool_id="idle")
        for i in range(p.warmup):
            _one(suite, client, "latency", f"warmup-{i}", p.poll)
        starts, seens = [], []
        for i in range(p.tasks):
            start, seen = _one(suite, client, "latency", f"t{i:04d}", p.poll)
            starts.append(start * 1000)
            seens.append(seen * 1000)
    p50, p90, p99 = (percentile(starts, q) for q in (50, 90, 99))
    say(f"add → process start: p50 {p50:.1f} p90 {p90:.1f} p99 {p99:.1f} "
        f"max {max(starts):.1f} ms")
    label = f"CreateTask → process start, {p.tasks} tasks one at a time, idle {p.nodes} × 1"
    out.add("p50_ms", f"{label}: p50", p50, "ms", Target("<=", 10))
    out.add("p90_ms", f"{label}: p90", p90, "ms")
    out.add("p99_ms", f"{label}: p99", p99, "ms", Target("<=", 50))
    out.add("max_ms", f"{label}: max", max(starts), "ms")
    out.add(
        "completed_seen_p50_ms",
        f"CreateTask → client sees COMPLETED (GetTask every {p.poll * 1000:g} ms): p50",
        median(seens), "ms",
    )
    out.series["start_ms"] = starts
    out.series["completed_seen_ms"] = seens
    return out
