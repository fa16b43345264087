"""Throughput: trivial tasks per second through the whole suite, on real local nodes.

The headline: 20,000 × /bin/true on 4 nodes × 16 slots, added in one BatchCreateTasks call,
timed from just before the add to the GetJob that shows all 20,000 completed (median of 3).
Before it, a sweep over slots per node (4 nodes × 1, 2, 4, 8, 16; 5,000 tasks each) for the
chart in docs/throughput.svg. One suite for all; each configuration gets a fresh pool, and the
last one's agents are gone before the next one's start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.common import (
    BenchError,
    cpu_snapshot,
    cpu_text,
    cpu_use,
    run_tasks,
    running_suite,
    say,
    wait_nodes_ready,
    wait_pool_gone,
)
from bench.figures import Outcome, Target, of_ceiling
from shoal.client import Client
from shoal.suite import LocalSuite

TARGET = Target(">=", 2000)


@dataclass(frozen=True)
class Params:
    nodes: int = 4
    tasks: int = 20_000
    slots: int = 16
    sweep_slots: tuple[int, ...] = (1, 2, 4, 8, 16)
    sweep_tasks: int = 5_000
    repeats: int = 3


QUICK = Params(tasks=2_000, sweep_tasks=300, repeats=1)


def _slots(n: int) -> str:
    return f"{n} slot" if n == 1 else f"{n} slots"


def _pool(suite: LocalSuite, client: Client, pool_id: str, nodes: int, slots: int) -> None:
    client.create_pool(pool_id, target_nodes=nodes, task_slots_per_node=slots)
    wait_nodes_ready(suite, client, pool_id, nodes)


def _drop(client: Client, pool_id: str, job_ids: list[str]) -> None:
    # The next configuration must not share the machine with this one's agents.
    for job_id in job_ids:
        client.delete_job(job_id)
    client.delete_pool(pool_id)
    wait_pool_gone(client, pool_id)


def _headline(suite: LocalSuite, client: Client, pool_id: str, p: Params,
              ceiling: float | None, out: Outcome) -> list[str]:
    """The 20,000-task runs, each on a new job; returns the jobs to delete."""
    runs: list[dict[str, Any]] = []
    for rep in range(p.repeats):
        job_id = f"headline-{rep}"
        client.create_job(job_id, pool_id=pool_id)
        cpu0 = cpu_snapshot(suite)
        done = run_tasks(suite, client, job_id, p.tasks)
        cpu = cpu_use(cpu0, cpu_snapshot(suite), done.seconds)
        rate = done.rate(p.tasks)
        say(f"headline {rep + 1}/{p.repeats}: {p.tasks:,} tasks in {done.seconds:.2f}s = "
            f"{rate:,.0f} tasks/s {done.note(p.tasks)}")
        say(f"  CPU, % of one core: {cpu_text(cpu)}")
        runs.append({
            "job": job_id, "seconds": done.seconds, "tasks_per_s": rate,
            "failed": done.counts.failed, "timed_out": done.timed_out, "cpu_pct_of_core": cpu,
        })
    middle = sorted(runs, key=lambda r: r["tasks_per_s"])[len(runs) // 2]
    notes = [of_ceiling(middle["tasks_per_s"], ceiling)]
    notes += [f"{r['job']}: {r['failed']:,} FAILED" for r in runs if r["failed"]]
    notes += [f"{r['job']}: TIMED OUT" for r in runs if r["timed_out"]]
    notes.append(f"CPU in the median run, % of a core: {cpu_text(middle['cpu_pct_of_core'])}")
    out.add(
        "tasks_per_s",
        f"{p.tasks:,} × /bin/true, {p.nodes} nodes × {p.slots} slots, one add call "
        f"(median of {p.repeats})",
        middle["tasks_per_s"], "tasks/s", TARGET, "; ".join(n for n in notes if n),
    )
    out.series["headline"] = {"tasks": p.tasks, "total_slots": p.nodes * p.slots, "runs": runs}
    return [r["job"] for r in runs]


def run(quick: bool, ceiling: float | None) -> Outcome:
    p = QUICK if quick else Params()
    if p.slots not in p.sweep_slots:
        raise BenchError("the headline's slots must be one of the sweep's")
    out = Outcome("throughput")
    sweep: list[dict[str, Any]] = []
    with running_suite("throughput") as suite:
        client = suite.client(timeout=120)
        for slots in p.sweep_slots:
            pool_id = f"sweep-{slots}"
            _pool(suite, client, pool_id, p.nodes, slots)
            job_id = f"sweep-{slots}"
            client.create_job(job_id, pool_id=pool_id)
            done = run_tasks(suite, client, job_id, p.sweep_tasks)
            rate = done.rate(p.sweep_tasks)
            say(f"{p.nodes} nodes × {_slots(slots)}: {p.sweep_tasks:,} tasks in "
                f"{done.seconds:.2f}s = {rate:,.0f} tasks/s {done.note(p.sweep_tasks)}")
            sweep.append({
                "nodes": p.nodes, "slots_per_node": slots, "total_slots": p.nodes * slots,
                "tasks": p.sweep_tasks, "seconds": done.seconds, "tasks_per_s": rate,
                "failed": done.counts.failed, "timed_out": done.timed_out,
            })
            jobs = [job_id]
            if slots == p.slots:
                jobs += _headline(suite, client, pool_id, p, ceiling, out)
            _drop(client, pool_id, jobs)
    for point in sweep:
        notes = [of_ceiling(point["tasks_per_s"], ceiling)]
        if point["failed"]:
            notes.append(f"{point['failed']:,} FAILED")
        if point["timed_out"]:
            notes.append("TIMED OUT")
        out.add(
            f"sweep_{point['slots_per_node']}_slots",
            f"sweep: {p.sweep_tasks:,} tasks, {p.nodes} nodes × {_slots(point['slots_per_node'])}",
            point["tasks_per_s"], "tasks/s", None, "; ".join(n for n in notes if n),
        )
    out.series["sweep"] = sweep
    return out
