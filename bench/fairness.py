"""Fairness: one account floods the gateway while another does ordinary work.

Account B makes a steady stream of calls — CreateTask and GetJob in turn, one every
`interval` seconds, each waiting for its answer — first alone (`quiet_seconds`), then while
account A floods (`flood_seconds`): `adders` threads each sending BatchCreateTasks of
`batch` tasks back to back, `uploaders` threads each uploading `upload_kib` KiB objects back
to back, and `callers` threads calling GetJob back to back. Both accounts' jobs are on pools
without nodes, so nothing runs: what is measured is the gateway and the services answering.

The flood runs in a child process (its threads would otherwise share the measuring process's
GIL and slow B's client, not the services). The suite runs with the default limits
(`shoal.cluster_config.Limits`): A has more threads than its calls and streams allow, so part
of its flood is refused (RESOURCE_EXHAUSTED), counted by reason.

Each run starts a fresh suite; `runs` runs (3, 1 with --quick). Figures, the median over the
runs (each run's in the note): B's p50 / p99 (nearest rank) quiet and under the flood (target
p99 ≤ 100 ms under the flood), B's errors, A's calls answered and refused by reason, and the
gateway's peak RSS.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from bench.common import (
    TRIVIAL,
    BenchError,
    cpu_seconds,
    cpu_snapshot,
    cpu_text,
    cpu_use,
    memory_kib,
    running_suite,
    say,
    service_pid,
)
from bench.figures import Outcome, Target, median, percentile
from shoal.client import Client
from shoal.errors import ShoalError
from shoal.suite import accounts_admin


@dataclass(frozen=True)
class Params:
    quiet_seconds: float = 10.0
    flood_seconds: float = 15.0
    interval: float = 0.02
    """Seconds between the starts of B's calls (B waits for each answer)."""
    adders: int = 8
    batch: int = 1000
    uploaders: int = 40
    upload_kib: int = 256
    callers: int = 80
    max_flood_tasks: int = 400_000
    """The adders stop after this many tasks are accepted, whatever the time."""
    runs: int = 3


QUICK = Params(quiet_seconds=3.0, flood_seconds=4.0, adders=2, batch=200, uploaders=36,
               upload_kib=64, callers=70, max_flood_tasks=20_000, runs=1)


def _key(e: ShoalError) -> str:
    return f"{e.code.name}/{e.reason}" if e.reason else e.code.name


