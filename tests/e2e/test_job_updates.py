"""Updating a job through the public endpoint, against the real suite and real node agents:
each change acts on tasks that really run, a stale etag or a bad mask changes nothing, and
the errors carry their status, reason and field. Tests share one suite; each has its own
pool and job, named after itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from gateway.accounts import create_account
from shoal import Client, ShoalError
from shoal.suite import LocalSuite
from shoal.v1 import job_pb2, job_pb2_grpc, pool_pb2
from tests.support import wait_for


def error_of(call: Callable[[], Any]) -> ShoalError:
    with pytest.raises(ShoalError) as info:
        call()
    return info.value


@pytest.fixture(scope="module")
def c(shared_suite: LocalSuite) -> Client:
    """The default account's client, with pool "idle" (no nodes) for jobs that run nothing."""
    client = shared_suite.client()
    client.create_pool("idle", target_nodes=0)
    return client


def pool_with_node(c: Client, pool_id: str, slots: int) -> None:
    c.create_pool(pool_id, target_nodes=1, task_slots_per_node=slots)
    wait_for(lambda: [n for n in c.list_nodes(pool_id) if n.state == pool_pb2.Node.IDLE],
             f"an idle node in {pool_id}")


def blocking(started: Path, release: Path) -> str:
    """A task that says it started, then runs until `release` exists."""
    return (f"/bin/sh -c 'touch {started}/$AZ_BATCH_TASK_ID; "
            f"while [ ! -e {release} ]; do sleep 0.05; done'")


def test_raising_max_parallel_tasks_lets_more_tasks_run_at_once(c: Client, tmp_path: Path) -> None:
    pool_with_node(c, "wide", slots=4)
    c.create_job("capped", pool_id="wide", max_parallel_tasks=1)
    release = tmp_path / "release"
    c.add_tasks("capped", [{"id": f"t{i}", "command_line": blocking(tmp_path, release)}
                           for i in range(4)])
    wait_for(lambda: len(list(tmp_path.glob("t*"))) == 1, "one task running")
    counts = c.get_job("capped").task_counts
    assert (counts.running, counts.active) == (1, 3)  # the cap holds: 3 slots stay free
    updated = c.update_job("capped", max_parallel_tasks=3)
    assert updated.max_parallel_tasks == 3
    wait_for(lambda: len(list(tmp_path.glob("t*"))) == 3, "three tasks running at once")
    assert c.get_job("capped").task_counts.running == 3
    release.touch()
    done = c.wait_job("capped", timeout=60)
    assert done.task_counts.succeeded == 4


def test_terminate_on_complete_set_after_the_tasks_finished_completes_the_job(c: Client) -> None:
    pool_with_node(c, "quick", slots=2)
    c.create_job("open", pool_id="quick")
    c.add_tasks("open", [{"id": "a", "command_line": "true"}, {"id": "b", "command_line": "true"}])
    finished = c.wait_job("open", timeout=60)
    assert finished.state == job_pb2.Job.ACTIVE and finished.task_counts.succeeded == 2
    job = c.update_job("open", on_all_tasks_complete="terminate")
    assert (job.state, job.terminate_reason) == (job_pb2.Job.COMPLETED, "AllTasksComplete")
    assert c.get_job("open").state == job_pb2.Job.COMPLETED
    assert error_of(lambda: c.add_task("open", "late", "true")).reason == "JOB_NOT_ACTIVE"
    assert error_of(lambda: c.update_job("open", priority=1)).reason == "JOB_COMPLETED"


def test_a_stale_etag_changes_nothing(c: Client) -> None:
    c.create_job("guarded", pool_id="idle")
    read = c.get_job("guarded")
    assert read.etag.startswith('"') and read.HasField("update_time")
    mine = c.update_job("guarded", priority=5, if_match=read.etag)
    assert mine.priority == 5 and mine.etag != read.etag
    assert mine.update_time.ToNanoseconds() >= read.update_time.ToNanoseconds()
    e = error_of(lambda: c.update_job("guarded", priority=9, max_parallel_tasks=2,
                                      if_match=read.etag))
    assert (e.code.name, e.reason) == ("FAILED_PRECONDITION", "CONDITION_NOT_MET")
    now = c.get_job("guarded")
    assert (now.priority, now.max_parallel_tasks, now.etag) == (5, 0, mine.etag)


def test_bad_masks_and_values_name_their_field_and_change_nothing(
    shared_suite: LocalSuite, c: Client
) -> None:
    c.create_job("strict", pool_id="idle")
    before = c.get_job("strict")
    stub = job_pb2_grpc.JobServiceStub(grpc.insecure_channel(shared_suite.endpoint))
    auth = (("authorization", f"Bearer {shared_suite.client_config.key}"),)

    def raw(paths: list[str], **job: Any) -> ShoalError:
        req = job_pb2.UpdateJobRequest(name="jobs/strict", job=job_pb2.Job(**job),
                                       update_mask=FieldMask(paths=paths))
        with pytest.raises(grpc.RpcError) as info:
            stub.UpdateJob(req, metadata=auth, timeout=30)
        return ShoalError.from_rpc_error(info.value)

    for e, field in [
        (raw(["priority", "pool"], priority=3, pool="pools/other"), "update_mask.paths[1]"),
        (raw([]), "update_mask"),
        (error_of(lambda: c.update_job("strict")), "update_mask"),  # the client's own check
        (error_of(lambda: c.update_job("strict", priority=5000)), "job.priority"),
        (error_of(lambda: c.update_job("strict", max_task_retry_count=-1)),
         "job.constraints.max_task_retry_count"),
    ]:
        assert (e.code.name, e.reason, e.field) == ("INVALID_ARGUMENT", "INVALID_ARGUMENT", field)
        assert field in e.message
    c.update_job("strict", on_all_tasks_complete="terminate_job")
    e = error_of(lambda: c.update_job("strict", on_all_tasks_complete="no_action"))
    assert (e.code.name, e.field) == ("INVALID_ARGUMENT", "job.on_all_tasks_complete")
    after = c.get_job("strict")
    assert (after.priority, after.pool) == (before.priority, before.pool)


def test_an_unknown_job_or_another_accounts_job_is_not_found(
    shared_suite: LocalSuite, c: Client
) -> None:
    e = error_of(lambda: c.update_job("no-such-job", priority=1))
    assert (e.code.name, e.reason) == ("NOT_FOUND", "JOB_NOT_FOUND")
    c.create_job("mine", pool_id="idle")
    other = Client(shared_suite.endpoint,
                   create_account(shared_suite.config.db_path("gateway"), "updater",
                                  shared_suite.config.secret))
    e = error_of(lambda: other.update_job("mine", priority=1))
    assert (e.code.name, e.reason) == ("NOT_FOUND", "JOB_NOT_FOUND")
    assert c.get_job("mine").priority == 0
