"""Updating a task's constraints (Azure Batch's Task - Update): the request as the convert
layer checks it, the update as the pure core decides it (a new retry count applies to the
next failure, new limits reach the running attempt's node; each refusal changes nothing),
and the engine around it (the read-ahead, a state change during the read, a reconnect, a
restart, old database files)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from services.common.errors import Code, ShoalError
from services.job_scheduler import convert
from services.job_scheduler.core import Hello
from services.job_scheduler.core.plan import NewConstraints, TaskChanged, UpdateTaskSettings
from services.job_scheduler.model import (
    TASK_UPDATABLE,
    TaskChanges,
    TaskDefinition,
    TaskState,
)
from services.job_scheduler.store import Store
from shoal.v1 import task_pb2
from tests.scheduler.core_world import ACCOUNT, World, assigns, rows, spec
from tests.scheduler.harness import (
    Apps,
    Clock,
    GatedStore,
    Node,
    expect_error,
    make_job,
    one_node,
    settle,
)


def changes(**values: object) -> TaskChanges:
    return TaskChanges(frozenset(values), **values)  # type: ignore[arg-type]


# -- the request --------------------------------------------------------------------------------


def request(*paths: str, if_match: str = "", name: str = "",
            **constraints: object) -> task_pb2.UpdateTaskRequest:
    return task_pb2.UpdateTaskRequest(
        name="jobs/j/tasks/t", if_match=if_match, update_mask=FieldMask(paths=list(paths)),
        task=task_pb2.Task(name=name, command_line="ignored",
                           constraints=task_pb2.TaskConstraints(**constraints)))  # type: ignore[arg-type]


def test_only_the_masked_constraints_are_read() -> None:
    got = convert.task_changes(request("constraints.max_task_retry_count",
                                       max_task_retry_count=4,
                                       max_wall_clock_time=Duration(seconds=-5)))
    assert (got.fields, got.max_task_retry_count) == ({"max_task_retry_count"}, 4)
    whole = convert.task_changes(request("constraints", max_wall_clock_time=Duration(seconds=90),
                                         retention_time=Duration(seconds=60)))
    assert whole.fields == set(TASK_UPDATABLE)
    assert (whole.max_wall_clock_time, whole.max_task_retry_count, whole.retention) == (
        90.0, None, 60.0)  # an unset retry count: the job's
    assert convert.task_changes(request("*")).fields == set(TASK_UPDATABLE)
    cleared = convert.task_changes(request("constraints.max_wall_clock_time"))
    assert (cleared.fields, cleared.max_wall_clock_time) == ({"max_wall_clock_time"}, None)


@pytest.mark.parametrize(("req", "field"), [
    (request(), "update_mask"),
    (request("constraints.retention_time", "command_line"), "update_mask.paths[1]"),
    (request("priority"), "update_mask.paths[0]"),
    (request("constraints.max_wall_clock_time", max_wall_clock_time=Duration(seconds=-1)),
     "task.constraints.max_wall_clock_time"),
    (request("constraints", max_task_retry_count=101), "task.constraints.max_task_retry_count"),
    (request("constraints.retention_time", retention_time=Duration(seconds=400 * 86400)),
     "task.constraints.retention_time"),
    (request("constraints", name="jobs/j/tasks/other"), "task.name"),
    (request("constraints", if_match="x" * 300), "if_match"),
])
def test_a_bad_request_names_its_field(req: task_pb2.UpdateTaskRequest, field: str) -> None:
    with pytest.raises(ShoalError) as e:
        convert.task_changes(req)
    assert (e.value.code, e.value.reason, e.value.field) == (
        Code.INVALID_ARGUMENT, "INVALID_ARGUMENT", field)
    assert e.value.message.startswith(f"{field}: ")


def test_an_unknown_path_is_named_with_the_paths_there_are() -> None:
    with pytest.raises(ShoalError) as e:
        convert.task_changes(request("environment"))
    assert "'environment' cannot be updated" in e.value.message
    assert "constraints.retention_time" in e.value.message


# -- the core -----------------------------------------------------------------------------------


@pytest.fixture
def w() -> World:
    return World()


def update(w: World, task_id: str, state: TaskState, if_match: str = "", **values: object):  # type: ignore[no-untyped-def]
    """The core's update on the task's row as the engine reads it (watched, unchanged since);
    the row then holds the new constraints."""
    t = w.record(task_id, state)
    w.core.watch(t.pk)
    try:
        plan = w.core.update_task(w.core.job(ACCOUNT, "j"), t, changes(**values), if_match,
                                  w.now)
    finally:
        w.core.unwatch(t.pk)
    job, sp = w.specs[t.pk]
    w.specs[t.pk] = (job, changes(**values).applied(sp))
    return plan


def refused(w: World, task_id: str, state: TaskState, reason: str, if_match: str = "",
            **values: object) -> ShoalError:
    with pytest.raises(ShoalError) as e:
        update(w, task_id, state, if_match, **values)
    assert e.value.reason == reason, e.value
    return e.value


def test_an_active_task_is_updated_in_its_row_and_its_next_attempt_reads_it(w: World) -> None:
    job = w.job()
    w.add(job, spec("t1"))
    plan = update(w, "t1", TaskState.ACTIVE, max_wall_clock_time=60.0, retention=30.0)
    [row] = rows(plan, UpdateTaskSettings)
    assert (row.spec.max_wall_clock_time, row.spec.retention, row.spec.max_task_retry_count,
            row.time) == (60.0, 30.0, None, w.now)
    assert not plan.sends and TaskChanged(ACCOUNT, "j", row.task_pk, TaskState.ACTIVE) in plan.events


def test_an_update_that_changes_nothing_writes_nothing(w: World) -> None:
    job = w.job()
    w.add(job, spec("t1", retries=2))
    plan = update(w, "t1", TaskState.ACTIVE, max_task_retry_count=2)
    assert not plan.rows and not plan.events


def test_a_new_retry_count_applies_to_the_running_attempts_next_failure(w: World) -> None:
    job = w.job()
    n = w.node(slots=2)
    w.add(job, spec("raised", retries=0), spec("lowered", retries=3))
    got = assigns(w.dispatch())
    update(w, "raised", TaskState.RUNNING, max_task_retry_count=1)
    update(w, "lowered", TaskState.RUNNING, max_task_retry_count=0)
    w.result(n, got["raised"], exit_code=3)
    w.result(n, got["lowered"], exit_code=3)
    assert list(assigns(w.dispatch())) == ["raised"]  # retried; "lowered" failed at once
    assert (job.counts.failed, job.counts.running) == (1, 1)


def test_a_retry_count_removed_falls_back_to_the_jobs(w: World) -> None:
    job = w.job(default_retries=1)
    n = w.node()
    w.add(job, spec("t1", retries=0))
    got = assigns(w.dispatch())
    update(w, "t1", TaskState.RUNNING, max_task_retry_count=None)
    w.result(n, got["t1"], exit_code=3)
    assert list(assigns(w.dispatch())) == ["t1"]


def test_new_limits_of_a_running_task_go_to_its_node(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"))
    aid = assigns(w.dispatch())["t1"]
    plan = update(w, "t1", TaskState.RUNNING, max_wall_clock_time=5.0, retention=60.0)
    [send] = plan.sends
    assert (send.node, send.stream_id) == (n.session.key, n.stream_id)
    assert isinstance(send.message, NewConstraints)
    [a] = send.message.attempts
    assert (a.attempt_id, a.max_wall_clock, a.retention) == (aid, 5.0, 60.0)
    # A retry count alone does not concern the node.
    assert not update(w, "t1", TaskState.RUNNING, max_task_retry_count=2).sends


def test_a_node_that_reconnects_is_told_its_attempts_new_limits_again(w: World) -> None:
    job = w.job()
    w.node()
    w.add(job, spec("t1"), spec("t2"))
    w.node(slots=2)  # the same node, more slots: both are assigned
    got = assigns(w.dispatch())
    update(w, "t1", TaskState.RUNNING, max_wall_clock_time=5.0)
    again = w.core.hello((ACCOUNT, "p", "n1"), Hello("p", "n1", 2, running=tuple(got.values())),
                         w.now)
    sent = [s.message for s in again.sends if isinstance(s.message, NewConstraints)]
    assert [[a.attempt_id for a in m.attempts] for m in sent] == [[got["t1"]]]


def test_a_stale_etag_changes_nothing(w: World) -> None:
    job = w.job()
    w.add(job, spec("t1"))
    t = w.record("t1", TaskState.ACTIVE)._replace(revision=3)
    w.core.watch(t.pk)
    with pytest.raises(ShoalError) as e:
        w.core.update_task(job, t, changes(retention=5.0), t.etag.replace(".3", ".2"), w.now)
    assert (e.value.code, e.value.reason) == (Code.FAILED_PRECONDITION, "CONDITION_NOT_MET")
    assert t.etag in e.value.message
    # Without its quotes, as a shell leaves it, and `*`: it matches.
    assert w.core.update_task(job, t, changes(retention=5.0), t.etag.strip('"'), w.now).rows
    w.core.watch(t.pk)  # read again: its own update changed it
    assert w.core.update_task(job, t, changes(retention=6.0), "*", w.now).rows


def test_a_completed_task_cannot_be_updated(w: World) -> None:
    job = w.job()
    w.add(job, spec("t1"))
    e = refused(w, "t1", TaskState.COMPLETED, "TASK_COMPLETED", max_task_retry_count=1)
    assert e.code == Code.FAILED_PRECONDITION and job.counts.active == 1


def test_a_row_read_while_the_task_changed_state_is_not_decided_on(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"))
    t = w.record("t1", TaskState.ACTIVE)
    w.core.watch(t.pk)
    got = assigns(w.dispatch())  # between the engine's read and the decision
    with pytest.raises(ShoalError) as e:
        w.core.update_task(job, t, changes(retention=5.0), "", w.now)
    assert (e.value.code, e.value.reason) == (Code.UNAVAILABLE, "TASK_CHANGING")
    w.core.unwatch(t.pk)
    assert not w.core.reading
    # An unwatched row is never decided on either.
    with pytest.raises(ShoalError):
        w.core.update_task(job, w.record("t1", TaskState.RUNNING), changes(retention=5.0), "",
                           w.now)
    w.result(n, got["t1"])


# -- the engine ---------------------------------------------------------------------------------


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[Apps]:
    a = Apps(tmp_path / "sched.db", Clock())
    yield a
    await a.close()


def limits(n: Node) -> list[tuple[str, float | None]]:
    """(attempt, wall clock) of every AttemptConstraints the node got so far."""
    return [(c.attempt_id, c.max_wall_clock_time.ToNanoseconds() / 1e9
             if c.HasField("max_wall_clock_time") else None)
            for m in n.drain() for c in m.attempt_constraints]


async def test_an_update_moves_the_etag_and_a_state_change_does_too(apps: Apps) -> None:
    app, n = await one_node(apps, 1, 1)
    added = await app.get_task(ACCOUNT, "j", "t0")
    assert (added.revision, added.settings_time) == (1, None)
    t = await app.update_task(ACCOUNT, "j", "t0", changes(max_task_retry_count=2), added.etag)
    assert t.etag != added.etag and t.spec.max_task_retry_count == 2
    assert t.update_time == t.settings_time == apps.clock()
    same = await app.update_task(ACCOUNT, "j", "t0", changes(max_task_retry_count=2), t.etag)
    assert same.etag == t.etag  # nothing changed
    await settle(app)
    assigned = await app.get_task(ACCOUNT, "j", "t0")
    assert assigned.state == TaskState.PREPARING and assigned.etag != t.etag
    e = await expect_error(app.update_task(ACCOUNT, "j", "t0", changes(retention=1.0), t.etag),
                           "CONDITION_NOT_MET")
    assert e.code == Code.FAILED_PRECONDITION
    assert (await app.get_task(ACCOUNT, "j", "t0")).spec.retention is None


async def test_a_task_updated_after_its_row_was_read_ahead_runs_with_the_new_limits(
    apps: Apps,
) -> None:
    app, n = await one_node(apps, 1, 2)
    await settle(app)  # t0 runs; t1's row is read ahead for the slot t0 will free
    [first] = n.assignments()
    await app.update_task(ACCOUNT, "j", "t1", changes(max_wall_clock_time=45.0), "")
    await n.finish(first.attempt_id)
    await settle(app)
    [second] = n.assignments()
    assert second.task_id == "t1" and second.max_wall_clock_time.seconds == 45


async def test_new_limits_reach_the_running_attempts_node_and_again_after_it_reconnects(
    apps: Apps,
) -> None:
    app, n = await one_node(apps, 1, 1)
    await settle(app)
    [a] = n.assignments()
    await n.start(a.attempt_id)
    t = await app.update_task(ACCOUNT, "j", "t0", changes(max_wall_clock_time=30.0), "")
    assert t.state == TaskState.RUNNING and t.spec.max_wall_clock_time == 30.0
    await app.commit()
    assert limits(n) == [(a.attempt_id, 30.0)]
    await n.disconnect()
    await n.connect()  # still runs it
    assert limits(n) == [(a.attempt_id, 30.0)]
    # After a restart of the scheduler too: whether the node heard is not known.
    app = await apps.restart(app)
    n = Node(app, "a", 1, running={a.attempt_id})
    await n.connect()
    assert limits(n) == [(a.attempt_id, 30.0)]
    reloaded = app.core.attempts[a.attempt_id]
    assert reloaded.max_wall_clock == 30.0


async def test_a_state_change_during_the_read_makes_the_update_read_again(apps: Apps) -> None:
    app, n = await one_node(apps, 1, 1, retries=0)
    await settle(app)
    [a] = n.assignments()
    read = await app.get_task(ACCOUNT, "j", "t0")
    store = app.store
    assert isinstance(store, GatedStore)
    gate = store.hold("get_task", skip=1)  # the read the decision is made on
    update = asyncio.create_task(
        app.update_task(ACCOUNT, "j", "t0", changes(max_task_retry_count=5), read.etag))
    await gate.entered.wait()
    await n.finish(a.attempt_id, exit_code=3)  # it fails for good meanwhile
    gate.release.set()
    e = await expect_error(update, "CONDITION_NOT_MET")
    assert "changed since it was read" in e.message
    done = await app.get_task(ACCOUNT, "j", "t0")
    assert (done.state, done.spec.max_task_retry_count) == (TaskState.COMPLETED, 0)
    assert not app.core.reading


async def test_unknown_tasks_and_jobs_are_not_found(apps: Apps) -> None:
    app, _ = await one_node(apps, 1, 1)
    await expect_error(app.update_task(ACCOUNT, "j", "nope", changes(retention=1.0), ""),
                       "TASK_NOT_FOUND")
    await expect_error(app.update_task(ACCOUNT, "nope", "t0", changes(retention=1.0), ""),
                       "JOB_NOT_FOUND")
    await expect_error(app.update_task("other", "j", "t0", changes(retention=1.0), ""),
                       "JOB_NOT_FOUND")


OLD_TASKS = """
CREATE TABLE jobs (
  job_pk INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, id TEXT NOT NULL,
  id_lower TEXT NOT NULL, pool_id TEXT NOT NULL, priority INTEGER NOT NULL,
  on_all_tasks_complete INTEGER NOT NULL, state INTEGER NOT NULL,
  display_name TEXT NOT NULL DEFAULT '', metadata TEXT NOT NULL DEFAULT '{}',
  terminate_reason TEXT NOT NULL DEFAULT '', create_time REAL NOT NULL,
  state_time REAL NOT NULL, end_time REAL, n_active INTEGER NOT NULL DEFAULT 0,
  n_running INTEGER NOT NULL DEFAULT 0, n_completed INTEGER NOT NULL DEFAULT 0,
  n_succeeded INTEGER NOT NULL DEFAULT 0, n_failed INTEGER NOT NULL DEFAULT 0, prep BLOB,
  release BLOB, schedule_id TEXT NOT NULL DEFAULT '', settings TEXT NOT NULL DEFAULT '{}',
  revision INTEGER NOT NULL DEFAULT 1, update_time REAL,
  UNIQUE (account, id_lower)
);
CREATE TABLE tasks (
  task_pk INTEGER PRIMARY KEY AUTOINCREMENT, job_pk INTEGER NOT NULL, id TEXT NOT NULL,
  id_lower TEXT NOT NULL, display_name TEXT NOT NULL DEFAULT '', command_line TEXT NOT NULL,
  environment TEXT NOT NULL DEFAULT '{}', max_wall_clock REAL, max_retries INTEGER,
  files BLOB, deps TEXT, deps_spec BLOB, exits BLOB, slots INTEGER NOT NULL DEFAULT 1,
  priority INTEGER NOT NULL DEFAULT 0, retention REAL, blocked TEXT,
  unblocked INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL, create_time REAL NOT NULL,
  state_time REAL NOT NULL, retry_count INTEGER NOT NULL DEFAULT 0,
  requeue_count INTEGER NOT NULL DEFAULT 0, attempt_id TEXT,
  attempt_number INTEGER NOT NULL DEFAULT 0, node TEXT, start_time REAL, end_time REAL,
  exit_code INTEGER, result INTEGER, failure_category INTEGER, failure_code TEXT,
  failure_message TEXT, UNIQUE (job_pk, id_lower)
);
INSERT INTO jobs (account, id, id_lower, pool_id, priority, on_all_tasks_complete, state,
                  create_time, state_time, n_active)
