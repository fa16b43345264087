"""Updating pools and tasks through the public endpoint, against the real suite and real node
agents: a pool's new start task and packages reach the nodes that join or are rebooted after
the update (Azure Batch's rule), a task's new wall clock reaches the attempt running now and
its new retry count its next failure; a stale etag or a bad mask changes nothing, and the
errors carry their status, reason and field. Tests share one suite; each has its own pool and
job, named after itself."""

from __future__ import annotations

import io
import shlex
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from gateway.accounts import create_account
from shoal import Client, NodeCommand, ShoalError
from shoal.suite import LocalSuite
from shoal.v1 import pool_pb2, pool_pb2_grpc, task_pb2
from tests.support import wait_for

Node = pool_pb2.Node


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


def idle_nodes(c: Client, pool_id: str, count: int) -> list[str]:
    def check() -> list[str] | None:
        nodes = list(c.list_nodes(pool_id))
        ready = [n.name.rsplit("/", 1)[-1] for n in nodes if n.state == Node.IDLE]
        return ready if len(nodes) == count == len(ready) else None

    return wait_for(check, f"{count} idle nodes in {pool_id}", timeout=60)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- pools ------------------------------------------------------------------------------------


def test_a_new_start_task_and_package_reach_nodes_that_join_or_reboot(
    c: Client, tmp_path: Path
) -> None:
    log = tmp_path / "started"
    c.create_application("tool")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("tool.sh", "echo tool")
    c.upload_application_version("tool", "1.0", archive.getvalue(), format="zip")
    c.set_default_version("tool", "1.0")

    def start(tag: str) -> NodeCommand:
        # Which start task ran on which node, and whether the package was there.
        line = f'echo "{tag} $SHOAL_NODE_ID ${{SHOAL_APP_PACKAGE_TOOL:-none}}" >> {log}'
        return NodeCommand(f"/bin/sh -c {shlex.quote(line)}")

    c.create_pool("setup", target_nodes=1, start_task=start("old"))
    (first,) = idle_nodes(c, "setup", 1)
    assert lines(log) == [f"old {first} none"]
    read = c.get_pool("setup")

    updated = c.update_pool("setup", start_task=start("new"), application_package_references=["tool"],
                            metadata={"stage": "2"}, if_match=read.etag)
    assert updated.etag != read.etag and updated.start_task == start("new").start_task()
    assert [r.application_id for r in updated.application_package_references] == ["tool"]
    assert c.get_pool("setup") == updated

    # A node that joins after the update sets up with the new start task and the package.
    c.resize_pool("setup", 2)
    second = next(n for n in idle_nodes(c, "setup", 2) if n != first)
    installed = lines(log)[1].split()
    assert installed[:2] == ["new", second] and installed[2] != "none"
    # A node that was running keeps what it set up until it is rebooted; then it is new.
    assert len(lines(log)) == 2
    c.reboot_node("setup", first)
    wait_for(lambda: len(lines(log)) == 3, "the rebooted node to run its start task again")
    assert lines(log)[2].split()[:2] == ["new", first] and lines(log)[2].split()[2] != "none"
    idle_nodes(c, "setup", 2)


def test_a_stale_pool_etag_or_a_bad_mask_changes_nothing(
    shared_suite: LocalSuite, c: Client
) -> None:
    c.create_pool("guarded", target_nodes=0, metadata={"v": "1"})
    read = c.get_pool("guarded")
    mine = c.update_pool("guarded", metadata={"v": "2"}, if_match=read.etag)
    e = error_of(lambda: c.update_pool("guarded", metadata={"v": "3"}, clear_start_task=True,
                                       if_match=read.etag))
    assert (e.code.name, e.reason) == ("FAILED_PRECONDITION", "CONDITION_NOT_MET")
    stub = pool_pb2_grpc.PoolServiceStub(grpc.insecure_channel(shared_suite.endpoint))
    auth = (("authorization", f"Bearer {shared_suite.client_config.key}"),)
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdatePool(pool_pb2.UpdatePoolRequest(
            name="pools/guarded", pool=pool_pb2.Pool(target_nodes=5, metadata={"v": "4"}),
            update_mask=FieldMask(paths=["metadata", "target_nodes"])), metadata=auth, timeout=30)
    bad = ShoalError.from_rpc_error(info.value)
    assert (bad.code.name, bad.field) == ("INVALID_ARGUMENT", "update_mask.paths[1]")
    e = error_of(lambda: c.update_pool("guarded", application_package_references=["bad id!"]))
    assert e.field == "pool.application_package_references[0].application_id"
    now = c.get_pool("guarded")
    assert (dict(now.metadata), now.target_nodes, now.etag) == ({"v": "2"}, 0, mine.etag)
    e = error_of(lambda: c.update_pool("nope", metadata={}))
    assert (e.code.name, e.reason) == ("NOT_FOUND", "POOL_NOT_FOUND")
    other = Client(shared_suite.endpoint,
                   create_account(shared_suite.config.db_path("gateway"), "pool-updater",
                                  shared_suite.config.secret))
    assert error_of(lambda: other.update_pool("guarded", metadata={})).reason == "POOL_NOT_FOUND"


