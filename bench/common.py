"""What every benchmark needs: the real suite on free ports, deadline waits, /proc readings."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from bench.figures import Outcome
from shoal.client import CHANNEL_OPTIONS, Client, TaskSpec
from shoal.cluster_config import SchedulerTiming
from shoal.suite import SERVICES, LocalSuite, tagged_processes
from shoal.v1 import job_pb2, pool_pb2, task_pb2_grpc

TRIVIAL = "/bin/true"
NODES_READY = (pool_pb2.Node.IDLE, pool_pb2.Node.RUNNING)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


class BenchError(Exception):
    """A benchmark could not measure what it set out to (a service died, a wait ran out)."""


def say(message: str) -> None:
    """Progress goes to stderr: stdout carries only the table."""
    print(f"  {message}", file=sys.stderr, flush=True)


def measured(name: str, measure: Callable[[], Outcome]) -> Outcome:
    """Run one benchmark (or experiment): its Outcome with the seconds it took and the load
    when it began (the machine is shared); an exception becomes the Outcome's error, so one
    that fails does not cost the others."""
    print(f"[{name}]", file=sys.stderr, flush=True)
    load = [round(x, 2) for x in os.getloadavg()]
    start = time.perf_counter()
    try:
        outcome = measure()
    except Exception as e:  # noqa: BLE001 - reported in the table, the others still run
        traceback.print_exc(file=sys.stderr)
        outcome = Outcome(name, error=f"{type(e).__name__}: {e}")
    outcome.seconds = time.perf_counter() - start
    outcome.series["load_average_at_start"] = load
    print(f"  ({outcome.seconds:.1f}s)", file=sys.stderr, flush=True)
    return outcome


def wait_until(check: Callable[[], T | None], what: str, timeout: float,
               every: float = 0.02) -> T:
    """Poll `check` until it returns something truthy; BenchError naming `what` at the
    deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


@contextlib.contextmanager
def running_suite(label: str, timing: SchedulerTiming | None = None,
                  parent: Path | None = None) -> Iterator[LocalSuite]:
    """Shoal's four services as real processes on free loopback ports, state in a fresh temp
    dir (under `parent` if given: a filesystem an experiment chose); stopped (with everything
    they started) however the benchmark ends. The dir is kept, with its logs, after a
    failure, and removed otherwise (an interrupted run too)."""
    directory = Path(tempfile.mkdtemp(prefix=f"shoal-bench-{label}-", dir=parent))
    suite = LocalSuite(
        directory,
        gateway_port=0,
        pool_manager_port=0,
        scheduler_port=0,
        stager_port=0,
        metrics_port=0,
        dashboard_port=0,
        log_level="warning",
        timing=timing,
    )
    failed = False
    try:
        suite.start()
        yield suite
    except Exception:
        failed = True
        for service in suite.check():
            say(f"{service} died (exit code {suite.exit_code(service)}); last lines of its "
                f"log:\n{suite.log_tail(service)}")
        raise
    finally:
        suite.stop()
        if failed:
            say(f"state and logs kept in {directory}")
        else:
            remove_state(directory)


CLEANERS = 4


def remove_state(directory: Path) -> None:
    """Remove a suite's state dir. A benchmark leaves a directory per task it ran (observe:
    120,000, with their output files), which shutil.rmtree took minutes over on this shared
    machine: `rm -rf` does the same in ~40 % of the time (20,000 tasks: 20 s against 53 s),
    and one per node directory runs them side by side."""
    start = time.perf_counter()
    rm = shutil.which("rm")
    if rm is None:
        shutil.rmtree(directory, ignore_errors=True)
        return
    nodes = [p for p in directory.glob("nodes/*/*/*") if p.is_dir() and not p.is_symlink()]
    with ThreadPoolExecutor(CLEANERS) as pool:
        list(pool.map(lambda p: subprocess.run([rm, "-rf", "--", str(p)], check=False), nodes))
    subprocess.run([rm, "-rf", "--", str(directory)], check=False)
    took = time.perf_counter() - start
    if took > 5:
        say(f"state dir removed in {took:.0f}s")


def check_alive(suite: LocalSuite) -> None:
    dead = suite.check()
    if dead:
        raise BenchError(
            f"{dead[0]} died (exit code {suite.exit_code(dead[0])}); last lines of its log:\n"
            f"{suite.log_tail(dead[0])}"
        )


