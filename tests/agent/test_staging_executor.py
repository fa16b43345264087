"""The executor with staging, driven directly: real subprocesses, the real S3 server behind
presigned URLs, and a stand-in for the scheduler's side of the staging protocol (it answers
StagingRequests as the job-scheduler relays them to the stager)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration

from agent.executor import Executor
from agent.layout import NodeLayout
from agent.staging.attempt import Staging
from shoal.agent.v1 import agent_pb2
from shoal.v1 import application_pb2, task_pb2
from tests.agent.staging_support import (
    Bucket,
    SchedulerStandIn,
    make_staging,
    package_grant,
    tar_gz,
)
from tests.support import eventually

OF = task_pb2.OutputFile
DOWN, UP = agent_pb2.DOWNLOADS, agent_pb2.UPLOADS


@pytest.fixture
async def staging(layout: NodeLayout, sched: SchedulerStandIn) -> AsyncIterator[Staging]:
    s = make_staging(layout.root, sched)
    yield s
    await s.transfers.close()


@pytest.fixture
def executor(layout: NodeLayout, staging: Staging) -> Executor:
    e = Executor(layout, pool_id="p1", node_id="n1",
                 environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, staging=staging)
    e.upload_logs = True  # as the scheduler's Welcome says when storage is configured
    return e


def staged(aid: str, command: str, *, resource_files: int = 0, packages: int = 0,
           outputs: list[OF] | None = None, files: bool = True, **kw: Any) -> agent_pb2.Assignment:
    a = agent_pb2.Assignment(attempt_id=aid, job_id="j1", task_id=f"t-{aid}", command_line=command,
                             required_slots=1, attempt_number=1, **kw)
    if files:
        a.files.SetInParent()
        a.files.resource_files.extend(
            task_pb2.ResourceFile(container="inputs", object_key=f"k{i}", file_path=f"f{i}")
            for i in range(resource_files)
        )
        a.files.application_packages.extend(
            application_pb2.ApplicationPackageReference(application_id=f"app{i}")
            for i in range(packages)
        )
        a.files.output_files.extend(outputs or [])
    return a


def paths(layout: NodeLayout, a: agent_pb2.Assignment) -> Any:
    return layout.attempt(a.job_id, a.task_id, a.attempt_id)


class Started:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, aid: str, _t: float) -> None:
        self.ids.append(aid)


async def test_inputs_and_packages_are_staged_before_the_process_which_sees_them(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket, layout: NodeLayout
) -> None:
    data = bucket.put("inputs/scene.txt", b"a scene\n")
    data.file_path, data.file_mode = "in/scene.txt", 0o640
    blender = package_grant(bucket, "blender", "2.8", tar_gz(
        {"bin/blender": (b"#!/bin/sh\necho rendering \"$(cat \"$1\")\"\n", 0o755)}), is_default=True)
    sched.downloads["s1"] = agent_pb2.StagingGrant(downloads=[data], packages=[blender])
    a = staged("s1", "/bin/sh -c '$SHOAL_APP_PACKAGE_BLENDER_2_8/bin/blender in/scene.txt; "
                     "echo $AZ_BATCH_APP_PACKAGE_blender; stat -c %a in/scene.txt'",
               resource_files=1, packages=1)
    started = Started()
    r = await executor.run(a, started)
    assert r is not None and r.exit_code == 0 and not r.HasField("failure_info")
    install = layout.root / "applications" / "blender" / "2.8"
    assert paths(layout, a).stdout.read_text() == f"rendering a scene\n{install}\n640\n"
    assert started.ids == ["s1"]
    assert [(q.attempt_id, q.kind) for q in sched.requests] == [("s1", DOWN), ("s1", UP)]
    # The attempt carried files, so its non-empty log outlives the node.
    assert bucket.read("logs/s1/stdout.txt") == paths(layout, a).stdout.read_bytes()


async def test_a_task_without_files_stages_nothing_unless_logs_are_asked_for(
    executor: Executor, sched: SchedulerStandIn, layout: NodeLayout
) -> None:
    executor.upload_logs = False
    a = staged("plain", "/bin/sh -c 'echo hi'", files=False)
    r = await executor.run(a)
    assert r is not None and r.exit_code == 0
    assert sched.requests == []


async def test_logs_are_uploaded_only_when_there_are_any(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket
) -> None:
    r = await executor.run(staged("e1", "/bin/sh -c 'echo out; echo err >&2'"))
    assert r is not None and r.exit_code == 0 and not r.HasField("failure_info")
    [req] = sched.requests
    assert (req.kind, [(u.container, u.key) for u in req.uploads]) == (
        UP, [("", "stdout.txt"), ("", "stderr.txt")])
    assert bucket.read("logs/e1/stdout.txt") == b"out\n"
    assert bucket.read("logs/e1/stderr.txt") == b"err\n"
    quiet = await executor.run(staged("e2", "true"))
    assert quiet is not None and quiet.exit_code == 0
    assert len(sched.requests) == 1  # nothing printed, nothing asked


async def test_a_log_upload_that_is_refused_is_only_a_warning(
    executor: Executor, sched: SchedulerStandIn
) -> None:
    sched.answer = lambda req: agent_pb2.StagingGrant(
        attempt_id=req.attempt_id, kind=req.kind,
        failure=task_pb2.FailureInfo(code="OUTPUT_FILE_UPLOAD_FAILED", message="no storage"))
    r = await executor.run(staged("e3", "/bin/sh -c 'echo out; exit 2'"))
    assert r is not None and r.exit_code == 2 and not r.HasField("failure_info")


async def test_a_grant_failure_fails_the_attempt_and_no_process_runs(
    executor: Executor, sched: SchedulerStandIn, layout: NodeLayout
) -> None:
    missing = task_pb2.FailureInfo(category=task_pb2.FailureInfo.USER_ERROR,
                                   code="RESOURCE_FILE_DOWNLOAD_FAILED",
                                   message="resource_files[0]: object 'k0' not found")
    sched.downloads["g1"] = agent_pb2.StagingGrant(failure=missing)
    started = Started()
    a = staged("g1", "/bin/sh -c 'echo ran > ran.txt'", resource_files=1)
    r = await executor.run(a, started)
    assert r is not None and r.failure_info == missing
    assert not r.HasField("exit_code") and not r.HasField("start_time")
    assert started.ids == [] and not paths(layout, a).stdout.exists()
    assert not (paths(layout, a).wd / "ran.txt").exists()


async def test_a_download_that_fails_verification_fails_the_attempt(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket, layout: NodeLayout
) -> None:
    d = bucket.put("inputs/v.bin", b"bytes")
    d.sha256 = "0" * 64
    sched.downloads["v1"] = agent_pb2.StagingGrant(downloads=[d])
    started = Started()
    r = await executor.run(staged("v1", "true", resource_files=1), started)
    assert r is not None and r.failure_info.code == "RESOURCE_FILE_DOWNLOAD_FAILED"
    assert "'inputs/v.bin'" in r.failure_info.message and "SHA-256" in r.failure_info.message
    assert started.ids == [] and not r.HasField("exit_code")


async def test_a_package_failure_fails_the_attempt(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket
) -> None:
    bad = package_grant(bucket, "broken", "1", b"not a tarball")
    sched.downloads["p1"] = agent_pb2.StagingGrant(packages=[bad])
    r = await executor.run(staged("p1", "true", packages=1))
    assert r is not None and r.failure_info.code == "APPLICATION_PACKAGE_FAILED"
    assert "'broken'" in r.failure_info.message and not r.HasField("exit_code")


async def test_a_cancel_while_waiting_for_the_grant_ends_the_attempt(
    executor: Executor, sched: SchedulerStandIn, layout: NodeLayout
) -> None:
    import asyncio

    sched.answer = lambda req: None  # the grant never comes
    a = staged("c1", "true", resource_files=1)
    run = asyncio.create_task(executor.run(a))
    await eventually(lambda: sched.requests, "the staging request")
    assert executor.cancel("c1") is True
    r = await run
    assert r is not None and r.failure_info.code == "TASK_CANCELLED"
    assert not r.HasField("exit_code") and not paths(layout, a).stdout.exists()
    assert executor.staging is not None and executor.staging.broker.waiting == []


async def test_wall_clock_time_counts_the_staging(
    executor: Executor, sched: SchedulerStandIn, layout: NodeLayout
) -> None:
    sched.answer = lambda req: None
    a = staged("w1", "true", resource_files=1, max_wall_clock_time=Duration(nanos=200_000_000))
    r = await executor.run(a)
    assert r is not None and r.failure_info.code == "MAX_WALL_CLOCK_TIME_EXCEEDED"
    assert not r.HasField("exit_code") and not paths(layout, a).stdout.exists()


async def test_stopping_the_agent_during_staging_reports_nothing(
    executor: Executor, sched: SchedulerStandIn
) -> None:
    import asyncio

    sched.answer = lambda req: None
    run = asyncio.create_task(executor.run(staged("k1", "true", resource_files=1)))
    await eventually(lambda: sched.requests, "the staging request")
    await executor.kill_all(grace=5)
    assert await run is None


async def test_outputs_follow_the_exit_code(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket
) -> None:
    specs = [OF(file_pattern="out/**/*.txt", container="results", path="ok",
                upload_condition=OF.TASK_SUCCESS),
             OF(file_pattern="debug.log", container="results", path="failed/debug.log",
                upload_condition=OF.TASK_FAILURE)]
    write = "mkdir -p out/a; echo r1 > out/r1.txt; echo r2 > out/a/r2.txt; echo dbg > debug.log"
    for aid, code in (("o-ok", 0), ("o-bad", 4)):
        sched.output_specs[aid] = specs
        r = await executor.run(staged(aid, f"/bin/sh -c '{write}; exit {code}'", outputs=specs))
        assert r is not None and r.exit_code == code and not r.HasField("failure_info")
    assert bucket.keys("results/") == ["results/failed/debug.log", "results/ok/a/r2.txt",
                                       "results/ok/r1.txt"]
    assert bucket.read("results/ok/a/r2.txt") == b"r2\n"
    # Only outputs were wanted and the logs were empty: one UPLOADS request each, no DOWNLOADS.
    assert [(q.attempt_id, q.kind) for q in sched.requests] == [("o-ok", UP), ("o-bad", UP)]


async def test_a_planted_symlink_output_fails_the_attempt_keeping_its_exit_code(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket
) -> None:
    specs = [OF(file_pattern="*.txt", container="results", path="sym")]
    sched.output_specs["l1"] = specs
    r = await executor.run(staged("l1", "/bin/sh -c 'ln -s /etc/passwd loot.txt'", outputs=specs))
    assert r is not None and r.exit_code == 0
    assert r.failure_info.code == "OUTPUT_FILE_UPLOAD_FAILED" and "'loot.txt'" in r.failure_info.message
    assert bucket.keys("results/sym") == []


async def test_files_without_staging_configured_fail_cleanly(layout: NodeLayout) -> None:
    bare = Executor(layout, pool_id="p1", node_id="n1")
    r = await bare.run(staged("n1", "true", resource_files=1))
    assert r is not None and r.failure_info.code == "RESOURCE_FILE_DOWNLOAD_FAILED"
    assert "cannot stage" in r.failure_info.message
