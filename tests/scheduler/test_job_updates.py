"""Updating a job (Azure Batch's Job - Patch): the request as the convert layer checks it,
the update as the pure core decides it (each change acts at once; each refusal changes
nothing), and what the store keeps of it across a restart, old database files included."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from services.common.errors import Code, ShoalError
from services.job_scheduler import convert
from services.job_scheduler.core.plan import JobChanged, UpdateJob, UpdateJobSettings
from services.job_scheduler.model import (
    UPDATABLE,
    Job,
    JobChanges,
    JobState,
    OnAllTasksComplete,
    TaskState,
)
from services.job_scheduler.store import Store
from shoal.v1 import job_pb2
from tests.scheduler.core_world import ACCOUNT, World, assigns, rows, spec
from tests.scheduler.harness import Apps, Clock, Node, make_job, settle, specs


@pytest.fixture
def w() -> World:
    return World()


def changes(**values: object) -> JobChanges:
    return JobChanges(frozenset(values), **values)  # type: ignore[arg-type]


def update(w: World, job: Job, if_match: str = "", **values: object):  # type: ignore[no-untyped-def]
    return w.core.update_job(ACCOUNT, job.id, changes(**values), if_match, w.now)


def refused(w: World, job: Job, reason: str, if_match: str = "", **values: object) -> ShoalError:
    before = (job.priority, job.max_parallel, job.on_all_tasks_complete, job.revision, job.state)
    with pytest.raises(ShoalError) as e:
        update(w, job, if_match, **values)
    assert e.value.reason == reason, e.value
    assert (job.priority, job.max_parallel, job.on_all_tasks_complete, job.revision,
            job.state) == before
    return e.value


# -- the request --------------------------------------------------------------------------------


def request(*paths: str, **job: object) -> job_pb2.UpdateJobRequest:
    return job_pb2.UpdateJobRequest(name="jobs/j", job=job_pb2.Job(**job),  # type: ignore[arg-type]
                                    update_mask=FieldMask(paths=list(paths)))


def test_only_the_masked_fields_are_read() -> None:
    got = convert.job_changes(request("priority", "max_parallel_tasks", priority=7,
                                      max_parallel_tasks=3, on_all_tasks_complete=2))
    assert got.fields == {"priority", "max_parallel"}
    assert (got.priority, got.max_parallel) == (7, 3)
    # A bad value in a field the mask does not name is ignored, as AIP-134 says.
    assert convert.job_changes(request("priority", max_parallel_tasks=-4)).fields == {"priority"}


def test_constraints_as_a_whole_or_one_limit() -> None:
    wall = job_pb2.JobConstraints(max_wall_clock_time=Duration(seconds=90), max_task_retry_count=2)
    whole = convert.job_changes(request("constraints", constraints=wall))
    assert (whole.fields, whole.max_wall_clock, whole.default_retries) == (
        {"max_wall_clock", "default_retries"}, 90.0, 2)
    cleared = convert.job_changes(request("constraints.max_wall_clock_time"))
    assert (cleared.fields, cleared.max_wall_clock) == ({"max_wall_clock"}, None)
    assert convert.job_changes(request("*")).fields == set(UPDATABLE)


@pytest.mark.parametrize(("req", "field"), [
    (request(), "update_mask"),
    (request("priority", "pool"), "update_mask.paths[1]"),
    (request("Priority"), "update_mask.paths[0]"),
    (request("priority", priority=5000), "job.priority"),
    (request("max_parallel_tasks", max_parallel_tasks=-1), "job.max_parallel_tasks"),
    (request("on_all_tasks_complete", on_all_tasks_complete=9), "job.on_all_tasks_complete"),
    (request("constraints.max_task_retry_count",
             constraints=job_pb2.JobConstraints(max_task_retry_count=101)),
     "job.constraints.max_task_retry_count"),
    (request("constraints", constraints=job_pb2.JobConstraints(
        max_wall_clock_time=Duration(seconds=-1))), "job.constraints.max_wall_clock_time"),
    (request("metadata", metadata={"": "x"}), "job.metadata"),
    (request("priority", name="jobs/other"), "job.name"),
])
def test_a_bad_request_names_its_field(req: job_pb2.UpdateJobRequest, field: str) -> None:
    with pytest.raises(ShoalError) as e:
        convert.job_changes(req)
    assert (e.value.code, e.value.reason, e.value.field) == (
        Code.INVALID_ARGUMENT, "INVALID_ARGUMENT", field)
    assert e.value.message.startswith(f"{field}: ")


def test_an_unknown_path_is_named_with_the_paths_there_are() -> None:
    with pytest.raises(ShoalError) as e:
        convert.job_changes(request("display_name"))
    assert "'display_name' cannot be updated" in e.value.message
    assert "max_parallel_tasks" in e.value.message


# -- the core: what each change does at once ------------------------------------------------------


def test_an_update_changes_the_masked_settings_and_the_etag(w: World) -> None:
    job = w.job(max_parallel=2)
    etag = job.etag
    w.now += 5
    plan = update(w, job, if_match=etag, priority=10)
    assert plan.reply is job and (job.priority, job.max_parallel) == (10, 2)
    assert job.etag != etag and job.update_time == w.now
    assert rows(plan, UpdateJobSettings) == [UpdateJobSettings(job)]
    assert rows(plan, UpdateJob)[-1].revision == job.revision
    assert JobChanged(ACCOUNT, "j", JobState.ACTIVE) in plan.events


def test_an_update_that_changes_nothing_keeps_the_etag(w: World) -> None:
    job = w.job(max_parallel=2)
    etag = job.etag
    plan = update(w, job, max_parallel=2)
    assert job.etag == etag and not plan.rows and not plan.events


def test_raising_max_parallel_tasks_lets_more_start_at_once(w: World) -> None:
    job = w.job(max_parallel=1)
    w.node(slots=4)
    w.add(job, spec("t1"), spec("t2"), spec("t3"), spec("t4"))
    assert list(assigns(w.dispatch())) == ["t1"]
    assert not assigns(w.dispatch())  # at its limit
    plan = update(w, job, max_parallel=3)
    assert plan.dispatch  # the engine runs a dispatch round after it
    assert sorted(assigns(w.dispatch())) == ["t2", "t3"]


def test_lowering_max_parallel_tasks_stops_none_and_starts_none_above_it(w: World) -> None:
    job = w.job()
    n = w.node(slots=4)
    w.add(job, spec("t1"), spec("t2"), spec("t3"))
    first = assigns(w.dispatch())
    assert len(first) == 3
    w.add(job, spec("t4"))
    plan = update(w, job, max_parallel=1)
    assert not plan.sends  # nothing running is stopped
    w.result(n, first["t1"])
    w.result(n, first["t2"])
    assert not assigns(w.dispatch())  # two still run: over the new limit of 1
    w.result(n, first["t3"])
    assert list(assigns(w.dispatch())) == ["t4"]


def test_a_new_priority_puts_a_job_ahead_in_its_pool(w: World) -> None:
    older, newer = w.job("older"), w.job("newer")
    n = w.node(slots=1)
    w.add(older, spec("o1"), spec("o2"))
    w.add(newer, spec("n1"))
    first = assigns(w.dispatch())
    assert list(first) == ["o1"]  # equal priorities: the older job first
    update(w, newer, priority=100)
    w.result(n, first["o1"])
    assert list(assigns(w.dispatch())) == ["n1"]


def test_terminate_on_complete_set_after_the_tasks_finished_ends_the_job(w: World) -> None:
    job = w.job()
    n = w.node()
    w.add(job, spec("t1"))
    w.result(n, assigns(w.dispatch())["t1"])
    assert job.state == JobState.ACTIVE  # NO_ACTION: it waits for more tasks
    plan = update(w, job, on_all_tasks_complete=OnAllTasksComplete.TERMINATE_JOB)
    assert (job.state, job.terminate_reason) == (JobState.COMPLETED, "AllTasksComplete")
    assert rows(plan, UpdateJob)[-1].state == JobState.COMPLETED
    assert JobChanged(ACCOUNT, "j", JobState.COMPLETED) in plan.events


def test_terminate_on_complete_set_on_a_job_with_no_tasks_waits_for_them(w: World) -> None:
    job = w.job()
    update(w, job, on_all_tasks_complete=OnAllTasksComplete.TERMINATE_JOB)
    assert job.state == JobState.ACTIVE


def test_a_wall_clock_already_passed_terminates_the_job(w: World) -> None:
    job = w.job()
    w.node()
    w.add(job, spec("t1"), spec("t2"))
    w.dispatch()
    w.now += 100
    update(w, job, max_wall_clock=50.0)
    assert (job.state, job.terminate_reason) == (JobState.TERMINATING, "MaxWallClockTimeExpiry")
    assert job.counts.row() == (0, 1, 1, 0, 1)  # t2 failed unrun; t1 is being stopped


def test_a_later_wall_clock_ends_the_job_when_it_comes(w: World) -> None:
    job = w.job(max_wall_clock=50.0)
    update(w, job, max_wall_clock=500.0)
    w.now += 100
    w.core.tick(w.now)
    assert job.state == JobState.ACTIVE
    w.now += 400
    w.core.tick(w.now)
    assert (job.state, job.terminate_reason) == (JobState.COMPLETED, "MaxWallClockTimeExpiry")


def test_a_new_default_retry_count_reaches_the_attempts_running_now(w: World) -> None:
    job = w.job()
    n = w.node(slots=2)
    w.add(job, spec("inherits"), spec("own", retries=0))
    got = assigns(w.dispatch())
    update(w, job, default_retries=2)
    w.result(n, got["inherits"], exit_code=3)
    w.result(n, got["own"], exit_code=3)
    assert list(assigns(w.dispatch())) == ["inherits"]  # retried; "own" keeps its 0
    assert job.counts.failed == 1


# -- the core: refusals --------------------------------------------------------------------------


def test_a_stale_etag_changes_nothing(w: World) -> None:
    job = w.job()
    read = job.etag
    update(w, job, priority=1)
    e = refused(w, job, "CONDITION_NOT_MET", if_match=read, priority=2)
    assert e.code == Code.FAILED_PRECONDITION and job.etag in e.message


def test_an_etag_matches_with_or_without_its_quotes_and_star_matches_any(w: World) -> None:
    job = w.job()
    update(w, job, if_match=job.etag.strip('"'), priority=1)
    update(w, job, if_match="*", priority=2)
    assert job.priority == 2


def test_an_etag_of_an_earlier_job_of_the_same_id_does_not_match(w: World) -> None:
    first = w.job()
    old = first.etag
    w.core.delete_job(first, w.now)
    again = w.job()
    assert again.revision == first.revision == 1 and again.etag != old
    refused(w, again, "CONDITION_NOT_MET", if_match=old, priority=3)


def test_a_state_change_changes_the_etag_and_moving_counts_do_not(w: World) -> None:
    job = w.job()
    w.node()
    etag = job.etag
    w.add(job, spec("t1"))
    w.dispatch()
    assert job.etag == etag  # a task added and started: the job itself did not change
    w.core.disable_job(ACCOUNT, "j", 3, w.now)
    assert job.etag != etag


def test_a_completed_or_terminating_job_cannot_be_updated(w: World) -> None:
    ending = w.job("ending")
    w.node()
    w.add(ending, spec("t1"))
    w.dispatch()
    w.core.terminate_job(ACCOUNT, "ending", "", w.now)
    assert ending.state == JobState.TERMINATING
    refused(w, ending, "JOB_BEING_TERMINATED", priority=1)
    done = w.job("done")
    w.core.terminate_job(ACCOUNT, "done", "", w.now)
    assert refused(w, done, "JOB_COMPLETED", priority=1).code == Code.FAILED_PRECONDITION


def test_a_disabled_job_can_be_updated(w: World) -> None:
    job = w.job()
    w.core.disable_job(ACCOUNT, "j", 1, w.now)
    update(w, job, priority=5, max_parallel=2)
    assert (job.state, job.priority, job.max_parallel) == (JobState.DISABLED, 5, 2)


def test_terminate_on_complete_cannot_be_turned_off(w: World) -> None:
    job = w.job(on_all_tasks_complete=OnAllTasksComplete.TERMINATE_JOB)
    e = refused(w, job, "INVALID_ARGUMENT",
                on_all_tasks_complete=OnAllTasksComplete.NO_ACTION)
    assert e.field == "job.on_all_tasks_complete"


def test_an_unknown_job_is_not_found(w: World) -> None:
    with pytest.raises(ShoalError) as e:
        w.core.update_job(ACCOUNT, "nope", changes(priority=1), "", w.now)
    assert (e.value.code, e.value.reason) == (Code.NOT_FOUND, "JOB_NOT_FOUND")


# -- the store --------------------------------------------------------------------------------


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[Apps]:
    a = Apps(tmp_path / "sched.db", Clock())
    yield a
    await a.close()


async def test_an_update_survives_a_restart_with_its_etag(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app, max_parallel_tasks=1)
    meta = {"team": "render"}
    job = await app.update_job(ACCOUNT, "j", changes(
        priority=9, max_parallel=2, default_retries=3, max_wall_clock=3600.0, metadata=meta,
        on_all_tasks_complete=OnAllTasksComplete.TERMINATE_JOB), "")
    etag, updated = job.etag, job.update_time
    app = await apps.restart(app)
    again = app.get_job(ACCOUNT, "j")
    assert (again.priority, again.max_parallel, again.default_retries, again.max_wall_clock,
            again.metadata, again.on_all_tasks_complete) == (
        9, 2, 3, 3600.0, meta, OnAllTasksComplete.TERMINATE_JOB)
    assert (again.etag, again.update_time) == (etag, updated)
    # The restored limit is the one that applies.
    n = Node(app, "a", 4)
    await n.connect()
    await app.create_tasks(ACCOUNT, "j", specs(3))
    await settle(app)
    assert len(n.assignments()) == 2


OLD_JOBS = """
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
  UNIQUE (account, id_lower)
);
INSERT INTO jobs (account, id, id_lower, pool_id, priority, on_all_tasks_complete, state,
                  create_time, state_time)
