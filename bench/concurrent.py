"""Concurrent adds: many clients adding tasks one at a time to one job while another lists it.

20 clients (threads, each with its own `Client` and so its own channel to the gateway), each
adding 100 × /bin/true with `CreateTask` (`Client.add_task`), one call after the other, to ONE
job; meanwhile one more client walks the job's tasks with `ListTasks` (`Client.list_tasks`,
pages of 1,000 as the CLI asks), pass after pass, until the adders are done. The job's pool
has real nodes (2 × 4 slots) that run the tasks as they arrive, so the add path competes with
dispatch, results and their commits, as it does in real use; with 0 nodes only the adds and
the listing would meet.

Measured per repetition (a new job each): the latency of every CreateTask call (answered OK or
not) — p50, p99 (nearest rank), max — the calls answered with an error, by status and reason,
the wall time of the adds (from the clients' common start to the last answer) and until every
task had completed; and how many successful answers list an attempt in
`execution_info.previous_attempts`, which a task just added cannot have. A task whose CreateTask
answered an error is looked up afterwards: if it exists anyway (the NOT_FOUND defect), a few are
added again to show the retry's answer. Median of the repetitions.

Last, the transport floor: the same race with an instant-answer server in the job-scheduler's
place (bench/instant_scheduler.py) behind the real gateway, and the CPU each process spends
per call — what no scheduler can beat on this machine.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from bench.common import (
    TRIVIAL,
    BenchError,
    check_alive,
    cpu_seconds,
    running_suite,
    say,
    wait_nodes_ready,
)
from bench.figures import Outcome, Target, median, percentile
from shoal.client import Client
from shoal.errors import ShoalError
from shoal.suite import LocalSuite

POOL = "small"


@dataclass(frozen=True)
class Params:
    clients: int = 20
    tasks_per_client: int = 100
    nodes: int = 2
    slots: int = 4
    page_size: int = 1000
    repeats: int = 3
    add_deadline: float = 120.0
    """Seconds the adds of one repetition may take; clients stop adding after it."""
    completion_timeout: float = 60.0
    """Seconds after the adds for every added task to complete."""
    listing: bool = True
    """Whether the listing client runs (False: the adds alone, for comparison)."""
    retries_shown: int = 5
    """How many of the tasks whose add answered an error but which exist are added again."""


QUICK = Params(clients=5, tasks_per_client=20, repeats=1, add_deadline=30.0)


@dataclass
class Adder:
    index: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    """(task id, status code name, reason) of each call answered with an error."""
    phantom_previous: int = 0
    """Answers that list an attempt in previous_attempts: a task just added has none."""
    last_answer: float = 0.0
    timed_out: bool = False
    crashed: str = ""


@dataclass
class Lister:
    passes: int = 0
    pages: int = 0
    pass_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def _key(e: ShoalError) -> str:
    return f"{e.code.name}/{e.reason}" if e.reason else e.code.name


def _add(client: Client, job_id: str, me: Adder, p: Params, start: threading.Barrier,
         deadline: list[float]) -> None:
    try:
        start.wait()
        for i in range(p.tasks_per_client):
            if time.perf_counter() > deadline[0]:
                me.timed_out = True
                return
            task_id = f"c{me.index:02d}-{i:04d}"
            t0 = time.perf_counter()
            try:
                task = client.add_task(job_id, task_id, TRIVIAL)
                if task.execution_info.previous_attempts:
                    me.phantom_previous += 1
            except ShoalError as e:
                me.errors.append((task_id, e.code.name, e.reason))
            t1 = time.perf_counter()
            me.latencies_ms.append((t1 - t0) * 1000)
            me.last_answer = t1
    except Exception as e:  # noqa: BLE001 - reported, not lost in a thread
        me.crashed = f"{type(e).__name__}: {e}"


def _list(client: Client, job_id: str, me: Lister, p: Params, start: threading.Barrier,
          done: threading.Event) -> None:
    start.wait()
    while p.listing and not done.is_set():
        t0 = time.perf_counter()
        try:
            for _ in client.list_tasks(job_id, page_size=p.page_size):
                pass
        except ShoalError as e:
            me.errors[_key(e)] += 1
            time.sleep(0.01)
            continue
        me.pass_ms.append((time.perf_counter() - t0) * 1000)
        me.passes += 1


def _wait_completed(suite: LocalSuite, client: Client, job_id: str, tasks: int,
                    timeout: float) -> tuple[float, Any, bool]:
    """(when, the job's counts, timed out): poll GetJob every 20 ms."""
    deadline = time.perf_counter() + timeout
    while True:
        counts = client.get_job(job_id).task_counts
        now = time.perf_counter()
        if counts.completed >= tasks:
            return now, counts, False
        if now > deadline:
            return now, counts, True
        check_alive(suite)
        time.sleep(0.02)


def _race(clients: list[Client], lister_client: Client, job_id: str,
          p: Params) -> tuple[list[Adder], Lister, float]:
    """The adders and the lister, started together; (adders, lister, start) once all are done."""
    adders = [Adder(i) for i in range(p.clients)]
    lister = Lister()
    barrier = threading.Barrier(p.clients + 2)
    done = threading.Event()
    deadline = [float("inf")]
    threads = [
        threading.Thread(target=_add, args=(c, job_id, a, p, barrier, deadline), daemon=True)
        for c, a in zip(clients, adders, strict=True)
    ]
    threads.append(threading.Thread(
        target=_list, args=(lister_client, job_id, lister, p, barrier, done), daemon=True))
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + p.add_deadline
    barrier.wait()
    start = time.perf_counter()
    for t in threads[:-1]:
        # Every call has the client's own timeout (30 s): a thread outlives the deadline by
        # at most one call.
        t.join(p.add_deadline + 60)
    done.set()
    threads[-1].join(60)
    return adders, lister, start


def _one(suite: LocalSuite, clients: list[Client], lister_client: Client, job_id: str,
         p: Params) -> dict[str, Any]:
    control = clients[0]
    control.create_job(job_id, pool_id=POOL)
    adders, lister, start = _race(clients, lister_client, job_id, p)
    crashed = [a.crashed for a in adders if a.crashed]
    if crashed:
        say(f"an adding client failed: {crashed[0]}")
    adds_s = max((a.last_answer for a in adders), default=start) - start
    latencies = [x for a in adders for x in a.latencies_ms]
    errors = [e for a in adders for e in a.errors]
    by_kind = Counter(f"{code}/{reason}" if reason else code for _, code, reason in errors)
    calls = len(latencies)
    ok = calls - len(errors)

    # Which of the tasks whose add failed exist anyway, and what a retry answers.
    existing = {t.name.rsplit("/", 1)[-1] for t in control.list_tasks(job_id, page_size=1000)}
    failed_ids = [task_id for task_id, _, _ in errors]
    exist_anyway = [t for t in failed_ids if t in existing]
    retries: Counter[str] = Counter()
    for task_id in exist_anyway[: p.retries_shown]:
        try:
            control.add_task(job_id, task_id, TRIVIAL)
            retries["OK"] += 1
        except ShoalError as e:
            retries[_key(e)] += 1

    if p.nodes:
        end, counts, timed_out = _wait_completed(
            suite, control, job_id, len(existing), p.completion_timeout)
    else:  # nothing runs them
        end, counts, timed_out = time.perf_counter(), control.get_job(job_id).task_counts, False
    return {
        "job": job_id, "calls": calls, "ok": ok, "tasks_existing": len(existing),
        "p50_ms": percentile(latencies, 50) if latencies else None,
        "p99_ms": percentile(latencies, 99) if latencies else None,
        "max_ms": max(latencies) if latencies else None,
        "errors": dict(by_kind), "error_calls": len(errors),
        "errors_but_exist": len(exist_anyway),
        "phantom_previous": sum(a.phantom_previous for a in adders), "retry_answers": dict(retries),
        "adds_s": adds_s, "until_completed_s": end - start,
        "completed": counts.completed, "failed": counts.failed,
        "adds_timed_out": any(a.timed_out for a in adders) or bool(crashed),
        "completion_timed_out": timed_out,
        "list_passes": lister.passes,
        "list_pass_p50_ms": median(lister.pass_ms) if lister.pass_ms else None,
        "list_errors": dict(lister.errors),
        "latencies_ms": latencies,
    }


def _warm_up(client: Client, within: float = 10.0) -> None:
    """Until a call reaches the instant scheduler (the gateway's channel reconnects in its
    own time)."""
    deadline = time.perf_counter() + within
    while True:
        try:
            client.add_task("floor", "warm-up", TRIVIAL)
            return
        except ShoalError:
            if time.perf_counter() > deadline:
                raise
            time.sleep(0.1)


def _floor(suite: LocalSuite, clients: list[Client], lister_client: Client,
           p: Params) -> list[dict[str, Any]]:
    """The same race with the job-scheduler replaced by bench.instant_scheduler on its port
    (the gateway's channel reconnects to it): the figures no scheduler can beat here, and the
    CPU each process spends per call. Run last: the real scheduler is gone afterwards."""
    port = suite.config.job_scheduler_address.rsplit(":", 1)[1]
    suite.kill("job-scheduler")
    instant = subprocess.Popen(
        [sys.executable, "-m", "bench.instant_scheduler", port], stdout=subprocess.PIPE)
    runs = []
    try:
        if instant.stdout is None or instant.stdout.readline().strip() != b"ready":
            raise BenchError("the instant scheduler did not start")
        gateway = suite.pid("gateway")
        assert gateway is not None
        _warm_up(clients[0])
        for rep in range(p.repeats):
            for listing in (False, True):
                q = replace(p, listing=listing)
                before = (cpu_seconds(gateway), cpu_seconds(instant.pid), time.process_time())
                adders, lister, start = _race(clients, lister_client, "floor", q)
                after = (cpu_seconds(gateway), cpu_seconds(instant.pid), time.process_time())
                latencies = [x for a in adders for x in a.latencies_ms]
                calls = len(latencies) + lister.passes * 2  # a pass is two pages
                # CPU milliseconds per call (CreateTask and ListTasks pages alike).
                cpu_ms = {who: (b - a) * 1000 / calls for who, a, b in
                          zip(("gateway", "instant scheduler", "clients"), before, after,
                              strict=True)}
                run: dict[str, Any] = {
                    "listing": listing, "calls": len(latencies),
                    "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                    "errors": sum(len(a.errors) for a in adders), "list_passes": lister.passes,
                    "cpu_ms_per_call": cpu_ms,
                }
                runs.append(run)
                cpu = ", ".join(f"{k} {v:.2f}" for k, v in cpu_ms.items())
                say(f"floor {rep + 1}/{p.repeats}, {'with' if listing else 'without'} the lister: "
                    f"p50 {run['p50_ms']:.1f} p99 {run['p99_ms']:.1f} ms; CPU ms per call: {cpu}")
    finally:
        instant.kill()
        instant.wait()
    return runs


def _errors_text(run: dict[str, Any]) -> str:
    if not run["error_calls"]:
        return "none"
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(run["errors"].items(), key=lambda kv: -kv[1]))
    text = kinds
    if run["errors_but_exist"]:
        text += f" ({run['errors_but_exist']} of those tasks exist"
        if run["retry_answers"]:
            answers = ", ".join(f"{n} {k}" for k, n in run["retry_answers"].items())
            text += f"; retried {sum(run['retry_answers'].values())}: {answers}"
        text += ")"
    return text