def _flood(endpoint: str, key: str, p: Params, results: Any) -> None:
    """Account A's flood, in its own process; puts {"calls": ..., "answers": {...}}."""
    answers: Counter[str] = Counter()
    lock = threading.Lock()
    until = time.perf_counter() + p.flood_seconds
    added = [0]

    def note(what: str) -> None:
        with lock:
            answers[what] += 1

    def adder(i: int) -> None:
        c = Client(endpoint, key, timeout=60)
        n = 0
        while time.perf_counter() < until and added[0] < p.max_flood_tasks:
            specs = [{"id": f"a{i}-{n}-{k}", "command_line": TRIVIAL} for k in range(p.batch)]
            n += 1
            try:
                c.add_tasks("flood", specs, chunk=p.batch)
                with lock:
                    added[0] += p.batch
                note("BatchCreateTasks OK")
            except ShoalError as e:
                note(f"BatchCreateTasks {_key(e)}")
        c.close()

    def uploader(i: int) -> None:
        c = Client(endpoint, key, timeout=60)
        data = bytes(p.upload_kib * 1024)
        n = 0
        while time.perf_counter() < until:
            try:
                c.upload_object("flood", f"u{i}/{n % 4}", data)
                note("UploadObject OK")
            except ShoalError as e:
                note(f"UploadObject {_key(e)}")
            n += 1
        c.close()

    def caller() -> None:
        c = Client(endpoint, key, timeout=60)
        while time.perf_counter() < until:
            try:
                c.get_job("flood")
                note("GetJob OK")
            except ShoalError as e:
                note(f"GetJob {_key(e)}")
        c.close()

    threads = [threading.Thread(target=adder, args=(i,)) for i in range(p.adders)]
    threads += [threading.Thread(target=uploader, args=(i,)) for i in range(p.uploaders)]
    threads += [threading.Thread(target=caller) for _ in range(p.callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(p.flood_seconds + 120)
    results.put({"answers": dict(answers), "tasks_added": added[0]})


def _steady(client: Client, seconds: float, p: Params, prefix: str) -> dict[str, Any]:
    """B's calls for `seconds`: latencies (ms) and errors by kind."""
    latencies: list[float] = []
    by_call: dict[str, list[float]] = {"CreateTask": [], "GetJob": []}
    errors: Counter[str] = Counter()
    end = time.perf_counter() + seconds
    n = 0
    next_start = time.perf_counter()
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        try:
            if n % 2:
                client.get_job("steady")
            else:
                client.add_task("steady", f"{prefix}-{n}", TRIVIAL)
        except ShoalError as e:
            errors[_key(e)] += 1
        latencies.append((time.perf_counter() - t0) * 1000)
        by_call["GetJob" if n % 2 else "CreateTask"].append(latencies[-1])
        n += 1
        next_start += p.interval
        time.sleep(max(0.0, next_start - time.perf_counter()))
    return {"calls": len(latencies), "latencies_ms": latencies, "errors": dict(errors),
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies),
            "p99_ms_by_call": {k: percentile(v, 99) for k, v in by_call.items() if v}}


def _once(p: Params, n: int) -> dict[str, Any]:
    """One run on a fresh suite: B quiet, then B while A floods."""
    with running_suite("fairness") as suite:
        gateway = service_pid(suite, "gateway")
        key_a = accounts_admin(suite.config_path, "create", "--account", "flooder")
        key_b = accounts_admin(suite.config_path, "create", "--account", "steady")
        a = Client(suite.endpoint, key_a)
        b = Client(suite.endpoint, key_b)
        for c, job in ((a, "flood"), (b, "steady")):
            c.create_pool("empty", target_nodes=0)
            c.create_job(job, pool_id="empty")
        a.create_container("flood")
        b.get_job("steady")  # the channel is warm before anything is measured
        quiet = _steady(b, p.quiet_seconds, p, "quiet")
        say(f"run {n}: quiet: {quiet['calls']} calls, p50 {quiet['p50_ms']:.1f} p99 "
            f"{quiet['p99_ms']:.1f} ms")
        rss_before = memory_kib(gateway)["VmRSS"]
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        flood = ctx.Process(target=_flood, args=(suite.endpoint, key_a, p, results), daemon=True)
        flood.start()
        try:
            time.sleep(min(1.0, p.flood_seconds / 4))  # the flood under way
            cpu_before, flood_cpu, t0 = cpu_snapshot(suite), cpu_seconds(flood.pid or 0), time.perf_counter()
            loud = _steady(b, p.flood_seconds - min(1.0, p.flood_seconds / 4), p, "flood")
            elapsed = time.perf_counter() - t0
            cpu = cpu_use(cpu_before, cpu_snapshot(suite), elapsed)
            cpu["flooding client"] = round((cpu_seconds(flood.pid or 0) - flood_cpu) / elapsed * 100, 1)
            try:
                flooded = results.get(timeout=p.flood_seconds + 180)
            except Exception as e:  # noqa: BLE001 - queue.Empty: the flood never reported
                raise BenchError("the flooding process did not report") from e
        finally:
            flood.join(10)
            if flood.is_alive():
                flood.kill()
        peak = memory_kib(gateway)["VmHWM"]
        a.close()
        b.close()
    answers: dict[str, int] = flooded["answers"]
    say(f"run {n}: flood: B {loud['calls']} calls, p50 {loud['p50_ms']:.1f} p99 "
        f"{loud['p99_ms']:.1f} ms (by call {loud['p99_ms_by_call']}), errors "
        f"{loud['errors'] or 'none'}; A: {answers}; CPU: {cpu_text(cpu)}")
    return {"quiet": {k: v for k, v in quiet.items() if k != "latencies_ms"},
            "flood": {k: v for k, v in loud.items() if k != "latencies_ms"},
            "flooder": flooded, "cpu": cpu, "peak_kib": peak, "rss_before_kib": rss_before}


def run(quick: bool) -> Outcome:
    p = QUICK if quick else Params()
    out = Outcome("fairness")
    runs = [_once(p, n + 1) for n in range(p.runs)]

    def figure(part: str, key: str) -> tuple[float, str]:
        values = [r[part][key] for r in runs]
        return median(values), "runs: " + ", ".join(f"{v:.1f}" for v in values)

    what = (f"B's CreateTask/GetJob every {p.interval * 1000:.0f} ms while A floods "
            f"({p.adders} × BatchCreateTasks of {p.batch:,}, {p.uploaders} × {p.upload_kib} KiB "
            f"uploads, {p.callers} × GetJob)")
    calls = [r["flood"]["calls"] for r in runs]
    for pct in ("p50", "p99"):
        value, note = figure("quiet", f"{pct}_ms")
        out.add(f"quiet_{pct}_ms", f"B's calls with no flood: {pct}", value, "ms", None, note)
    value, note = figure("flood", "p50_ms")
    out.add("flood_p50_ms", f"{what}: p50", value, "ms", None,
            f"{note}; B's calls per run {calls}")
    value, note = figure("flood", "p99_ms")
    out.add("flood_p99_ms", f"{what}: p99", value, "ms", Target("<=", 100), note)
    errors: Counter[str] = Counter()
    for r in runs:
        errors.update(r["flood"]["errors"])
    out.add("flood_errors", "B's calls answered an error during the floods",
            sum(errors.values()), "calls", None, ", ".join(f"{n} {k}" for k, n in errors.items()))
    answers: Counter[str] = Counter()
    for r in runs:
        answers.update(r["flooder"]["answers"])
    refused = {k: n for k, n in answers.items() if "RESOURCE_EXHAUSTED" in k}
    ok = sum(n for k, n in answers.items() if k.endswith(" OK"))
    out.add("a_refused", "A's flood calls refused (RESOURCE_EXHAUSTED), all runs",
            sum(refused.values()), "calls", None,
            f"{ok:,} answered OK, {sum(r['flooder']['tasks_added'] for r in runs):,} tasks "
            "added; " + ", ".join(f"{n:,} {k}" for k, n in sorted(refused.items())))
    gateway_cpu = [r["cpu"].get("gateway", 0.0) for r in runs]
    out.add("flood_gateway_cpu", "gateway CPU during the flood", median(gateway_cpu),
            "% of a core", None, cpu_text(runs[-1]["cpu"]) + " (last run)")
    out.add("gateway_peak_rss_mib", "gateway peak RSS over a run",
            max(r["peak_kib"] for r in runs) / 1024, "MiB", None,
            f"{runs[0]['rss_before_kib'] / 1024:.0f} MiB before the flood")
    out.series["runs"] = runs
    out.series["params"] = asdict(p)
    return out
