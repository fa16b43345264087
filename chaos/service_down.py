"""The pool-manager, the gateway and the storage-stager, each down for 10 s in the middle of a
job (and the storage-stager once more, for 30 s): no task fails, no output or log is lost,
nothing runs twice (issue 11, points 2 and 9).

One suite — storage on the local backend, whose signed URLs the storage-stager serves itself,
so with it down neither grants nor transfers work — one pool of 4 nodes × 4 slots, and for
each fault a job of 300 tasks. Each task sleeps 0.5 s, writes a file that its output spec
uploads, records its run in a file beside the experiment, and prints a line (its stdout,
uploaded as its log). Once a quarter of the job has completed, the service is SIGKILLed and
started again 10 s later. The client rides out the gateway's absence by asking again. A job
with no fault comes first, for the time to compare with.

Per job: tasks that failed; outputs missing from storage or wrong; stdout logs not in storage
(looked for until 60 s after the job, since a log waits for storage after its task's
result); tasks that ran more than once; the job's time (adding its tasks to the end of the
last, as the scheduler recorded it), and its ratio to the fault-free job's.
"""

from __future__ import annotations

import shlex
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.common import check_alive, running_suite, say, wait_nodes_ready
from bench.figures import Outcome, Target
from shoal.client import Client
from shoal.errors import ShoalError, StatusCode
from shoal.suite import LocalSuite

T = TypeVar("T")

FAULTS = (("pool-manager", 10.0), ("gateway", 10.0), ("storage-stager", 10.0),
          ("storage-stager", 30.0))
"""Each service and how long it stays down. The stager's 30 s outlasts the ~16 s for which
the scheduler used to retry a grant before failing the task (the code before issue 11)."""
QUICK_FAULTS = (("pool-manager", 3.0), ("gateway", 3.0), ("storage-stager", 3.0))
NODES, SLOTS = 4, 4
TASK_SECONDS = 0.5
LOGS_GRACE = 60.0
"""Seconds after a job a log may still be on its way to storage."""
PATIENCE = 120.0
"""Seconds the client keeps asking while the gateway (or what it calls) is away."""