def run(quick: bool) -> Outcome:
    p = QUICK if quick else Params()
    out = Outcome("concurrent")
    total = p.clients * p.tasks_per_client
    runs: list[dict[str, Any]] = []
    with running_suite("concurrent") as suite:
        control = suite.client()
        control.create_pool(POOL, target_nodes=p.nodes, task_slots_per_node=p.slots)
        wait_nodes_ready(suite, control, POOL, p.nodes)
        clients = [suite.client() for _ in range(p.clients)]
        lister_client = suite.client(timeout=60)
        try:
            # Warm every channel (connection set-up on each hop is not what is measured).
            for c in [*clients, lister_client]:
                c.get_pool(POOL)
            for rep in range(p.repeats):
                r = _one(suite, clients, lister_client, f"concurrent-{rep}", p)
                runs.append(r)
                say(f"run {rep + 1}/{p.repeats}: {r['calls']:,} CreateTask in {r['adds_s']:.2f}s: "
                    f"p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} max {r['max_ms']:.1f} ms; "
                    f"errors: {_errors_text(r)}; {r['phantom_previous']} answers with a previous "
                    f"attempt; {r['list_passes']} list passes "
                    f"(p50 {r['list_pass_p50_ms'] or 0:.0f} ms); all completed after "
                    f"{r['until_completed_s']:.2f}s"
                    + (" TIMED OUT" if r["completion_timed_out"] or r["adds_timed_out"] else ""))
            floor = _floor(suite, clients, lister_client, p)
        finally:
            for c in [*clients, lister_client]:
                c.close()
    what = (f"{p.clients} clients × {p.tasks_per_client} CreateTask, one job, ListTasks "
            f"meanwhile, {p.nodes} × {p.slots} slots")
    reps = f"median of {len(runs)}" if len(runs) > 1 else "one run"

    def each(values: Any) -> str:
        return "runs: " + " / ".join(values) if len(runs) > 1 else ""

    def fig(k: str) -> float:
        return median([r[k] for r in runs])

    out.add("p50_ms", f"{what}: CreateTask p50 ({reps})", fig("p50_ms"), "ms", Target("<=", 10),
            each(f"{r['p50_ms']:.1f}" for r in runs))
    out.add("p99_ms", f"{what}: CreateTask p99 ({reps})", fig("p99_ms"), "ms", Target("<=", 50),
            each(f"{r['p99_ms']:.1f}" for r in runs))
    out.add("max_ms", f"{what}: CreateTask max ({reps})", fig("max_ms"), "ms", None,
            each(f"{r['max_ms']:.0f}" for r in runs))
    kinds = Counter[str]()
    for r in runs:
        kinds.update(r["errors"])
    notes = [each(str(r["error_calls"]) for r in runs)]
    notes += [f"{n:,} {k} in all" for k, n in kinds.most_common()]
    exist = sum(r["errors_but_exist"] for r in runs)
    if exist:
        notes.append(f"{exist:,} of those tasks exist")
    retried = Counter[str]()
    for r in runs:
        retried.update(r["retry_answers"])
    if retried:
        notes.append("added again: " + ", ".join(f"{n} {k}" for k, n in retried.items()))
    out.add("error_calls", f"{what}: CreateTask calls answered an error, of {total:,} ({reps})",
            fig("error_calls"), "tasks", None, "; ".join(n for n in notes if n))
    out.add("phantom_previous", f"{what}: CreateTask answers listing a previous attempt (a new "
            f"task has none) ({reps})", fig("phantom_previous"), "tasks", None,
            each(str(r["phantom_previous"]) for r in runs))
    out.add("adds_s", f"{what}: total time of the adds ({reps})", fig("adds_s"), "s", None,
            "; ".join(x for x in (each(f"{r['adds_s']:.1f}" for r in runs),
                                  "until all completed: " + " / ".join(
                                      f"{r['until_completed_s']:.1f}" for r in runs) + " s") if x)
            + "".join(f"; {r['job']}: TIMED OUT" for r in runs
                      if r["adds_timed_out"] or r["completion_timed_out"])
            + "".join(f"; {r['job']}: {r['failed']} FAILED" for r in runs if r["failed"]))
    for listing in (True, False):
        fl = [r for r in floor if r["listing"] == listing]
        how = "ListTasks meanwhile" if listing else "no listing"
        cpu = {who: median([r["cpu_ms_per_call"][who] for r in fl]) for who in fl[0]["cpu_ms_per_call"]}
        note = (each(f"{r['p50_ms']:.1f}/{r['p99_ms']:.1f}" for r in fl) + "; " if len(fl) > 1 else "")
        note += "CPU ms per call: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
        out.add(f"floor_p50_ms{'' if listing else '_alone'}",
                f"transport floor, {how}: the same CreateTask calls with an instant-answer "
                f"scheduler behind the real gateway, p50 ({reps})",
                median([r["p50_ms"] for r in fl]), "ms", None, note)
        out.add(f"floor_p99_ms{'' if listing else '_alone'}",
                f"transport floor, {how}: p99 ({reps})",
                median([r["p99_ms"] for r in fl]), "ms", None, "")
    out.series["runs"] = runs
    out.series["floor"] = floor
    out.series["params"] = {"clients": p.clients, "tasks_per_client": p.tasks_per_client,
                            "nodes": p.nodes, "slots": p.slots, "page_size": p.page_size}
    return out
