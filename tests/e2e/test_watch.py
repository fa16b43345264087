"""The watch API against the real suite, through the gateway: a job's changes in order; a
client that loses its stream (its channel killed, the gateway restarted) resumes with neither
gaps nor repeats; a revision too old or from before a scheduler restart gets the documented
error; accounts see only their own; a reader that stops reading is cut off while the
scheduler goes on; a pool's nodes as they come and go; `shoal task wait` and `shoal job
watch` follow the watch."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator

import grpc
import pytest
from click.testing import CliRunner

from gateway.accounts import create_account
from shoal import Client, ShoalError
from shoal.cli.main import cli
from shoal.cluster_config import WatchConfig
from shoal.suite import LocalSuite
from shoal.v1 import job_pb2, job_pb2_grpc, pool_pb2, task_pb2
from tests.support import PY, running_suite, wait_for
from tests.watch_support import LocalCopy, assert_whole_history, comparable

JobEvent = job_pb2.JobEvent
NodeEvent = pool_pb2.NodeEvent
HISTORY = 400
WATCH = WatchConfig(history=HISTORY, progress_interval=0.5)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuite]:
    """One suite for the tests that don't restart anything, with a short history and quick
    progress messages."""
    with running_suite(tmp_path_factory.mktemp("watch") / "state", WATCH) as s:
        c = s.client()
        c.create_pool("p", target_nodes=2, task_slots_per_node=4)
        c.create_pool("idle", target_nodes=0)  # tasks added to its jobs stay ACTIVE
        yield s


def tasks(n: int, command: str = "true", prefix: str = "t") -> list[dict[str, str]]:
    return [{"id": f"{prefix}{i:02}", "command_line": command} for i in range(n)]


def ids(n: int, prefix: str = "t") -> list[str]:
    return [f"{prefix}{i:02}" for i in range(n)]


def follow(events: Iterator[job_pb2.JobEvent], into: list[job_pb2.JobEvent]) -> threading.Thread:
    """Read a watch in a thread until its job completes."""
    def run() -> None:
        for e in events:
            into.append(e)
            if e.HasField("job") and e.job.state == job_pb2.Job.COMPLETED:
                return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_job_is_followed_in_order_and_a_new_channel_resumes_with_no_gap_or_repeat(
    ws: LocalSuite,
) -> None:
    a = ws.client()
    a.create_job("order", pool_id="p", on_all_tasks_complete="terminate_job")
    first: list[job_pb2.JobEvent] = []
    watch = a.watch_job("order", timeout=120)
    first.append(next(watch))  # CURRENT: the job as it is, with the revision to go on from
    assert first[0].type == JobEvent.CURRENT and first[0].job.name == "jobs/order"
    a.add_tasks("order", tasks(30, shlex.join([PY, "-c", "import time; time.sleep(0.05)"])))
    for e in watch:
        first.append(e)
        if len(first) == 40:
            break
    resume_at = watch.revision
    a.close()  # the client's channel dies with its stream open
    b = ws.client()
    rest: list[job_pb2.JobEvent] = []
    for e in b.watch_job("order", resume_at, timeout=120):
        rest.append(e)
        if e.HasField("job") and e.job.state == job_pb2.Job.COMPLETED:
            break
    assert rest[0].revision > resume_at
    both = first + rest
    assert_whole_history(both, ids(30))
    copy = LocalCopy()
    for e in both:
        copy.apply(e)
    listed = {t.name: comparable(t) for t in b.list_tasks("order")}
    assert {n: comparable(t) for n, t in copy.tasks.items()} == listed
    assert copy.job.task_counts == b.get_job("order").task_counts


def test_list_then_watch_from_the_lists_revision_misses_nothing(ws: LocalSuite) -> None:
    c = ws.client()
    c.create_job("listed", pool_id="p")
    c.add_tasks("listed", tasks(5, "true", "a"))
    page = c._call(c._tasks.ListTasks, task_pb2.ListTasksRequest(parent="jobs/listed"))
    assert page.revision > 0
    copy = LocalCopy()
    for t in page.tasks:
        copy.tasks[t.name] = t
    c.add_tasks("listed", tasks(5, "true", "b"))
    for e in c.watch_job("listed", page.revision, timeout=60):
        copy.apply(e)
        if (e.HasField("job") and e.job.task_counts.completed == 10
                and len(copy.tasks) == 10
                and all(t.state == task_pb2.Task.COMPLETED for t in copy.tasks.values())):
            break
    listed = {t.name: comparable(t) for t in c.list_tasks("listed")}
    assert {n: comparable(t) for n, t in copy.tasks.items()} == listed


def test_a_watcher_sees_only_its_own_account(ws: LocalSuite) -> None:
    mine = ws.client()
    key = create_account(ws.config.db_path("gateway"), "other", ws.config.secret)
    theirs = Client(ws.endpoint, key)
    theirs.create_pool("p", target_nodes=0)
    for c in (mine, theirs):
        c.create_job("iso", pool_id="p")
    my_watch = mine.watch_job("iso", timeout=60)
    their_watch = theirs.watch_job("iso", timeout=60)
    assert next(my_watch).type == next(their_watch).type == JobEvent.CURRENT
    mine.add_tasks("iso", tasks(3, "true", "mine"))
    theirs.add_tasks("iso", tasks(2, "true", "theirs"))
    seen_mine: list[str] = []
    for e in my_watch:
        if e.HasField("task") and e.type == JobEvent.ADDED:
            seen_mine.append(e.task.name)
        if len(seen_mine) == 3:
            break
    seen_theirs: list[str] = []
    for e in their_watch:
        if e.HasField("task"):
            seen_theirs.append(e.task.name)
        if len(seen_theirs) == 2:
            break
    assert seen_mine == [f"jobs/iso/tasks/mine{i:02}" for i in range(3)]
    assert seen_theirs == [f"jobs/iso/tasks/theirs{i:02}" for i in range(2)]
    my_watch.close()
    their_watch.close()
    # Another account's job of an id it does not have is NOT_FOUND, as for any call.
    mine.create_job("only-mine", pool_id="idle")
    with pytest.raises(ShoalError) as e:
        next(theirs.watch_job("only-mine"))
    assert (e.value.code.name, e.value.reason) == ("NOT_FOUND", "JOB_NOT_FOUND")


def test_a_revision_no_longer_kept_is_refused_with_the_documented_error(ws: LocalSuite) -> None:
    c = ws.client()
    c.create_job("old", pool_id="idle")
    old = c.get_job("old").revision
    c.add_tasks("old", tasks(HISTORY + 10))  # more changes than the history keeps
    with pytest.raises(ShoalError) as e:
        next(c.watch_job("old", old))
    assert (e.value.code.name, e.value.reason, e.value.field) == (
        "OUT_OF_RANGE", "REVISION_COMPACTED", "from_revision")
    assert "list again" in e.value.message
    with pytest.raises(ShoalError) as e:
        next(c.watch_job("old", c.get_job("old").revision + 1000))
    assert (e.value.code.name, e.value.field) == ("INVALID_ARGUMENT", "from_revision")


def test_a_reader_that_stops_reading_is_cut_off_and_the_scheduler_goes_on(
    ws: LocalSuite,
) -> None:
    c = ws.client()
    c.create_job("slow", pool_id="idle")
    channel = grpc.insecure_channel(ws.endpoint)
    stub = job_pb2_grpc.JobServiceStub(channel)
    md = (("authorization", f"Bearer {ws.client_config.key}"),)
    call = stub.WatchJob(job_pb2.WatchJobRequest(name="jobs/slow"), metadata=md, timeout=120)
    assert next(call).events[0].type == JobEvent.CURRENT
    # The reader stops reading. Tasks with long command lines: far more than the history
    # and than what the transports between here and the scheduler can hold.
    long = "true " + "x" * 2000
    for batch in range(10):
        assert c.add_tasks("slow", tasks(1000, long, f"b{batch}-")) == 1000
    # Everything else goes on meanwhile: the scheduler never waits for a watcher.
    assert c.get_job("slow").task_counts.active == 10_000
    received = 0
    with pytest.raises(grpc.RpcError) as e:
        for r in call:
            received += len(r.events)
    err = ShoalError.from_rpc_error(e.value)
    assert (err.code.name, err.reason) == ("OUT_OF_RANGE", "REVISION_COMPACTED"), err
    assert received < 10_000  # cut off, not buffered to the end
    channel.close()
    c.delete_job("slow")


def test_a_pools_nodes_are_followed_as_they_come_and_go(ws: LocalSuite) -> None:
    c = ws.client()
    c.create_pool("grow", target_nodes=0)
    seen: list[tuple[int, str, int]] = []
    with c.watch_nodes("grow", timeout=120) as events:
        c.resize_pool("grow", 2)
        for e in events:
            seen.append((e.type, e.node.name.rsplit("/", 1)[-1], e.node.state))
            idle = {n for t, n, s in seen if s == pool_pb2.Node.IDLE}
            gone = {n for t, n, s in seen if t == NodeEvent.DELETED}
            if len(idle) == 2 and not gone and e.node.state == pool_pb2.Node.IDLE:
                c.resize_pool("grow", 0)
            if len(gone) == 2:
                break
    added = [n for t, n, s in seen if t == NodeEvent.ADDED]
    assert len(added) == 2
    for node in added:
        mine = [(t, s) for t, n, s in seen if n == node]
        assert mine[0] == (NodeEvent.ADDED, pool_pb2.Node.STARTING)
        assert (NodeEvent.MODIFIED, pool_pb2.Node.IDLE) in mine
        assert mine[-1][0] == NodeEvent.DELETED
        assert mine.index((NodeEvent.MODIFIED, pool_pb2.Node.IDLE)) < len(mine) - 1


def run_cli(suite: LocalSuite, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["--endpoint", suite.endpoint, "--key", suite.client_config.key, *args],
        env={"SHOAL_DEBUG": ""})
    return result.exit_code, result.stdout, result.stderr


def test_task_wait_and_job_watch_follow_the_job_until_its_tasks_complete(ws: LocalSuite) -> None:
    c = ws.client()
    c.create_job("cli", pool_id="p", on_all_tasks_complete="terminate_job")
    c.add_tasks("cli", [*tasks(3, shlex.join([PY, "-c", "import time; time.sleep(0.3)"])),
                        {"id": "bad", "command_line": "false"}])
    code, _, stderr = run_cli(ws, "task", "wait", "cli", "t00", "t02", "--timeout", "60")
    assert code == 0, stderr
    assert "all 2 tasks waited for succeeded" in stderr
    assert all(c.get_task("cli", t).state == task_pb2.Task.COMPLETED for t in ("t00", "t02"))
    code, _, stderr = run_cli(ws, "task", "wait", "cli", "--timeout", "60")
    assert code == 1 and stderr.endswith("error: 1 of 4 tasks failed: bad\n"), stderr
    # The job has completed: its watch starts with it as it is, and ends there.
    code, stdout, stderr = run_cli(ws, "job", "watch", "cli", "-o", "json")
    assert code == 0, stderr
    (only,) = [json.loads(line) for line in stdout.splitlines()]
    assert (only["type"], only["job"]["state"]) == ("CURRENT", "COMPLETED")
    code, _, stderr = run_cli(ws, "task", "wait", "cli", "nope")
    assert code == 1 and "TASK_NOT_FOUND" in stderr


def test_a_summary_watch_brings_a_busy_jobs_latest_state_to_its_end(ws: LocalSuite) -> None:
    c = ws.client()
    c.create_job("summed", pool_id="p", on_all_tasks_complete="terminate_job")
    full: list[job_pb2.JobEvent] = []
    summary: list[job_pb2.JobEvent] = []
    readers = [follow(c.watch_job("summed", job_only=True, timeout=60), full),
               follow(c.watch_job("summed", summary=True, timeout=60), summary)]
    wait_for(lambda: full and summary, "both watches started")
    c.add_tasks("summed", tasks(40))
    for r in readers:
        r.join(timeout=90)
    assert not any(r.is_alive() for r in readers)
    assert not any(e.HasField("task") for e in summary)
    last = summary[-1].job
    assert (last.state, last.task_counts.succeeded) == (job_pb2.Job.COMPLETED, 40)
    assert last == full[-1].job  # the same end, whatever was skipped on the way
    # Revisions only grow: a summary skips states, never goes back to one.
    assert [e.revision for e in summary] == sorted({e.revision for e in summary})
    # Task filters and summaries exclude each other, in the API and the CLI.
    with pytest.raises(ShoalError) as e:
        next(c.watch_job("summed", summary=True, task_state="COMPLETED"))
    assert (e.value.code.name, e.value.field) == ("INVALID_ARGUMENT", "task_filter")
    code, _, stderr = run_cli(ws, "job", "watch", "summed", "--summary", "--state", "completed")
    assert code == 2 and "--summary" in stderr, stderr
    code, stdout, stderr = run_cli(ws, "job", "watch", "summed", "--summary")
    assert code == 0 and stdout.startswith("job  summed  COMPLETED  40/40 completed"), stderr


def test_job_watch_prints_each_change_as_it_happens(ws: LocalSuite) -> None:
    c = ws.client()
    c.create_job("lines", pool_id="p", on_all_tasks_complete="terminate_job")
    # The real command, read as it prints: the tasks are added once it shows the job, so
    # the watch sees them from their start.
    watch = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli.main", "--endpoint", ws.endpoint,
         "--key", ws.client_config.key, "job", "watch", "lines"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert watch.stdout is not None
    first = watch.stdout.readline()
    c.add_tasks("lines", tasks(2))
    rest, stderr = watch.communicate(timeout=60)
    assert watch.returncode == 0, stderr
    lines = [first.rstrip("\n"), *rest.splitlines()]
    assert lines[0].startswith("job  lines  ACTIVE")
    assert lines[-1].startswith("job  lines  COMPLETED  2/2 completed")
    for task_id in ids(2):
        mine = [line for line in lines if line.startswith(f"task {task_id} ")]
        assert mine[0] == f"task {task_id}  ACTIVE"
        assert mine[-1].startswith(f"task {task_id}  COMPLETED  SUCCESS exit 0")


def test_a_watch_resumes_itself_across_a_gateway_restart_and_lists_again_after_a_scheduler_one(
    suite: LocalSuite,
) -> None:
    s = suite
    c = s.client()
    c.create_pool("p", target_nodes=2, task_slots_per_node=2)
    c.create_job("j", pool_id="p", on_all_tasks_complete="terminate_job")
    events: list[job_pb2.JobEvent] = []
    reader = follow(c.watch_job("j", timeout=180), events)
    c.add_tasks("j", tasks(30, shlex.join([PY, "-c", "import time; time.sleep(0.2)"])))
    wait_for(lambda: len(events) > 20, "some changes")
    s.kill("gateway")
    s.restart("gateway")
    reader.join(timeout=150)
    assert not reader.is_alive(), "the watch did not see the job complete"
    assert_whole_history(events, ids(30))
    assert events[-1].job.task_counts.succeeded == 30

    # A scheduler restart begins a new epoch: a watch from before it must list again, and
    # wait_job (which does) goes on to the end.
    c.create_job("k", pool_id="p", on_all_tasks_complete="terminate_job")
    c.add_tasks("k", tasks(10, shlex.join([PY, "-c", "import time; time.sleep(0.3)"])))
    waited: list[job_pb2.Job] = []
    waiter = threading.Thread(target=lambda: waited.append(c.wait_job("k", timeout=150)),
                              daemon=True)
    waiter.start()
    before = c.get_job("k").revision
    s.kill("job-scheduler")
    s.restart("job-scheduler")
    with pytest.raises(ShoalError) as e:
        next(c.watch_job("k", before))
    assert (e.value.code.name, e.value.reason) == ("OUT_OF_RANGE", "REVISION_COMPACTED")
    assert c.get_job("k").revision > before  # listing again gives one of the new epoch
    waiter.join(timeout=150)
    assert waited and waited[0].state == job_pb2.Job.COMPLETED
    assert waited[0].task_counts.succeeded == 10