VALUES ('acct', 'old', 'old', 'p', 0, 1, 1, 100.0, 150.0);
"""


async def test_a_database_from_before_updates_opens_and_its_jobs_update(
    apps: Apps, tmp_path: Path
) -> None:
    db = sqlite3.connect(apps.path)
    db.executescript(OLD_JOBS)
    db.close()
    app = await apps.open()
    old = app.get_job(ACCOUNT, "old")
    assert (old.revision, old.update_time) == (1, 150.0)  # its last change: its state's
    await app.update_job(ACCOUNT, "old", changes(priority=4), "")
    app = await apps.restart(app)
    assert app.get_job(ACCOUNT, "old").priority == 4
    store = await Store.open(apps.path)  # opening again migrates nothing twice
    await store.close()


async def test_raising_max_parallel_tasks_lets_more_start_through_the_engine(apps: Apps) -> None:
    app = await apps.open()
    await make_job(app, max_parallel_tasks=1)
    n = Node(app, "a", 4)
    await n.connect()
    await app.create_tasks(ACCOUNT, "j", specs(3))
    await settle(app)
    assert len(n.assignments()) == 1
    await app.update_job(ACCOUNT, "j", changes(max_parallel=3), "")
    await settle(app)  # the round the dispatch loop runs when a plan asks for one
    assert len(n.assignments()) == 2
    assert app.get_job(ACCOUNT, "j").counts.running == 3
    assert (await app.get_task(ACCOUNT, "j", "t2")).state == TaskState.PREPARING
