"""A big job: 1,000,000 tasks in one job, and what it costs to look at it.

Added through Client.add_tasks in calls of 100,000 (its pool has no nodes, so they all stay
ACTIVE). Then: GetJob latency (task counts are maintained, not counted), the first page of
ListTasks filtered `state = ACTIVE`, and the job-scheduler's resident memory.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bench.common import TRIVIAL, BenchError, memory_kib, running_suite, say, service_pid
from bench.figures import Outcome, Target, median, percentile
from shoal.client import TaskSpec

GIB_KIB = 1024 * 1024


@dataclass(frozen=True)
class Params:
    tasks: int = 1_000_000
    chunk: int = 100_000
    get_job_calls: int = 200
    list_calls: int = 50
    page_size: int = 100


QUICK = Params(tasks=100_000, chunk=50_000, get_job_calls=50, list_calls=10)


def _specs(n: int) -> Iterator[TaskSpec]:
    # A generator: a million TaskSpecs held at once would weigh on the machine being measured.
    return (TaskSpec(f"t{i:07d}", TRIVIAL) for i in range(n))


def run(quick: bool) -> Outcome:
    p = QUICK if quick else Params()
    out = Outcome("bigjob")
    with running_suite("bigjob") as suite:
        client = suite.client(timeout=120)
        client.create_pool("empty", target_nodes=0)
        client.create_job("big", pool_id="empty")
        pid = service_pid(suite, "job-scheduler")
        before = memory_kib(pid)
        chunk_times: list[float] = []
        last = time.perf_counter()

        def progress(added: int) -> None:
            nonlocal last
            now = time.perf_counter()
            chunk_times.append(now - last)
            last = now

        start = time.perf_counter()
        added = client.add_tasks("big", _specs(p.tasks), chunk=p.chunk, on_chunk=progress)
        add_s = time.perf_counter() - start
        if added != p.tasks:
            raise BenchError(f"added {added:,}, not {p.tasks:,}")
        say(f"added {p.tasks:,} tasks in {add_s:.1f}s ({p.tasks / add_s:,.0f} tasks/s)")

        get_ms = []
        for _ in range(p.get_job_calls):
            t0 = time.perf_counter()
            job = client.get_job("big")
            get_ms.append((time.perf_counter() - t0) * 1000)
        if job.task_counts.active != p.tasks:
            raise BenchError(f"GetJob shows {job.task_counts.active:,} active, not {p.tasks:,}")

        list_ms = []
        for _ in range(p.list_calls):
            t0 = time.perf_counter()
            # The client pages lazily: taking one page's worth asks for the first page only.
            pages = client.list_tasks("big", state="active", page_size=p.page_size)
            page = list(itertools.islice(pages, p.page_size))
            list_ms.append((time.perf_counter() - t0) * 1000)
            if len(page) != p.page_size:
                raise BenchError(f"the first page has {len(page)} tasks, not {p.page_size}")
        mem = memory_kib(pid)

    say(f"GetJob p50 {median(get_ms):.2f} ms, ListTasks p50 {median(list_ms):.2f} ms, "
        f"scheduler RSS {mem['VmRSS'] / 1024:,.0f} MiB")
    out.add("add_tasks_per_s",
            f"adding {p.tasks:,} tasks: {p.tasks // p.chunk} × Client.add_tasks calls of "
            f"{p.chunk:,}", p.tasks / add_s, "tasks/s", None, f"{add_s:.1f} s in all")
    out.add("get_job_p50_ms", f"GetJob on the {p.tasks:,}-task job, {p.get_job_calls} calls: p50",
            median(get_ms), "ms", Target("<=", 5))
    out.add("get_job_p99_ms", f"GetJob on the {p.tasks:,}-task job: p99",
            percentile(get_ms, 99), "ms", Target("<=", 5))
    what = f"ListTasks first page ({p.page_size}), state = ACTIVE, {p.list_calls} calls"
    out.add("list_p50_ms", f"{what}: p50", median(list_ms), "ms", Target("<=", 50))
    out.add("list_p99_ms", f"{what}: p99", percentile(list_ms, 99), "ms", Target("<=", 50))
    out.add("scheduler_rss_mib", f"job-scheduler VmRSS holding {p.tasks:,} tasks",
            mem["VmRSS"] / 1024, "MiB", Target("<=", 1024),
            f"peak {mem['VmHWM'] / 1024:,.0f} MiB; {before['VmRSS'] / 1024:,.0f} MiB before")
    out.series.update(
        add_s=add_s, chunk_s=chunk_times, get_job_ms=get_ms, list_ms=list_ms,
        rss_kib=mem["VmRSS"], hwm_kib=mem["VmHWM"], rss_before_kib=before["VmRSS"],
    )
    return out