VALUES ('acct', 'j', 'j', 'p', 0, 1, 1, 100.0, 100.0, 1);
INSERT INTO tasks (job_pk, id, id_lower, command_line, state, create_time, state_time)
VALUES (1, 'old', 'old', 'true', 1, 100.0, 150.0);
"""


async def test_a_database_from_before_task_updates_opens_and_its_tasks_update(
    apps: Apps,
) -> None:
    db = sqlite3.connect(apps.path)
    db.executescript(OLD_TASKS)
    db.close()
    app = await apps.open()
    old = await app.get_task(ACCOUNT, "j", "old")
    assert (old.revision, old.update_time) == (1, 150.0)  # its last change: its state's
    await app.update_task(ACCOUNT, "j", "old", changes(max_wall_clock_time=9.0), old.etag)
    app = await apps.restart(app)
    again = await app.get_task(ACCOUNT, "j", "old")
    assert again.spec.max_wall_clock_time == 9.0 and again.revision == 2
    store = await Store.open(apps.path)  # opening again migrates nothing twice
    await store.close()


async def test_an_update_survives_a_restart_and_the_next_attempt_gets_it(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app)
    await app.create_tasks(ACCOUNT, "j", [TaskDefinition("t0", "true", {}, None, None)])
    t = await app.update_task(ACCOUNT, "j", "t0", changes(
        max_wall_clock_time=20.0, max_task_retry_count=3, retention=40.0), "")
    app = await apps.restart(app)
    again = await app.get_task(ACCOUNT, "j", "t0")
    assert (again.etag, again.spec.max_wall_clock_time, again.spec.max_task_retry_count,
            again.spec.retention) == (t.etag, 20.0, 3, 40.0)
    n = Node(app, "a", 1)
    await n.connect()
    await settle(app)
    [a] = n.assignments()
    assert (a.max_wall_clock_time.seconds, a.retention_time.seconds) == (20, 40)
    assert app.core.attempts[a.attempt_id].max_retries == 3