# -- tasks ------------------------------------------------------------------------------------


def blocking(flags: Path, then: str = "true") -> str:
    """A task that says it started (attempt by attempt), runs until `flags/release` exists,
    then runs `then`."""
    return ("/bin/sh -c " + shlex.quote(
        f"touch {flags}/started-$SHOAL_TASK_ATTEMPT; "
        f"while [ ! -e {flags}/release ]; do sleep 0.05; done; {then}"))


def test_a_wall_clock_set_on_a_running_task_ends_it(c: Client, tmp_path: Path) -> None:
    c.create_pool("clock", target_nodes=1)
    idle_nodes(c, "clock", 1)
    c.create_job("clocked", pool_id="clock")
    c.add_task("clocked", "long", blocking(tmp_path))  # no limit, and it never ends by itself
    wait_for(lambda: (tmp_path / "started-1").exists(), "the task to run")
    running = c.get_task("clocked", "long")
    assert running.state == task_pb2.Task.RUNNING
    updated = c.update_task("clocked", "long", max_wall_clock_time=1, if_match=running.etag)
    assert updated.constraints.max_wall_clock_time.seconds == 1 and updated.etag != running.etag
    done = c.wait_task("clocked", "long", timeout=60)
    info = done.execution_info
    assert (info.result, info.failure_info.code, info.exit_code) == (
        task_pb2.TaskExecutionInfo.FAILURE, "MAX_WALL_CLOCK_TIME_EXCEEDED", 137)
    e = error_of(lambda: c.update_task("clocked", "long", max_task_retry_count=3))
    assert (e.code.name, e.reason) == ("FAILED_PRECONDITION", "TASK_COMPLETED")


def test_a_raised_retry_count_applies_to_the_running_tasks_next_failure(
    c: Client, tmp_path: Path
) -> None:
    c.create_pool("retry", target_nodes=1)
    idle_nodes(c, "retry", 1)
    c.create_job("retried", pool_id="retry")
    c.add_task("retried", "flaky", blocking(tmp_path, "exit 3"), max_task_retry_count=0)
    wait_for(lambda: (tmp_path / "started-1").exists(), "the first attempt to run")
    c.update_task("retried", "flaky", max_task_retry_count=1)
    (tmp_path / "release").touch()
    done = c.wait_task("retried", "flaky", timeout=60)
    info = done.execution_info
    assert (info.result, info.exit_code, info.retry_count) == (
        task_pb2.TaskExecutionInfo.FAILURE, 3, 1)
    assert (tmp_path / "started-2").exists() and len(info.previous_attempts) == 1


def test_a_stale_task_etag_or_a_bad_mask_changes_nothing(
    shared_suite: LocalSuite, c: Client
) -> None:
    c.create_job("strict", pool_id="idle")
    c.add_task("strict", "t", "true", max_wall_clock_time=60)
    read = c.get_task("strict", "t")
    assert read.etag.startswith('"') and read.HasField("update_time")
    mine = c.update_task("strict", "t", retention_time=3600, if_match=read.etag)
    assert mine.constraints.retention_time.seconds == 3600
    e = error_of(lambda: c.update_task("strict", "t", max_wall_clock_time=0, if_match=read.etag))
    assert (e.code.name, e.reason) == ("FAILED_PRECONDITION", "CONDITION_NOT_MET")
    for call, field in [
        (lambda: c.update_task("strict", "t"), "update_mask"),
        (lambda: c.update_task("strict", "t", max_task_retry_count=500),
         "task.constraints.max_task_retry_count"),
        (lambda: c.update_task("strict", "t", max_wall_clock_time=-5),
         "task.constraints.max_wall_clock_time"),
    ]:
        e = error_of(call)
        assert (e.code.name, e.field) == ("INVALID_ARGUMENT", field) and field in e.message
    now = c.get_task("strict", "t")
    assert (now.constraints.max_wall_clock_time.seconds, now.etag) == (60, mine.etag)
    # The job's count again: the field is unset.
    back = c.update_task("strict", "t", max_task_retry_count="job", max_wall_clock_time=0)
    assert not back.constraints.HasField("max_task_retry_count")
    assert not back.constraints.HasField("max_wall_clock_time")
    e = error_of(lambda: c.update_task("strict", "nope", retention_time=5))
    assert (e.code.name, e.reason) == ("NOT_FOUND", "TASK_NOT_FOUND")
    other = Client(shared_suite.endpoint,
                   create_account(shared_suite.config.db_path("gateway"), "task-updater",
                                  shared_suite.config.secret))
    assert error_of(lambda: other.update_task("strict", "t", retention_time=5)).reason == (
        "JOB_NOT_FOUND")