def wait_nodes_ready(
    suite: LocalSuite, client: Client, pool_id: str, count: int, timeout: float = 60
) -> float:
    """Wait until `count` nodes of the pool are connected (IDLE or RUNNING); seconds taken."""
    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    while True:
        ready = sum(1 for n in client.list_nodes(pool_id) if n.state in NODES_READY)
        if ready >= count:
            return time.perf_counter() - start
        check_alive(suite)
        if time.monotonic() > deadline:
            raise BenchError(f"pool {pool_id!r}: {ready}/{count} nodes ready after {timeout:g}s")
        time.sleep(0.05)


def wait_pool_gone(client: Client, pool_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pool_id not in {p.name.rsplit("/", 1)[-1] for p in client.list_pools()}:
            return
        time.sleep(0.05)
    raise BenchError(f"pool {pool_id!r} still exists {timeout:g}s after its deletion")


@dataclass(frozen=True)
class Completion:
    seconds: float
    """From just before the first add call to the GetJob that showed every task completed
    (or to the timeout)."""
    counts: job_pb2.TaskCounts
    timed_out: bool

    def rate(self, tasks: int) -> float:
        done = tasks if not self.timed_out else self.counts.completed
        return done / self.seconds

    def note(self, tasks: int) -> str:
        parts = []
        if self.timed_out:
            parts.append(f"TIMED OUT with {self.counts.completed:,}/{tasks:,} completed")
        if self.counts.failed:
            parts.append(f"{self.counts.failed:,} FAILED")
        return "; ".join(parts)


def run_tasks(
    suite: LocalSuite,
    client: Client,
    job_id: str,
    tasks: int,
    *,
    command: str = TRIVIAL,
    poll: float = 0.02,
    timeout: float | None = None,
) -> Completion:
    """Add `tasks` copies of `command` in one BatchCreateTasks call and wait, polling GetJob,
    until all have completed. The clock starts just before the add call."""
    specs = [TaskSpec(f"t{i:07d}", command) for i in range(tasks)]
    limit = timeout if timeout is not None else 60 + tasks / 100
    start = time.perf_counter()
    client.add_tasks(job_id, specs, chunk=tasks)
    deadline = start + limit
    while True:
        counts = client.get_job(job_id).task_counts
        now = time.perf_counter()
        if counts.completed >= tasks:
            return Completion(now - start, counts, False)
        if now > deadline:
            return Completion(now - start, counts, True)
        check_alive(suite)
        time.sleep(poll)


def task_stub(suite: LocalSuite) -> tuple[grpc.Channel, task_pb2_grpc.TaskServiceStub, tuple]:
    """A bare TaskService stub on the gateway, authenticated like the client, for sending a
    request built before the clock starts (the client builds its requests inside the call)."""
    channel = grpc.insecure_channel(suite.endpoint, options=CHANNEL_OPTIONS)
    metadata = (("authorization", f"Bearer {suite.client_config.key}"),)
    return channel, task_pb2_grpc.TaskServiceStub(channel), metadata


# /proc readings of a service process


def _cpu_times(pid: int) -> tuple[float, float]:
    """(own CPU seconds of all its threads, CPU seconds of its children it has reaped)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the comm field: state is fields[0]; utime, stime, cutime, cstime are stat
    # fields 14 to 17.
    own = int(fields[11]) + int(fields[12])
    children = int(fields[13]) + int(fields[14])
    return own / CLOCK_TICKS, children / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process (all its threads) has used."""
    return _cpu_times(pid)[0]


def cpu_snapshot(suite: LocalSuite) -> dict[str, float]:
    """CPU seconds used so far by each service, by all node agents together, and by the task
    processes the agents have reaped. Two snapshots around a run show where its time went."""
    services = {s: suite.pid(s) for s in SERVICES}
    out = {s: _cpu_times(pid)[0] for s, pid in services.items() if pid is not None}
    agents = tasks = 0.0
    for pid in tagged_processes(suite.suite_id):
        if pid in services.values():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            own, children = _cpu_times(pid)
        except OSError:
            continue  # gone meanwhile
        if b"agent" in argv:  # python -m agent
            agents += own
            tasks += children
    out["agents"] = agents
    out["tasks"] = tasks
    return out


def cpu_use(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Percent of one core each part used between two snapshots."""
    return {k: round((after[k] - before.get(k, 0.0)) / seconds * 100, 1) for k in after}


def cpu_text(use: dict[str, float]) -> str:
    """`agents 93 %, tasks 46 %, job-scheduler 44 %`: the biggest first, the idle left out."""
    busy = sorted(((v, k) for k, v in use.items() if v >= 0.5), reverse=True)
    return ", ".join(f"{k} {v:.0f} %" for v, k in busy)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of the process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(rest.split()[0])
    return out


def service_pid(suite: LocalSuite, service: str) -> int:
    pid = suite.pid(service)
    if pid is None:
        raise BenchError(f"{service} is not running")
    return pid
