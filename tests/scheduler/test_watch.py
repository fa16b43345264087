"""WatchJob through the harness (the real engine and SQLite store, no network): a copy of a
job's tasks kept only from the stream's events equals what GetTask reads, whatever happened
to the tasks; the stream is ordered and resumable; filters; compaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.common.errors import Code, ShoalError
from services.job_scheduler import convert
from services.job_scheduler.engine import Engine
from services.job_scheduler.model import JobChanges, TaskDefinition
from shoal.cluster_config import WatchConfig
from shoal.v1 import job_pb2, task_pb2
from tests.scheduler.harness import (
    ACCOUNT,
    TIMING,
    Apps,
    Clock,
    GatedStore,
    Node,
    expect_error,
    known_pools,
    make_job,
    settle,
    specs,
)
from tests.support import eventually
from tests.watch_support import LocalCopy, comparable

JobEvent = job_pb2.JobEvent


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def apps(tmp_path: Path, clock: Clock) -> AsyncIterator[Apps]:
    apps = Apps(tmp_path / "job-scheduler.db", clock)
    yield apps
    await apps.close()


class Follower(LocalCopy):
    """A WatchJob stream read in the background, as a client reads it, into a local copy of
    the job and its tasks built from the events alone."""

    def __init__(self, app: Engine, from_revision: int = 0, *, job: str = "j",
                 states: set[str] | None = None, job_only: bool = False,
                 summary: bool = False) -> None:
        super().__init__()
        self.responses: list[job_pb2.WatchJobResponse] = []
        self.error: ShoalError | None = None
        self._start = from_revision
        self._stream = app.watch_job(ACCOUNT, job, from_revision, states, job_only, summary)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for r in self._stream:
                self.responses.append(r)
                for e in r.events:
                    self.apply(e)
        except ShoalError as e:
            self.error = e

    @property
    def events(self) -> list[job_pb2.JobEvent]:
        return [e for r in self.responses for e in r.events]

    @property
    def revision(self) -> int:
        return self.responses[-1].revision if self.responses else self._start

    async def caught_up(self, app: Engine) -> None:
        """Until the stream has sent everything up to the account's current revision."""
        await app.commit()
        want = app.revision(ACCOUNT)
        await eventually(lambda: self.revision >= want or self.error, f"revision {want}")

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def assert_copy_matches(app: Engine, f: Follower) -> None:
    await f.caught_up(app)
    read = {}
    for name in f.tasks:
        t = convert.task(await app.get_task(ACCOUNT, "j", name.rsplit("/", 1)[1]))
        read[t.name] = comparable(t)
    assert {n: comparable(t) for n, t in f.tasks.items()} == read
    listed = await app.list_tasks(ACCOUNT, "j", None, None, 1000)
    assert sorted(f.tasks) == sorted(f"jobs/j/tasks/{t.spec.id}" for t in listed)
    job = convert.job(app.get_job(ACCOUNT, "j"))
    assert f.job.task_counts == job.task_counts and f.job.state == job.state


