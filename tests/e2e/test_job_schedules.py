"""Job schedules end to end through the real suite: jobs made at their run times run their
tasks on real nodes, at most one at a time; disable, terminate and delete; schedules survive a
restart of the job-scheduler.

The suite runs with a minimum recurrence interval of 1 s (Azure Batch's is 1 minute). To show
that a schedule made *no* job over a span, a second schedule ("witness") that makes a job every
second is watched: the loop handles every schedule in each pass, so once the witness has made
jobs after a run time of the other, the other has been looked at then too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from shoal.client import Client
from shoal.errors import ShoalError, StatusCode
from shoal.suite import LocalSuite
from shoal.v1 import job_pb2, job_schedule_pb2, pool_pb2, task_pb2
from tests.support import FAST, print_logs, processes_mentioning, wait_for

State = job_schedule_pb2.JobSchedule
PRINT_JOB = "/bin/sh -c 'echo $SHOAL_JOB_ID'"


@pytest.fixture(scope="module")
def schedules_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuite]:
    s = LocalSuite(tmp_path_factory.mktemp("schedules") / "state", gateway_port=0,
                   pool_manager_port=0, scheduler_port=0, stager_port=0, metrics_port=0,
                   dashboard_port=0, timing=replace(FAST, min_recurrence_interval=1))
    s.start()
    try:
        yield s
    finally:
        s.stop()
        print_logs(s)
        leftovers = processes_mentioning(str(s.state_dir))
        assert leftovers == {}, f"processes left behind: {leftovers}"


@pytest.fixture
def client(schedules_suite: LocalSuite) -> Iterator[Client]:
    c = schedules_suite.client()
    yield c
    c.close()


def pool(c: Client, pool_id: str, slots: int = 4) -> None:
    c.create_pool(pool_id, target_nodes=1, task_slots_per_node=slots)
    wait_for(lambda: any(n.state == pool_pb2.Node.IDLE for n in c.list_nodes(pool_id)),
             f"a node of {pool_id}")


def seconds(ts: Timestamp) -> float:
    return ts.ToNanoseconds() / 1e9


def schedule_jobs(c: Client, schedule_id: str) -> list[job_pb2.Job]:
    return [j for j in c.list_jobs() if j.job_schedule == f"jobSchedules/{schedule_id}"]


def completed(c: Client, job_id: str) -> job_pb2.Job:
    """The job once COMPLETED. (Not wait_job: a schedule's job has no tasks for a moment
    after it is made, and wait_job takes a job without tasks for a finished one.)"""
    return wait_for(lambda: (j := c.get_job(job_id)).state == job_pb2.Job.COMPLETED and j,
                    f"{job_id} to complete")


def witness_passes(c: Client, witness: str, after: float, count: int = 2) -> bool:
    """Whether the witness schedule has made `count` jobs since `after`."""
    return len([j for j in schedule_jobs(c, witness) if seconds(j.create_time) > after]) >= count


def test_a_schedule_fires_twice_and_each_job_runs_its_task(client: Client) -> None:
    c = client
    pool(c, "fire")
    s = c.create_job_schedule("twice", pool_id="fire", every=1,
                              tasks=[{"id": "t", "command_line": PRINT_JOB}],
                              on_all_tasks_complete="terminate_job")
    assert (s.name, s.state) == ("jobSchedules/twice", State.ACTIVE)
    wait_for(lambda: c.get_job_schedule("twice").jobs_created >= 2, "a second job")
    completed(c, "twice-2")
    c.terminate_job_schedule("twice")
    for job_id in ("twice-1", "twice-2"):
        job = c.get_job(job_id)
        assert job.state == job_pb2.Job.COMPLETED
        assert job.job_schedule == "jobSchedules/twice"
        assert job.task_counts.succeeded == 1
        t = c.get_task(job_id, "t")
        assert t.execution_info.result == task_pb2.TaskExecutionInfo.SUCCESS
        assert c.read_task_file(job_id, "t") == f"{job_id}\n".encode()
    first, second = c.get_job("twice-1"), c.get_job("twice-2")
    # One active job at a time: the second was made after the first had completed.
    assert seconds(second.create_time) >= seconds(first.end_time)


def test_one_active_job_at_a_time(client: Client, tmp_path: Path) -> None:
    c = client
    pool(c, "one")
    marker = tmp_path / "go"
    wait_for_marker = task_pb2.CreateTaskRequest(task_id="t", task=task_pb2.Task(
        command_line=f"/bin/sh -c 'while [ ! -e {marker} ]; do sleep 0.1; done'",
        constraints=task_pb2.TaskConstraints(max_wall_clock_time={"seconds": 120})))
    c.create_job_schedule("slow", pool_id="one", every=1, tasks=[wait_for_marker],
                          on_all_tasks_complete="terminate_job")
    wait_for(lambda: c.get_job_schedule("slow").jobs_created == 1, "the first job")
    c.create_job_schedule("witness-one", pool_id="one", every=1,
                          tasks=[{"id": "t", "command_line": "true"}],
                          on_all_tasks_complete="terminate_job")
    due = seconds(c.get_job_schedule("slow").next_run_time)
    wait_for(lambda: witness_passes(c, "witness-one", due), "two runs of the witness")
    s = c.get_job_schedule("slow")
    assert s.jobs_created == 1 and s.recent_job == "jobs/slow-1"
    assert seconds(s.next_run_time) <= time.time()  # due, and waiting for slow-1
    assert [j.name for j in schedule_jobs(c, "slow")] == ["jobs/slow-1"]
    marker.touch()
    wait_for(lambda: c.get_job_schedule("slow").jobs_created >= 2, "the job after slow-1")
    assert c.get_job("slow-1").state == job_pb2.Job.COMPLETED
    c.terminate_job_schedule("witness-one")
    c.terminate_job_schedule("slow")


def test_a_disabled_schedule_makes_no_job_until_enabled(client: Client) -> None:
    c = client
    pool(c, "off")
    c.create_job_schedule("witness-off", pool_id="off", every=1,
                          tasks=[{"id": "t", "command_line": "true"}],
                          on_all_tasks_complete="terminate_job")
    start = time.time() + 1.5
    c.create_job_schedule("paused", pool_id="off", every=1, do_not_run_until=start,
                          tasks=[{"id": "t", "command_line": PRINT_JOB}],
                          on_all_tasks_complete="terminate_job")
    assert c.disable_job_schedule("paused").state == State.DISABLED
    wait_for(lambda: witness_passes(c, "witness-off", start), "two runs of the witness")
    s = c.get_job_schedule("paused")
    assert (s.state, s.jobs_created, s.recent_job) == (State.DISABLED, 0, "")
    assert schedule_jobs(c, "paused") == []
    assert c.enable_job_schedule("paused").state == State.ACTIVE
    # The run that came due while disabled is made at once, and only that one.
    wait_for(lambda: c.get_job_schedule("paused").jobs_created >= 1, "a job once enabled")
    assert completed(c, "paused-1").task_counts.succeeded == 1
    c.terminate_job_schedule("paused")
    c.terminate_job_schedule("witness-off")
    assert c.read_task_file("paused-1", "t") == b"paused-1\n"


def test_terminate_completes_the_schedule_and_its_job(client: Client) -> None:
    c = client
    pool(c, "end")
    c.create_job_schedule("ending", pool_id="end", every=3600,
                          tasks=[{"id": "t", "command_line": "sleep 60"}])
    wait_for(lambda: c.get_job_schedule("ending").jobs_created == 1, "the first job")
    wait_for(lambda: any(t.state == task_pb2.Task.RUNNING for t in c.list_tasks("ending-1")),
             "the task of ending-1 to run")
    s = c.terminate_job_schedule("ending")
    assert s.state == State.COMPLETED and not s.HasField("next_run_time")
    job = completed(c, "ending-1")
    assert job.terminate_reason == "JobScheduleTerminated"
    with pytest.raises(ShoalError) as e:
        c.enable_job_schedule("ending")
    assert (e.value.code, e.value.reason) == (StatusCode.FAILED_PRECONDITION,
                                              "JOB_SCHEDULE_COMPLETED")


def test_delete_removes_the_schedule_and_its_jobs(client: Client) -> None:
    c = client
    pool(c, "del")
    c.create_job("del-keep", pool_id="del")
    c.create_job_schedule("doomed", pool_id="del", every=1,
                          tasks=[{"id": "t", "command_line": "true"}],
                          on_all_tasks_complete="terminate_job")
    wait_for(lambda: c.get_job_schedule("doomed").jobs_created >= 2, "two jobs")
    c.delete_job_schedule("doomed")
    with pytest.raises(ShoalError) as e:
        c.get_job_schedule("doomed")
    assert e.value.reason == "JOB_SCHEDULE_NOT_FOUND"
    assert schedule_jobs(c, "doomed") == []
    with pytest.raises(ShoalError) as e:
        c.get_job("doomed-1")
    assert e.value.reason == "JOB_NOT_FOUND"
    assert c.get_job("del-keep").name == "jobs/del-keep"
    assert "doomed" not in [s.name for s in c.list_job_schedules()]


def test_schedules_survive_a_restart(schedules_suite: LocalSuite, client: Client) -> None:
    c = client
    pool(c, "keep")
    c.create_job_schedule("hourly", pool_id="keep", every=3600, display_name="kept",
                          tasks=[{"id": "t", "command_line": "true"}],
                          on_all_tasks_complete="terminate_job")
    before = wait_for(lambda: (s := c.get_job_schedule("hourly")).jobs_created == 1 and s,
                      "the first job")
    completed(c, "hourly-1")
    schedules_suite.restart("job-scheduler")
    after = wait_for(lambda: _get(c, "hourly"), "the schedule after the restart")
    assert after == before
    assert [j.name for j in schedule_jobs(c, "hourly")] == ["jobs/hourly-1"]
    c.delete_job_schedule("hourly")


def _get(c: Client, schedule_id: str) -> job_schedule_pb2.JobSchedule | None:
    try:
        return c.get_job_schedule(schedule_id)
    except ShoalError as e:
        if e.code == StatusCode.UNAVAILABLE:
            return None
        raise


def test_bad_schedules_are_refused_naming_the_field(client: Client) -> None:
    c = client
    cases = [
        (dict(every=1, cron="* * * * *"), "job_schedule.schedule"),
        (dict(cron="61 * * * *"), "job_schedule.schedule.cron"),
        (dict(every=0.5), "job_schedule.schedule.recurrence_interval"),
        (dict(every=1, tasks=[{"id": "bad id", "command_line": "true"}]),
         "job_schedule.job_specification.tasks[0].task_id"),
    ]
    for kw, field in cases:
        with pytest.raises(ShoalError) as e:
            c.create_job_schedule("bad", pool_id="p", **kw)  # type: ignore[arg-type]
        assert (e.value.code, e.value.field) == (StatusCode.INVALID_ARGUMENT, field), kw
    with pytest.raises(ShoalError) as e:
        c.create_job_schedule("x" * 57, pool_id="p", every=60)
    assert e.value.field == "job_schedule_id"
