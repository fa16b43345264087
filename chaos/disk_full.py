"""A task fills the disk that the whole suite shares — the services' databases, the local
object store and every node root — in the middle of a job: is a result lost, does a task fail
without saying why, does a service die, and does the suite get going again by itself?

The real suite with its state directory on a tmpfs of its own (root only: the experiment
mounts it), storage on the local backend (objects land on the same filesystem), a pool of
2 nodes × 2 slots and a job of 200 tasks that each sleep 0.2 s, write a small output file
that their output spec uploads and print a line. Once a quarter of the job has completed, one
more task writes zeros until the disk is full. What follows is Shoal's to handle, with no
help: the filler fails with DISK_FULL; nodes below `node_min_free_bytes` take no tasks and
remove ended attempts' directories early (the filler's is one), so the space comes back;
the scheduler's commits wait for space instead of exiting; uploads wait for the store.

Counted: tasks of the job not completed at the end (lost); tasks that failed with no
failure_info (silent); services that exited; the filler's failure code; tasks that failed
saying the disk was full (they wrote while it was full: expected, not a fault); the job's time
against the same job without the filler.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import BenchError, check_alive, running_suite, say, wait_nodes_ready
from bench.figures import Outcome, Target
from shoal.client import Client
from shoal.cluster_config import SchedulerTiming
from shoal.suite import LocalSuite

SIZE = "400m"
MIN_FREE = 48 << 20
"""The nodes' floor: a node with less free space takes no tasks."""
NODES, SLOTS = 2, 2
TASK_SECONDS = 0.2


@contextmanager
def small_disk(size: str) -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="shoal-chaos-disk-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        where.rmdir()
        raise BenchError(f"cannot mount a tmpfs (run as root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def tasks(job: str, n: int) -> list[dict[str, object]]:
    script = (f"sleep {TASK_SECONDS}; echo \"$SHOAL_TASK_ID\" > out.txt; "
              "echo \"done $SHOAL_TASK_ID\"")
    return [{"id": f"{job}-{i:04d}", "command_line": f"/bin/sh -c {shlex.quote(script)}",
             "output_files": [f"out.txt=out/{job}/{job}-{i:04d}.txt"]} for i in range(n)]


def run_job(suite: LocalSuite, c: Client, job: str, n: int, fill: bool) -> float:
    """The job's seconds, from adding its tasks until all of them (and the filler) ended."""
    c.create_job(job, pool_id="p")
    start = time.monotonic()
    c.add_tasks(job, tasks(job, n))
    filled = False
    deadline = start + 300 + n
    while True:
        counts = c.get_job(job).task_counts
        if counts.completed >= n + filled:
            return time.monotonic() - start
        if fill and not filled and counts.completed >= n // 4:
            say(f"filling the disk ({counts.completed}/{n} completed)")
            c.add_task(job, "filler", "/bin/sh -c 'head -c 10000000000 /dev/zero > big'")
            filled = True
        check_alive(suite)
        if time.monotonic() > deadline:
            raise BenchError(f"job {job!r}: {counts.completed}/{n} completed after {300 + n} s")
        time.sleep(0.2)


def run(quick: bool) -> Outcome:
    n = 60 if quick else 200
    outcome = Outcome("disk-full")
    with small_disk(SIZE) as disk:
        with running_suite("disk-full", SchedulerTiming(node_min_free_bytes=MIN_FREE),
                           parent=disk) as suite:
            c = suite.client(timeout=60)
            c.create_container("out")
            c.create_pool("p", target_nodes=NODES, task_slots_per_node=SLOTS)
            wait_nodes_ready(suite, c, "p", NODES)
            calm = run_job(suite, c, "calm", n, fill=False)
            say(f"without the filler: {calm:.1f} s")
            full = run_job(suite, c, "full", n, fill=True)
            say(f"with the filler: {full:.1f} s")
            ended = list(c.list_tasks("full"))
            dead = suite.check()
    by_id = {t.name.rsplit("/", 1)[1]: t for t in ended}
    filler = by_id.pop("filler")
    job_tasks = list(by_id.values())
    failed = [t for t in job_tasks if t.execution_info.exit_code != 0
              or t.execution_info.failure_info.code]
    silent = [t for t in failed if not t.execution_info.failure_info.code]
    disk_full = [t for t in failed if t.execution_info.failure_info.code == "DISK_FULL"]
    lost = n - len([t for t in job_tasks if t.state == t.COMPLETED])
    code = filler.execution_info.failure_info.code or "(none)"
    outcome.add("lost", f"tasks of {n} not completed at the end", lost, "tasks",
                Target("<=", 0))
    outcome.add("silent", "tasks that failed without a failure_info", len(silent), "tasks",
                Target("<=", 0))
    outcome.add("services_died", "services that exited", len(dead), "services",
                Target("<=", 0), ", ".join(dead))
    outcome.add("filler_says_disk_full", f"the filler's failure is DISK_FULL (got {code})",
                1 if code == "DISK_FULL" else 0, "", Target(">=", 1))
    outcome.add("failed_disk_full", "job tasks that failed saying the disk was full",
                len(disk_full), "tasks", None,
                "they wrote while it was full; " + f"{len(failed) - len(disk_full)} other failures")
    outcome.add("slowdown", "the job's time with the filler ÷ without", full / calm, "×", None,
                f"{full:.1f} s against {calm:.1f} s")
    outcome.series.update(calm_s=calm, full_s=full, failed=[t.name for t in failed])
    return outcome
