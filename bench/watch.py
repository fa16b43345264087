"""Watch: what following a job costs, and how fast its changes reach watchers.

The same 5,000-task job of /bin/true on 4 nodes × 16 slots runs twice on one suite: with
nobody watching, then with 10 clients watching every change of the job (WatchJob through
the gateway, each in a thread of its own). Figures: tasks/s of both runs, the changes
delivered per second to all watchers together, and the scheduler's CPU per task in both.
Each watcher's stream is checked whole: every task added, assigned and completed once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from bench.common import (
    BenchError,
    check_alive,
    cpu_seconds,
    run_tasks,
    running_suite,
    say,
    service_pid,
    wait_nodes_ready,
)
from bench.figures import Outcome
from shoal.client import Client
from shoal.suite import LocalSuite
from shoal.v1 import task_pb2


@dataclass(frozen=True)
class Params:
    tasks: int = 5000
    nodes: int = 4
    slots: int = 16
    watchers: int = 10


QUICK = Params(tasks=500, watchers=3)


class Watcher:
    """One client following every change of the job until all its tasks completed."""

    def __init__(self, suite: LocalSuite, job_id: str, tasks: int) -> None:
        self.client = suite.client()
        self.stream = self.client.watch_job(job_id, timeout=120 + tasks / 50)
        self.tasks = tasks
        self.events = 0
        self.completed: set[str] = set()
        self.last = 0.0
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for e in self.stream:
                self.events += 1
                if e.HasField("task") and e.task.state == task_pb2.Task.COMPLETED:
                    self.completed.add(e.task.name)
                    if len(self.completed) == self.tasks:
                        self.last = time.perf_counter()
                        return
        except Exception as e:  # noqa: BLE001 - reported by the benchmark
            self.error = e
        finally:
            self.stream.close()
            self.client.close()


def _job(suite: LocalSuite, client: Client, job_id: str, p: Params,
         watchers: int) -> tuple[float, float, list[Watcher], float]:
    """(tasks/s, scheduler CPU seconds, the watchers, seconds from the add to the last
    watcher seeing the last completion)."""
    client.create_job(job_id, pool_id="w")
    followers = [Watcher(suite, job_id, p.tasks) for _ in range(watchers)]
    pid = service_pid(suite, "job-scheduler")
    cpu = cpu_seconds(pid)
    start = time.perf_counter()
    done = run_tasks(suite, client, job_id, p.tasks, poll=0.05)
    for w in followers:
        w.thread.join(timeout=120)
    cpu = cpu_seconds(pid) - cpu
    if done.timed_out:
        raise BenchError(f"job {job_id}: {done.note(p.tasks)}")
    for w in followers:
        if w.error is not None or len(w.completed) != p.tasks:
            raise BenchError(f"a watcher saw {len(w.completed)} of {p.tasks} completions "
                             f"({w.error})")
    last = max((w.last for w in followers), default=start + done.seconds)
    return done.rate(p.tasks), cpu, followers, last - start


def run(quick: bool) -> Outcome:
    p = QUICK if quick else Params()
    out = Outcome("watch")
    with running_suite("watch") as suite:
        client = suite.client()
        client.create_pool("w", target_nodes=p.nodes, task_slots_per_node=p.slots)
        wait_nodes_ready(suite, client, "w", p.nodes)
        alone, cpu_alone, _, _ = _job(suite, client, "alone", p, 0)
        say(f"nobody watching: {alone:,.0f} tasks/s")
        watched, cpu_watched, followers, seconds = _job(suite, client, "watched", p, p.watchers)
        check_alive(suite)
        events = sum(w.events for w in followers)
        say(f"{p.watchers} watching: {watched:,.0f} tasks/s, {events:,} changes delivered in "
            f"{seconds:.1f} s")
    label = f"{p.tasks:,} tasks on {p.nodes} × {p.slots} slots"
    out.add("tasks_per_s_unwatched", f"{label}, nobody watching", alone, "tasks/s")
    out.add("tasks_per_s_watched", f"{label}, {p.watchers} clients watching every change",
            watched, "tasks/s", note=f"{watched / alone:.2f} × unwatched")
    out.add("events_per_s", f"changes delivered to the {p.watchers} watchers together "
            "(add to last completion seen)", events / seconds, "changes/s")
    out.add("scheduler_ms_per_task_unwatched", "job-scheduler CPU per task, nobody watching",
            cpu_alone / p.tasks * 1000, "ms")
    out.add("scheduler_ms_per_task_watched", f"job-scheduler CPU per task, {p.watchers} watching",
            cpu_watched / p.tasks * 1000, "ms")
    out.series["changes_per_watcher"] = [w.events for w in followers]
    return out