def patient(call: Callable[[], T], what: str) -> T:
    """`call()`, asked again while it answers UNAVAILABLE (a service down), bounded."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return call()
        except ShoalError as e:
            if e.code != StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def tasks(job: str, n: int, runs: Path) -> list[dict[str, object]]:
    script = (f"sleep {TASK_SECONDS}; echo \"$SHOAL_TASK_ID\" > out.txt; "
              f"echo \"$SHOAL_TASK_ATTEMPT_ID\" >> {shlex.quote(str(runs))}/\"$SHOAL_TASK_ID\"; "
              "echo \"done $SHOAL_TASK_ID\"")
    return [{"id": f"{job}-{i:04d}", "command_line": f"/bin/sh -c {shlex.quote(script)}",
             "output_files": [f"out.txt=out/{job}/{job}-{i:04d}.txt"]} for i in range(n)]


def run_job(suite: LocalSuite, c: Client, job: str, n: int, runs: Path,
            fault: str | None, down: float) -> float:
    """Run the job, taking `fault` down for `down` seconds once a quarter has completed;
    returns the job's time in seconds: from adding its tasks to the end of its last task, as
    the scheduler recorded it (the client may see the end later: it cannot ask while the
    gateway is down)."""
    patient(lambda: c.create_job(job, pool_id="p"), "create the job")
    start = time.time()
    patient(lambda: c.add_tasks(job, tasks(job, n, runs)), "add the tasks")
    deadline = time.monotonic() + 300 + n
    faulted = False
    while True:
        counts = patient(lambda: c.get_job(job), "read the job").task_counts
        if counts.completed >= n:
            last = max(t.execution_info.end_time.ToNanoseconds() / 1e9
                       for t in patient(lambda: list(c.list_tasks(job)), "list the tasks"))
            return last - start
        if fault is not None and not faulted and counts.completed >= n // 4:
            say(f"{fault} down for {down:g} s ({counts.completed}/{n} completed)")
            suite.kill(fault)
            time.sleep(down)
            suite.restart(fault)
            faulted = True
        else:
            check_alive(suite)
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job!r}: {counts.completed}/{n} completed after "
                               f"{300 + n} s")
        time.sleep(0.1)


def stored_logs(suite: LocalSuite, job: str) -> set[str]:
    """Tasks of `job` whose stdout.txt is in storage, read from the local store's index
    (keys `{account}/logs/{job_uid}/{task}/{attempt}/stdout.txt`)."""
    db = sqlite3.connect(f"file:{suite.config.db_path('storage-stager')}?mode=ro", uri=True)
    try:
        keys = [k for (k,) in db.execute(
            "SELECT key FROM local_objects WHERE key LIKE ?", (f"%/logs/%/{job}-%/stdout.txt",))]
    finally:
        db.close()
    return {k.split("/")[-3] for k in keys}


def check_job(suite: LocalSuite, c: Client, job: str, n: int, runs: Path) -> dict[str, int]:
    counts = patient(lambda: c.get_job(job), "read the job").task_counts
    ids = [f"{job}-{i:04d}" for i in range(n)]
    stored = {o.key for o in
              patient(lambda: list(c.list_objects("out", prefix=f"{job}/")), "list outputs")}
    outputs_lost = sum(
        1 for tid in ids if f"{job}/{tid}.txt" not in stored
        or c.read_object("out", f"{job}/{tid}.txt") != f"{tid}\n".encode())
    deadline = time.monotonic() + LOGS_GRACE
    while len(logs := stored_logs(suite, job.lower())) < n and time.monotonic() < deadline:
        time.sleep(0.5)
    twice = sum(1 for tid in ids if (runs / tid).exists()
                and len((runs / tid).read_text().split()) > 1)
    return {"failed": counts.failed, "outputs lost": outputs_lost,
            "logs lost": n - len(logs), "ran twice": twice}


def run(quick: bool) -> Outcome:
    n, faults = (60, QUICK_FAULTS) if quick else (300, FAULTS)
    outcome = Outcome("service-down")
    rows: list[dict[str, object]] = []
    with running_suite("chaos-service-down") as suite:
        runs = suite.state_dir / "runs"
        runs.mkdir()
        c = suite.client()
        c.create_container("out")
        c.create_pool("p", target_nodes=NODES, task_slots_per_node=SLOTS)
        wait_nodes_ready(suite, c, "p", NODES)
        baseline = 0.0
        for fault, down in ((None, 0.0), *faults):
            job = f"{fault}-{down:g}s" if fault else "no-fault"
            say(f"job {job!r}: {n} tasks")
            seconds = run_job(suite, c, job, n, runs, fault, down)
            c = suite.client()  # a fresh channel: the gateway may have restarted
            found = check_job(suite, c, job, n, runs)
            baseline = baseline or seconds
            rows.append({"fault": job, "tasks": n, **found, "seconds": seconds})
            say(f"{job}: {found}, {seconds:.1f} s")
            if fault is None:
                outcome.add("fault_free_seconds", f"{n} tasks, no fault: job time", seconds, "s")
                continue
            what = f"{fault} down {down:g} s"
            key = f"{fault.replace('-', '_')}_{down:g}s"
            bad = sum(found.values())
            outcome.add(f"{key}.harm", f"{what}: failed + outputs lost + logs lost + ran twice",
                        bad, "tasks", Target("<=", 0),
                        note=", ".join(f"{k} {v}" for k, v in found.items()))
            outcome.add(f"{key}.ratio", f"{what}: job time against the fault-free job",
                        seconds / baseline, "×", note=f"{seconds:.1f} s")
    outcome.series["jobs"] = rows
    return outcome
