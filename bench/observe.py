"""Observe: what watching the cluster costs the headline throughput.

One suite, one pool of 4 nodes × 16 slots, the headline's 20,000 × /bin/true added in one
call, six runs in the order plain, watched, watched, plain, plain, watched (so a drift of the
machine's load during the benchmark weighs on both alike). A watched run has, for its whole
length, 10 dashboard pages open on it (8 job pages following the run's job and reading its
task list as it moves, 2 pool pages following the node map; see bench/dashboard_load.py) and
a scraper reading the four services' /metrics every second, all in one separate process.
The figure is the median watched rate as a percentage of the median plain rate (target ≥ 95 %:
at most 5 % lost). The metrics' own cost on the task path is in both: they cannot be turned off.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from bench.common import (
    BenchError,
    cpu_seconds,
    cpu_snapshot,
    cpu_text,
    cpu_use,
    run_tasks,
    running_suite,
    say,
    wait_nodes_ready,
)
from bench.figures import Outcome, Target, median
from shoal.suite import SERVICES, LocalSuite

TARGET = Target(">=", 95.0)
ORDER = (False, True, True, False, False, True)
"""Watched or not, run by run: ABBAAB."""


@dataclass(frozen=True)
class Params:
    nodes: int = 4
    slots: int = 16
    tasks: int = 20_000
    pages: int = 10
    order: tuple[bool, ...] = ORDER


QUICK = Params(tasks=2_000, order=(False, True))


def _start_load(suite: LocalSuite, job: str, pool: str, pages: int) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "bench.dashboard_load", "--url", suite.dashboard_url,
            "--state-dir", str(suite.state_dir), "--job", job, "--pool", pool,
            "--pages", str(pages), "--scrape",
            ",".join(suite.metrics_url(s) for s in SERVICES)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # the process gives up by itself after 60 s
    if line != "ready":
        proc.kill()
        raise BenchError(f"the dashboard load did not start (said {line!r}, exit "
                         f"{proc.wait()})")
    return proc


def _stop_load(proc: subprocess.Popen[str]) -> dict[str, Any]:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    lines = [x for x in out.splitlines() if x.startswith("{")]
    if not lines:
        raise BenchError(f"the dashboard load said nothing (exit {proc.returncode})")
    stats: dict[str, Any] = json.loads(lines[-1])
    if stats["errors"]:
        raise BenchError(f"the dashboard load failed: {stats['errors'][0]}")
    return stats


def cpu_ms_per_task(r: dict[str, Any]) -> float:
    """CPU milliseconds every part of a run used per task (its % of one core over its time)."""
    return sum(r["cpu_pct_of_core"].values()) * r["seconds"] * 10 / r["tasks"]


def run(quick: bool) -> Outcome:
    p = QUICK if quick else Params()
    out = Outcome("observe")
    runs: list[dict[str, Any]] = []
    with running_suite("observe") as suite:
        client = suite.client(timeout=120)
        client.create_pool("observe", target_nodes=p.nodes, task_slots_per_node=p.slots)
        wait_nodes_ready(suite, client, "observe", p.nodes)
        for i, watched in enumerate(p.order):
            job = f"run-{i}"
            client.create_job(job, pool_id="observe")
            load = _start_load(suite, job, "observe", p.pages) if watched else None
            load_cpu0 = cpu_seconds(load.pid) if load else 0.0
            cpu0 = cpu_snapshot(suite)
            try:
                done = run_tasks(suite, client, job, p.tasks)
                cpu = cpu_use(cpu0, cpu_snapshot(suite), done.seconds)
                if load is not None:
                    cpu["load"] = round(100 * (cpu_seconds(load.pid) - load_cpu0) / done.seconds, 1)
            finally:
                stats = _stop_load(load) if load is not None else None
            rate = done.rate(p.tasks)
            say(f"run {i + 1}/{len(p.order)} {'watched' if watched else 'plain  '}: "
                f"{p.tasks:,} tasks in {done.seconds:.2f}s = {rate:,.0f} tasks/s "
                f"{done.note(p.tasks)}")
            say(f"  CPU, % of one core: {cpu_text(cpu)}")
            if stats:
                say(f"  {stats['pages']} pages: {stats['requests']} requests, "
                    f"{stats['events']} live events; {stats['scrapes']} scrapes of 4 "
                    f"endpoints, p50 {stats['scrape_p50_ms']} ms")
            runs.append({"job": job, "watched": watched, "seconds": done.seconds,
                         "tasks": p.tasks,
                         "tasks_per_s": rate, "failed": done.counts.failed,
                         "timed_out": done.timed_out, "cpu_pct_of_core": cpu, "load": stats})
            # Jobs are not deleted between runs (as in the headline): the agents would remove
            # the 20,000 task directories during the next run, and the disk work would land
            # in its figure. The suite's state dir goes at the end, quickly (remove_state).
    plain = [r["tasks_per_s"] for r in runs if not r["watched"]]
    watched_rates = [r["tasks_per_s"] for r in runs if r["watched"]]
    ratio = median(watched_rates) / median(plain)
    bad = [f"{r['job']}: {r['failed']:,} FAILED" for r in runs if r["failed"]]
    bad += [f"{r['job']}: TIMED OUT" for r in runs if r["timed_out"]]
    fmt = ", ".join
    out.add("plain_tasks_per_s", f"{p.tasks:,} tasks, {p.nodes} × {p.slots} slots, nobody "
            f"watching (median of {len(plain)})", median(plain), "tasks/s", None,
            fmt(f"{x:,.0f}" for x in plain))
    out.add("watched_tasks_per_s", f"the same with {p.pages} dashboard pages open and "
            f"/metrics scraped every 1 s (median of {len(watched_rates)})",
            median(watched_rates), "tasks/s", None,
            fmt(f"{x:,.0f}" for x in watched_rates))
    out.add("ratio", "watched throughput, % of plain", 100 * ratio, "% of plain", TARGET,
            "; ".join([f"{(1 - ratio) * 100:.1f} % lost" if ratio < 1
                       else f"{(ratio - 1) * 100:.1f} % faster (noise)", *bad]))
    plain_cpu = median([cpu_ms_per_task(r) for r in runs if not r["watched"]])
    watched_cpu = median([cpu_ms_per_task(r) for r in runs if r["watched"]])
    out.add("cpu_per_task", "CPU of the whole cluster (services, agents, tasks, and the pages' "
            "process) per task, watched as % of plain (medians): what watching adds to the "
            "work, read apart from the rate, which other users of the machine move",
            100 * watched_cpu / plain_cpu, "% of plain", None,
            f"{plain_cpu:.2f} ms plain, {watched_cpu:.2f} ms watched")
    out.series["runs"] = runs
    return out