async def test_a_copy_kept_from_the_events_equals_what_get_task_reads(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    f = Follower(app)
    a = Node(app, "a", 4)
    await a.connect()
    await app.create_tasks(ACCOUNT, "j", specs(3, retries=1))
    await settle(app)
    t0, t1, t2 = a.assignments()
    await a.start(t0.attempt_id)
    await a.finish(t0.attempt_id)                  # succeeds
    await a.start(t1.attempt_id)
    await a.finish(t1.attempt_id, exit_code=3)     # retried: back to ACTIVE, exit code kept
    await assert_copy_matches(app, f)
    await settle(app)
    (again,) = a.assignments()
    await a.finish(again.attempt_id, exit_code=3)  # fails for good
    await app.reactivate_task(ACCOUNT, "j", "t1")  # ACTIVE again, counters reset
    await app.terminate_task(ACCOUNT, "j", "t2")   # running: cancelled, then reported
    await a.cancelled(t2.attempt_id)
    await assert_copy_matches(app, f)
    await app.delete_task(ACCOUNT, "j", "t0")
    await assert_copy_matches(app, f)
    assert "jobs/j/tasks/t0" not in f.tasks
    types = [(e.type, e.task.name.rsplit("/", 1)[-1] or "job") for e in f.events]
    assert types[0] == (JobEvent.CURRENT, "job")
    assert types.count((JobEvent.ADDED, "t0")) == 1
    assert (JobEvent.DELETED, "t0") in types
    revs = [e.revision for e in f.events[1:]]
    assert revs == sorted(set(revs)), "revisions increase, each change once"
    await f.close()


async def test_a_requeue_and_a_job_terminated_with_queued_tasks_reach_the_copy(
    apps: Apps, clock: Clock
) -> None:
    app = await apps.open()
    await make_job(app)
    f = Follower(app)
    a = Node(app, "a", 1)
    await a.connect()
    await app.create_tasks(ACCOUNT, "j", specs(5))
    await settle(app)
    (first,) = a.assignments()
    await a.start(first.attempt_id)
    await a.disconnect()
    clock.advance(TIMING.lost_after + 1)
    await app.check_liveness()                     # lost: requeued
    await assert_copy_matches(app, f)
    # The job ends with tasks still queued: the core does not hold their ids, the stream
    # reads them.
    await app.terminate_job(ACCOUNT, "j", "")
    await assert_copy_matches(app, f)
    assert {t.state for t in f.tasks.values()} == {task_pb2.Task.COMPLETED}
    assert f.job.state == job_pb2.Job.COMPLETED
    await f.close()


async def test_resuming_from_any_answer_gives_every_later_change_once(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    whole = Follower(app)
    a = Node(app, "a", 2)
    await a.connect()
    await app.create_tasks(ACCOUNT, "j", specs(4))
    await settle(app)
    for x in a.assignments():
        await a.finish(x.attempt_id)
    await settle(app)
    for x in a.assignments():
        await a.finish(x.attempt_id)
    await whole.caught_up(app)
    everything = [e.revision for e in whole.events[1:]]
    for r in whole.responses:
        resumed = Follower(app, r.revision)
        await resumed.caught_up(app)
        assert [e.revision for e in resumed.events] == [x for x in everything if x > r.revision]
        await resumed.close()
    await whole.close()


async def test_a_list_then_a_watch_from_its_revision_misses_nothing(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    await app.create_tasks(ACCOUNT, "j", specs(3))
    rev = app.revision(ACCOUNT)  # what ListTasks answers with, taken before its read
    listed = await app.list_tasks(ACCOUNT, "j", None, None, 1000)
    f = Follower(app, rev)
    for t in listed:
        f.tasks[f"jobs/j/tasks/{t.spec.id}"] = convert.task(t)
    a = Node(app, "a", 3)
    await a.connect()
    await settle(app)
    for x in a.assignments():
        await a.finish(x.attempt_id)
    await assert_copy_matches(app, f)
    await f.close()


async def test_filters_select_task_changes_and_job_only_sends_the_job(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    done = Follower(app, states={"COMPLETED"})
    job_only = Follower(app, job_only=True)
    a = Node(app, "a", 2)
    await a.connect()
    await app.create_tasks(ACCOUNT, "j", specs(2))
    await settle(app)
    for x in a.assignments():
        await a.finish(x.attempt_id)
    await done.caught_up(app)
    await job_only.caught_up(app)
    assert {e.task.state for e in done.events if e.HasField("task")} == {task_pb2.Task.COMPLETED}
    assert len([e for e in done.events if e.HasField("task")]) == 2
    assert not [e for e in job_only.events if e.HasField("task")]
    assert job_only.job.task_counts.succeeded == 2
    # Both end at the same revision: skipped changes still move the resume point.
    assert done.revision == job_only.revision == app.revision(ACCOUNT)
    await done.close()
    await job_only.close()


async def test_a_summary_sends_a_busy_jobs_latest_state_once_not_each_change(
    apps: Apps,
) -> None:
    app = await apps.open()
    await make_job(app)
    start = app.revision(ACCOUNT)
    full = Follower(app, start, job_only=True)
    for i in range(10):  # ten changes of the job's counts, each its own plan
        await app.create_tasks(ACCOUNT, "j", specs(1, prefix=f"b{i}-"))
    await full.caught_up(app)
    # Resumed from before them: the changes are read together, as after a summary's pause.
    summary = Follower(app, start, summary=True)
    await summary.caught_up(app)
    assert len([e for e in full.events if e.HasField("job")]) == 10
    (latest,) = summary.events
    assert latest.type == JobEvent.MODIFIED and not latest.HasField("task")
    now = convert.job(app.get_job(ACCOUNT, "j"))
    assert latest.job.task_counts == full.job.task_counts == now.task_counts
    assert (latest.job.state, latest.job.etag) == (now.state, now.etag)
    assert latest.job.task_counts.active == 10
    assert latest.revision == full.events[-1].revision
    assert summary.revision == full.revision == app.revision(ACCOUNT)
    # Later changes come as they happen, the latest state each time.
    await app.create_tasks(ACCOUNT, "j", specs(2, prefix="c"))
    await summary.caught_up(app)
    assert summary.job.task_counts.active == 12
    assert all(len(r.events) <= 1 for r in summary.responses)
    await summary.close()
    await full.close()


async def test_a_summary_sends_a_deletion_then_the_new_job_of_that_name(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    start = app.revision(ACCOUNT)
    await app.create_tasks(ACCOUNT, "j", specs(2))
    await app.delete_job(ACCOUNT, "j")
    await make_job(app, priority=5)
    await app.create_tasks(ACCOUNT, "j", specs(3))
    f = Follower(app, start, summary=True)
    await f.caught_up(app)
    assert [(e.type, e.HasField("job")) for e in f.events] == [
        (JobEvent.DELETED, True), (JobEvent.ADDED, True)]
    new = f.events[1].job
    assert (new.priority, new.task_counts.active) == (5, 3)
    assert new.etag == convert.job(app.get_job(ACCOUNT, "j")).etag
    await f.close()


async def test_the_watch_follows_the_name_through_a_delete_and_a_new_job(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    f = Follower(app)
    await app.create_tasks(ACCOUNT, "j", specs(1))
    await app.delete_job(ACCOUNT, "j")
    await make_job(app)
    await f.caught_up(app)
    kinds = [(e.type, "job" if e.HasField("job") else "task") for e in f.events]
    assert kinds == [(JobEvent.CURRENT, "job"), (JobEvent.ADDED, "task"),
                     (JobEvent.MODIFIED, "job"), (JobEvent.DELETED, "job"),
                     (JobEvent.ADDED, "job")]
    await f.close()


async def test_bad_starts_are_refused_with_the_documented_errors(apps: Apps) -> None:
    app = await apps.open()
    await expect_error(anext(app.watch_job(ACCOUNT, "nope", 0, None, False)), "JOB_NOT_FOUND")
    await make_job(app)
    ahead = app.revision(ACCOUNT) + 10
    e = await expect_error(anext(app.watch_job(ACCOUNT, "j", ahead, None, False)),
                           "INVALID_ARGUMENT")
    assert e.field == "from_revision"
    # Another account's revisions are its own: account "other" has no job j, and its
    # history starts at the epoch's base.
    await expect_error(anext(app.watch_job("other", "j", 0, None, False)), "JOB_NOT_FOUND")


async def test_a_revision_compacted_away_or_from_before_a_restart_must_list_again(
    tmp_path: Path, clock: Clock
) -> None:
    def open_app() -> Engine:
        return Engine(store, TIMING, known_pools, clock, watch=WatchConfig(history=5))

    store = await GatedStore.open(tmp_path / "s.db")
    app = open_app()
    await app.load()
    await make_job(app)
    old = app.revision(ACCOUNT)
    await app.create_tasks(ACCOUNT, "j", specs(10))  # ten changes: more than the five kept
    e = await expect_error(anext(app.watch_job(ACCOUNT, "j", old, None, False)),
                           "REVISION_COMPACTED")
    assert e.code == Code.OUT_OF_RANGE
    recent = app.revision(ACCOUNT)
    await app.stop()
    app = open_app()
    await app.load()  # a restart: a new epoch, its revisions above all earlier ones
    assert app.revision(ACCOUNT) > recent
    await expect_error(anext(app.watch_job(ACCOUNT, "j", recent, None, False)),
                       "REVISION_COMPACTED")
    await app.stop()
    await store.close()


async def test_a_reader_that_falls_behind_the_history_is_cut_off_not_buffered(
    tmp_path: Path, clock: Clock
) -> None:
    store = await GatedStore.open(tmp_path / "s.db")
    app = Engine(store, TIMING, known_pools, clock, watch=WatchConfig(history=20))
    await app.load()
    await make_job(app)
    stream = app.watch_job(ACCOUNT, "j", app.revision(ACCOUNT), None, False)
    await app.create_tasks(ACCOUNT, "j", specs(5))
    first = await anext(stream)  # the stream reads five changes, then its client stops reading
    assert len(first.events) == 6
    for i in range(10):
        await app.create_tasks(ACCOUNT, "j", specs(5, prefix=f"b{i}-"))
    e = await expect_error(anext(stream), "REVISION_COMPACTED")
    assert "no longer kept" in e.message
    await app.stop()
    await store.close()


async def test_an_idle_stream_sends_progress_with_the_current_revision(
    tmp_path: Path, clock: Clock
) -> None:
    store = await GatedStore.open(tmp_path / "s.db")
    app = Engine(store, TIMING, known_pools, clock, watch=WatchConfig(progress_interval=0.05))
    await app.load()
    await make_job(app)
    await make_job(app, "other")
    stream = app.watch_job(ACCOUNT, "j", 0, None, False)
    await anext(stream)  # CURRENT
    await app.create_tasks(ACCOUNT, "other", specs(3))  # another job's changes: not sent
    progress = await anext(stream)
    assert list(progress.events) == []
    assert progress.revision == app.revision(ACCOUNT)
    await app.stop()
    await store.close()


async def test_a_change_is_published_only_once_its_rows_are_committed(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    f = Follower(app)
    await f.caught_up(app)
    seen, before = len(f.events), app.revision(ACCOUNT)
    gate = app.store.hold("commit")  # type: ignore[attr-defined]
    add = asyncio.create_task(app.create_tasks(ACCOUNT, "j", specs(2)))
    await gate.entered.wait()
    for _ in range(20):
        await asyncio.sleep(0)  # everything else runs; the commit is what is held
    # Decided and in memory, not durable: no revision, no watcher told, nothing to list from.
    assert app.get_job(ACCOUNT, "j").counts.active == 2
    assert (app.revision(ACCOUNT), len(f.events)) == (before, seen)
    gate.release.set()
    await add
    await f.caught_up(app)
    assert app.revision(ACCOUNT) == before + 3  # two tasks added, the job's counts
    assert [e.type for e in f.events[seen:]] == [JobEvent.ADDED, JobEvent.ADDED,
                                                 JobEvent.MODIFIED]
    await f.close()


async def test_a_job_update_reaches_watchers_with_its_new_settings_and_etag(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    f = Follower(app, job_only=True)
    await f.caught_up(app)
    before = f.job.etag
    await app.update_job(ACCOUNT, "j", JobChanges(frozenset({"priority"}), priority=7), "")
    await f.caught_up(app)
    (changed,) = f.events[1:]
    assert changed.type == JobEvent.MODIFIED and changed.job.priority == 7
    assert changed.job.etag == convert.job(app.get_job(ACCOUNT, "j")).etag != before
    await f.close()


async def test_big_changes_are_split_into_messages_a_client_can_take(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    f = Follower(app)
    await f.caught_up(app)
    long = [TaskDefinition(f"t{i}", "true " + "x" * 8000, {}, None, None) for i in range(300)]
    await app.create_tasks(ACCOUNT, "j", long)
    await f.caught_up(app)
    added = [r for r in f.responses if any(e.type == JobEvent.ADDED for e in r.events)]
    assert len(added) >= 3  # 300 tasks of 8 kB: 2.4 MB of changes
    assert all(r.ByteSize() < (1 << 20) + 10_000 for r in added)
    assert len(f.tasks) == 300
    # Each part says how far it got: resuming from any part gives the rest, once.
    for r in added[:-1]:
        assert r.revision == r.events[-1].revision
        again = Follower(app, r.revision)
        await again.caught_up(app)
        assert [e.revision for e in again.events] == [
            e.revision for e in f.events if e.revision > r.revision]
        await again.close()
    await f.close()
