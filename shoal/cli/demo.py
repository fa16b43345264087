"""`shoal demo`: Azure Batch's whole workflow end to end, on a suite started for the occasion.

Counts the primes below 2,000,000 in slices: uploads one input file per slice and the
counting program as an application package, runs one task per slice (each downloads its
input, runs the package's program, writes its count to a file that is uploaded), then
downloads every result and checks the sum against the known answer.
"""

from __future__ import annotations

import io
import shlex
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from shoal.cli.common import describe, err, out
from shoal.cli.tasks import wait_progress
from shoal.cli.up import Stop, serve_until_stopped, stop_on_signals
from shoal.client import Client, TaskSpec, last_segment
from shoal.errors import ShoalError, StatusCode
from shoal.specs import OutputFile, PackageReference, ResourceFile
from shoal.suite import LocalSuite, SuiteError
from shoal.v1 import job_pb2, pool_pb2, task_pb2

LIMIT = 2_000_000
PRIMES_BELOW_LIMIT = 148_933
POOL = "demo"
JOB = "primes"
INPUTS = "demo-inputs"
APP = "primes"
APP_VERSION = "1.0"
SLOTS = 2
FAILURES_SHOWN = 3

# The application package's program. Counts the primes in the slice [LO, HI) its input file
# names: sieve the small primes up to sqrt(HI), then strike their multiples out of the slice.
# Plain Python, so the demo needs nothing installed.
SIEVE = """\
import math, os, sys
lo, hi = map(int, open(sys.argv[1]).read().split())
r = math.isqrt(hi - 1) if hi > 1 else 0
small = bytearray([1]) * (r + 1)
primes = []
for i in range(2, r + 1):
    if small[i]:
        primes.append(i)
        small[i * i :: i] = bytes(len(range(i * i, r + 1, i)))
seg = bytearray([1]) * (hi - lo)
for i in range(lo, min(2, hi)):
    seg[i - lo] = 0
for p in primes:
    a = max(p * p, -(-lo // p) * p)
    seg[a - lo :: p] = bytes(len(range(a, hi, p)))
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
with open(sys.argv[2], "w") as out:
    out.write(f"{sum(seg)}\\n")
print(f"primes in [{lo}, {hi}): {sum(seg)}")
"""


class DemoFailed(Exception):
    pass


