"""Job schedules' use cases through the harness: the real Scheduler and both real SQLite
files, an injected clock, the loop's pass (`tick`) called by the test. No network, no sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration

from services.job_scheduler.engine import Engine
from services.job_scheduler.model import JobState
from services.job_scheduler.schedule_app import RETRY_AFTER, JobSchedules
from services.job_scheduler.schedule_store import ScheduleStore
from services.job_scheduler.schedules import ScheduleState
from shoal.v1 import job_pb2, job_schedule_pb2, task_pb2
from tests.scheduler.harness import ACCOUNT, TIMING, Apps, Clock, expect_error, make_job

INTERVAL = 600


@dataclass
class World:
    apps: Apps
    app: Engine
    schedules: JobSchedules
    path: Path
    clock: Clock

    async def restart(self) -> None:
        """Stop both (as a crash would leave them: nothing more is written) and open again."""
        await self.schedules.store.close()
        self.app = await self.apps.restart(self.app)
        await self.open_schedules()

    async def open_schedules(self) -> None:
        store = await ScheduleStore.open(self.path)
        self.schedules = JobSchedules(store, self.app, replace(TIMING, min_recurrence_interval=60),
                                      self.clock)
        await self.schedules.load()

    def jobs(self) -> list[str]:
        return [j.id for j in self.app.list_jobs(ACCOUNT, None, None, 1000)]

    async def complete(self, job_id: str) -> None:
        await self.app.terminate_job(ACCOUNT, job_id, "")
        assert self.app.get_job(ACCOUNT, job_id).state == JobState.COMPLETED


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = Clock()
    apps = Apps(tmp_path / "job-scheduler.db", clock)
    w = World(apps, await apps.open(), None, tmp_path / "schedules.db", clock)  # type: ignore[arg-type]
    await w.open_schedules()
    yield w
    await w.schedules.store.close()
    await apps.close()


def request(sid: str = "s", interval: int | None = INTERVAL, tasks: int = 2,
            **schedule: object) -> job_schedule_pb2.CreateJobScheduleRequest:
    sched = job_schedule_pb2.Schedule(**schedule)  # type: ignore[arg-type]
    if interval is not None:
        sched.recurrence_interval.CopyFrom(Duration(seconds=interval))
    return job_schedule_pb2.CreateJobScheduleRequest(
        job_schedule_id=sid,
        job_schedule=job_schedule_pb2.JobSchedule(
            schedule=sched,
            job_specification=job_schedule_pb2.JobSpecification(
                job=job_pb2.Job(pool="pools/p"),
                tasks=[task_pb2.CreateTaskRequest(task_id=f"t{i}", task=task_pb2.Task(
                    command_line=f"echo {i}")) for i in range(tasks)],
            ),
        ),
    )


async def test_a_run_creates_the_job_with_the_template_tasks(world: World) -> None:
    await world.schedules.create(ACCOUNT, request())
    await world.schedules.tick()
    job = world.app.get_job(ACCOUNT, "s-1")
    assert job.schedule_id == "s" and job.pool_id == "p"
    tasks = await world.app.list_tasks(ACCOUNT, "s-1", None, None, 10)
    assert [t.spec.id for t in tasks] == ["t0", "t1"]
    s = world.schedules.get(ACCOUNT, "s")
    assert (s.recent_job, s.jobs_created, s.next_run) == ("s-1", 1, world.clock.t + INTERVAL)


async def test_one_active_job_at_a_time(world: World) -> None:
    await world.schedules.create(ACCOUNT, request())
    await world.schedules.tick()
    world.clock.advance(3 * INTERVAL + 1)
    await world.schedules.tick()
    assert world.jobs() == ["s-1"]  # due three times over, but s-1 is still active
    await world.complete("s-1")
    await world.schedules.tick()
    assert world.jobs() == ["s-1", "s-2"]  # at once when it completed, and only one
    await world.schedules.tick()
    assert world.jobs() == ["s-1", "s-2"]


async def test_runs_missed_while_stopped_fire_once(world: World) -> None:
    await world.schedules.create(ACCOUNT, request())
    await world.schedules.tick()
    await world.complete("s-1")
    await world.restart()
    world.clock.advance(10 * INTERVAL + 5)
    await world.schedules.tick()
    await world.schedules.tick()
    assert world.jobs() == ["s-1", "s-2"]
    s = world.schedules.get(ACCOUNT, "s")
    assert s.next_run is not None and s.next_run > world.clock.t


async def test_a_job_made_before_a_crash_is_adopted_not_made_twice(world: World) -> None:
    await world.schedules.create(ACCOUNT, request())
    # The job of the first run exists but the schedule never recorded it (nor its tasks).
    await world.app.create_job(ACCOUNT, job_pb2.CreateJobRequest(
        job_id="s-1", job=job_pb2.Job(pool="pools/p")), schedule_id="s")
    await world.schedules.tick()
    assert world.jobs() == ["s-1"]
    assert world.schedules.get(ACCOUNT, "s").recent_job == "s-1"
    assert len(await world.app.list_tasks(ACCOUNT, "s-1", None, None, 10)) == 2


async def test_an_id_taken_by_another_job_is_skipped(world: World) -> None:
    await make_job(world.app, "s-1")
    await world.schedules.create(ACCOUNT, request())
    await world.schedules.tick()
    assert world.schedules.get(ACCOUNT, "s").recent_job == "s-2"
    assert world.app.get_job(ACCOUNT, "s-1").schedule_id == ""


async def test_disabled_creates_nothing_until_enabled(world: World) -> None:
    await world.schedules.create(ACCOUNT, request())
    await world.schedules.disable(ACCOUNT, "s")
    world.clock.advance(2 * INTERVAL)
    await world.schedules.tick()
    assert world.jobs() == []
    await world.restart()  # and it stays disabled
    await world.schedules.tick()
    assert world.jobs() == []
    await world.schedules.enable(ACCOUNT, "s")
    await world.schedules.tick()
    assert world.jobs() == ["s-1"]


async def test_terminate_ends_the_schedule_and_its_job(world: World) -> None:
    await world.schedules.create(ACCOUNT, request())
    await world.schedules.tick()
    s = await world.schedules.terminate(ACCOUNT, "s")
    assert (s.state, s.next_run) == (ScheduleState.COMPLETED, None)
    job = world.app.get_job(ACCOUNT, "s-1")
    assert job.state == JobState.COMPLETED and job.terminate_reason == "JobScheduleTerminated"
    world.clock.advance(2 * INTERVAL)
    await world.schedules.tick()
    assert world.jobs() == ["s-1"]
    await expect_error(world.schedules.enable(ACCOUNT, "s"), "JOB_SCHEDULE_COMPLETED")


async def test_delete_removes_its_jobs_only(world: World) -> None:
    await make_job(world.app, "other")
    await world.schedules.create(ACCOUNT, request())
    await world.schedules.tick()
    await world.complete("s-1")
    world.clock.advance(INTERVAL)
    await world.schedules.tick()
    assert world.jobs() == ["other", "s-1", "s-2"]
    await world.schedules.delete(ACCOUNT, "s")
    assert world.jobs() == ["other"]
    await expect_error(world.schedules.enable(ACCOUNT, "s"), "JOB_SCHEDULE_NOT_FOUND")
    await world.restart()
    assert world.schedules.list(ACCOUNT, None, 10) == []


async def test_one_shot_completes_after_its_job(world: World) -> None:
    await world.schedules.create(ACCOUNT, request(interval=None))
    await world.schedules.tick()
    assert world.schedules.get(ACCOUNT, "s").state == ScheduleState.ACTIVE
    await world.complete("s-1")
    await world.schedules.tick()
    s = world.schedules.get(ACCOUNT, "s")
    assert (s.state, s.jobs_created) == (ScheduleState.COMPLETED, 1)


async def test_a_run_whose_job_cannot_be_made_stays_due(world: World) -> None:
    req = request()
    req.job_schedule.job_specification.job.pool = "pools/gone"
    await world.schedules.create(ACCOUNT, req)
    due = world.schedules.get(ACCOUNT, "s").next_run
    for _ in range(3):
        await world.schedules.tick()
        world.clock.advance(RETRY_AFTER)
    assert world.jobs() == []
    s = world.schedules.get(ACCOUNT, "s")
    # Not skipped: it is made once the pool is there (or the schedule is terminated).
    assert (s.jobs_created, s.state, s.next_run) == (0, ScheduleState.ACTIVE, due)


async def test_ids_are_unique_per_account_ignoring_case(world: World) -> None:
    await world.schedules.create(ACCOUNT, request("Nightly"))
    await expect_error(world.schedules.create(ACCOUNT, request("nightly")),
                       "JOB_SCHEDULE_ALREADY_EXISTS")
    await world.schedules.create("other-account", request("nightly"))
    assert [s.id for s in world.schedules.list(ACCOUNT, None, 10)] == ["Nightly"]


async def test_a_call_that_waited_for_a_schedule_deleted_meanwhile_finds_it_gone(
    world: World,
) -> None:
    sched = world.schedules
    s = await sched.create(ACCOUNT, request())
    async with sched._lock(s):  # as a run in progress holds it
        deleting = asyncio.create_task(sched.delete(ACCOUNT, "s"))
        await asyncio.sleep(0)
        disabling = asyncio.create_task(sched.disable(ACCOUNT, "s"))
        await asyncio.sleep(0)
    await deleting
    await expect_error(disabling, "JOB_SCHEDULE_NOT_FOUND")
    await sched.create(ACCOUNT, request())  # the id is free, and the new one is untouched
    assert sched.get(ACCOUNT, "s").state == ScheduleState.ACTIVE