def slices(count: int, limit: int = LIMIT) -> list[tuple[int, int]]:
    """`count` contiguous [lo, hi) slices covering [0, limit)."""
    return [(i * limit // count, (i + 1) * limit // count) for i in range(count)]


def task_ids(count: int) -> list[str]:
    width = len(str(count - 1))
    return [f"slice-{i:0{width}d}" for i in range(count)]


def package() -> bytes:
    """The application package: a zip holding the counting program."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("count_primes.py", SIEVE)
    return buf.getvalue()


def prime_tasks(count: int, results: str) -> list[TaskSpec]:
    # No shell runs a command line: /bin/sh -c expands the package's variable.
    run = f'{shlex.quote(sys.executable)} "$SHOAL_APP_PACKAGE_PRIMES/count_primes.py" slice.txt out/count.txt'
    return [
        TaskSpec(
            id=task_id,
            command_line=shlex.join(["/bin/sh", "-c", run]),
            display_name=f"primes in [{lo:,}, {hi:,})",
            resource_files=[ResourceFile.from_object(INPUTS, f"slices/{task_id}.txt", "slice.txt")],
            output_files=[OutputFile("out/count.txt", results, path=f"{task_id}.txt",
                                     upload_condition="success")],
        )
        for task_id, (lo, hi) in zip(task_ids(count), slices(count), strict=True)
    ]


def _exists_ok(call: Callable[[], object]) -> None:
    """Create something a kept state dir may hold from an earlier demo."""
    try:
        call()
    except ShoalError as e:
        if e.code != StatusCode.ALREADY_EXISTS:
            raise


def _upload_inputs(client: Client, count: int) -> None:
    _exists_ok(lambda: client.create_container(INPUTS))
    with Progress(TextColumn("[bold]uploading inputs"), BarColumn(), MofNCompleteColumn(),
                  console=err, transient=True) as progress:
        bar = progress.add_task("upload", total=count)
        for task_id, (lo, hi) in zip(task_ids(count), slices(count), strict=True):
            client.upload_object(INPUTS, f"slices/{task_id}.txt", f"{lo} {hi}\n".encode())
            progress.advance(bar)
    _exists_ok(lambda: client.create_application(APP, display_name="prime counter"))
    _exists_ok(lambda: client.upload_application_version(APP, APP_VERSION, package(), format="zip"))
    client.set_default_version(APP, APP_VERSION)


def _create_pool(client: Client, nodes: int) -> None:
    try:
        client.create_pool(
            POOL, target_nodes=nodes, task_slots_per_node=SLOTS, display_name="shoal demo",
            application_package_references=[PackageReference(APP)],
        )
    except ShoalError as e:
        if e.code != StatusCode.ALREADY_EXISTS:
            raise
        # A kept state dir from an earlier demo: reuse its pool.
        client.resize_pool(POOL, nodes)


def _create_job(client: Client) -> str:
    # Bounded: a state dir holds few earlier demo jobs.
    for n in range(1, 100):
        job_id = JOB if n == 1 else f"{JOB}-{n}"
        try:
            client.create_job(job_id, pool_id=POOL, on_all_tasks_complete="terminate_job")
            return job_id
        except ShoalError as e:
            if e.code != StatusCode.ALREADY_EXISTS:
                raise
    raise DemoFailed("too many earlier demo jobs in this state dir; use a fresh one")


class ReadyNodes:
    """How many of the pool's nodes are ready (IDLE or RUNNING), kept from the pool's node
    changes as they happen, in a thread of its own beside the job's watch."""

    READY = (pool_pb2.Node.IDLE, pool_pb2.Node.RUNNING)

    def __init__(self, client: Client, pool_id: str, on_change: Callable[[], None]) -> None:
        self.count = 0
        self._states: dict[str, int] = {}
        self._on_change = on_change
        self._watch = client.watch_nodes(pool_id, reconnect_for=0)
        self._thread = threading.Thread(target=self._follow, daemon=True, name="ready-nodes")

    def _follow(self) -> None:
        try:
            for e in self._watch:
                if e.type == pool_pb2.NodeEvent.DELETED:
                    self._states.pop(e.node.name, None)
                else:
                    self._states[e.node.name] = e.node.state
                self.count = sum(1 for s in self._states.values() if s in self.READY)
                self._on_change()
        except ShoalError:
            pass  # the job's watch reports what went wrong

    def __enter__(self) -> ReadyNodes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._watch.close()
        self._thread.join(timeout=5)


def _run(suite: LocalSuite, client: Client, job_id: str, total: int, timeout: float) -> job_pb2.Job:
    nodes_target = client.get_pool(POOL).target_nodes
    progress = wait_progress("{task.description}")
    bar = progress.add_task("tasks", total=total, detail="")
    counts = job_pb2.TaskCounts()

    def show() -> None:
        progress.update(bar, completed=counts.completed, detail=(
            f"nodes ready {ready.count}/{nodes_target} · {counts.running} running · "
            f"{counts.failed} failed"))

    # Both follow changes as they happen (the watch API): nothing is polled. A service that
    # dies ends the job's watch at once (no reconnecting), and the suite says which.
    ready = ReadyNodes(client, POOL, show)
    try:
        with progress, ready, client.watch_job(job_id, job_only=True, timeout=timeout,
                                               reconnect_for=0) as events:
            for e in events:
                job = e.job
                counts = job.task_counts
                show()
                if job.state == job_pb2.Job.COMPLETED or counts.completed >= total:
                    return job
    except ShoalError as e:
        dead = suite.check()
        if dead:
            raise DemoFailed(
                f"{', '.join(dead)} died; last lines of its log:\n{suite.log_tail(dead[0])}"
            ) from None
        if e.code != StatusCode.DEADLINE_EXCEEDED:
            raise
    raise DemoFailed(
        f"gave up after {timeout:g}s with {counts.completed} of {total} tasks done; "
        f"see the logs in {suite.logs_dir}"
    )


def _combine(
    client: Client, job_id: str, results: str, total: int
) -> tuple[int, Counter[str], list[task_pb2.Task]]:
    """Sum of the counts in the result files, tasks per node, and the failed tasks."""
    per_node: Counter[str] = Counter()
    failed: list[task_pb2.Task] = []
    for t in client.list_tasks(job_id):
        per_node[last_segment(t.execution_info.node) or "?"] += 1
        if t.execution_info.result != task_pb2.TaskExecutionInfo.SUCCESS:
            failed.append(t)
    if failed:
        return 0, per_node, failed
    primes = 0
    with tempfile.TemporaryDirectory(prefix="shoal-demo-results-") as folder, Progress(
        TextColumn("[bold]downloading results"), BarColumn(), MofNCompleteColumn(),
        console=err, transient=True,
    ) as progress:
        bar = progress.add_task("download", total=total)
        for task_id in task_ids(total):
            path = Path(folder) / f"{task_id}.txt"
            client.download_object(results, f"{task_id}.txt", path)
            text = path.read_text().strip()
            try:
                primes += int(text)
            except ValueError:
                raise DemoFailed(f"{results}/{task_id}.txt holds {text[:80]!r}, not a count") from None
            progress.advance(bar)
    return primes, per_node, failed


def _explain_failures(client: Client, job_id: str, failed: list[task_pb2.Task]) -> None:
    shown = f"; the first {FAILURES_SHOWN}" if len(failed) > FAILURES_SHOWN else ""
    err.print(f"[bold red]{len(failed)} of the tasks failed[/]{shown}:")
    for t in failed[:FAILURES_SHOWN]:
        info = t.execution_info
        why = info.failure_info.message or (
            f"exit code {info.exit_code}" if info.HasField("exit_code") else "no exit code"
        )
        err.print(f"  {last_segment(t.name)}: {why}", markup=False)
        try:
            stderr = client.read_task_file(job_id, last_segment(t.name), "stderr.txt")
        except ShoalError:
            continue
        for line in stderr.decode(errors="replace").strip().splitlines()[-5:]:
            err.print(f"    {line}", markup=False)


def run_demo(suite: LocalSuite, nodes: int, tasks: int, timeout: float) -> bool:
    err.print(f"[bold]1.[/] starting Shoal's four services in {suite.state_dir} ...")
    suite.start()
    err.print(f"   gateway listening on {suite.endpoint}; logs in {suite.logs_dir}")
    with suite.client() as client:
        err.print(
            f"[bold]2.[/] uploading {tasks} input files to container {INPUTS!r} and the "
            f"counting program as application package {APP!r} {APP_VERSION}"
        )
        _upload_inputs(client, tasks)
        err.print(
            f"[bold]3.[/] creating pool {POOL!r}: {nodes} local nodes × {SLOTS} task slots, "
            f"each installs {APP!r} once"
        )
        _create_pool(client, nodes)
        job_id = _create_job(client)
        results = f"results-{job_id}"
        _exists_ok(lambda: client.create_container(results))
        err.print(
            f"[bold]4.[/] adding {tasks} tasks to job {job_id!r} in one call: each downloads "
            f"its slice of [0, {LIMIT:,}), counts its primes, and its count is uploaded to "
            f"container {results!r}"
        )
        started = time.monotonic()
        client.add_tasks(job_id, prime_tasks(tasks, results))
        err.print("[bold]5.[/] running them in parallel on the pool's nodes")
        _run(suite, client, job_id, tasks, timeout)
        wall = time.monotonic() - started
        err.print("[bold]6.[/] downloading every result file and adding the counts")
        primes, per_node, failed = _combine(client, job_id, results, tasks)
        if failed:
            _explain_failures(client, job_id, failed)
            return False
    ok = primes == PRIMES_BELOW_LIMIT
    if ok:
        out.print(f"[bold green]primes below {LIMIT:,}: {primes} (checked)[/]")
    else:
        out.print(f"[bold red]primes below {LIMIT:,}: {primes}, expected {PRIMES_BELOW_LIMIT}[/]")
    out.print(f"{tasks} tasks on {len(per_node)} nodes in {wall:.1f}s ({tasks / wall:.0f} tasks/s)")
    for node_id, n in sorted(per_node.items()):
        out.print(f"  {node_id}: {n} tasks")
    return ok


@click.command("demo")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State directory (default: a fresh temporary one).",
)
@click.option("--nodes", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--tasks", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--keep", is_flag=True, help="Keep Shoal running afterwards, until Ctrl-C.")
@click.option(
    "--timeout", type=click.FloatRange(min=1), default=600, show_default=True, help="Seconds."
)
def demo(state_dir: Path | None, nodes: int, tasks: int, keep: bool, timeout: float) -> None:
    """Run Azure Batch's workflow end to end: inputs and an application package uploaded, a
    parallel job that counts the primes below 2,000,000, its results downloaded and checked."""
    temporary = state_dir is None
    directory = Path(tempfile.mkdtemp(prefix="shoal-demo-")) if state_dir is None else state_dir
    suite = LocalSuite(
        directory, gateway_port=0, pool_manager_port=0, scheduler_port=0, stager_port=0,
        metrics_port=0, dashboard_port=0,
    )
    ok = False
    interrupted = False
    with stop_on_signals():
        try:
            ok = run_demo(suite, nodes, tasks, timeout)
            if keep:
                err.print(_keep_hint(suite))
                serve_until_stopped(suite)
        except (KeyboardInterrupt, Stop):
            interrupted = True
            err.print("\ninterrupted; stopping Shoal ...")
        except DemoFailed as e:
            err.print(f"error: {e}", markup=False)
        except SuiteError as e:
            err.print(f"error: {e.summary}", markup=False)
            if e.log_tail:
                err.print(e.log_tail, markup=False)
        except ShoalError as e:
            err.print(f"error: {describe(e, suite.endpoint)}", markup=False)
        finally:
            suite.stop()
    if ok and temporary and not keep:
        shutil.rmtree(directory, ignore_errors=True)
    elif not ok:
        err.print(f"state and logs kept in {directory}")
    raise click.exceptions.Exit(130 if interrupted else 0 if ok else 1)


def _keep_hint(suite: LocalSuite) -> str:
    return (
        f"\nShoal keeps running at {suite.endpoint}. From another terminal:\n"
        f"  export SHOAL_STATE_DIR={suite.state_dir}\n"
        f"  shoal pool show {POOL}; shoal node list {POOL}; shoal job list\n"
        f"  shoal task list {JOB} --limit 5; shoal storage ls results-{JOB}\n"
        "Press Ctrl-C to stop."
    )
