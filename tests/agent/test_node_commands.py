"""The node's own commands through the real agent process (`python -m agent`), against the
agent tests' stand-ins of the pool-manager and the scheduler on real grpc.aio servers, with
real subprocesses and files on the real S3 server behind presigned URLs: the pool's start
task (with and without wait_for_success), a job's preparation task (once per job per node,
single-flight), and its release task when the job ends."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration

from agent.outbox import stored_attempts
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2
from tests.agent.conftest import ControlPlane, FakeRegistry, Stream, make_assignment
from tests.agent.staging_support import Bucket, package_grant, tar_gz
from tests.storage_support import MotoServer

INFO = task_pb2.NodeTaskInfo
RESULT = task_pb2.TaskExecutionInfo
USER_ERROR = task_pb2.FailureInfo.USER_ERROR
PREP = agent_pb2.JOB_PREPARATION

# Appends a line to a file in the node's shared dir, so a test counts the runs.
COUNT = "echo run >> $SHOAL_NODE_SHARED_DIR/{name}"
# Waits (bounded, 30 s) until a file named `go` appears in the node's shared dir.
WAIT_GO = "i=0; while [ ! -e $SHOAL_NODE_SHARED_DIR/go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"


def sh(script: str) -> str:
    return f"/bin/sh -c '{script}'"


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def outbox_ids(node: Path) -> set[str]:
    return stored_attempts(node / "outbox")


def seconds(s: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(s * 1e9))
    return d


class PackageRegistry(FakeRegistry):
    """The registry stand-in, also handing out the pool's application packages."""

    def __init__(self) -> None:
        super().__init__()
        self.packages: list[agent_pb2.PackageGrant] = []

    async def RegisterNode(self, request: Any, context: Any) -> agent_pb2.RegisterNodeResponse:
        resp = await super().RegisterNode(request, context)
        resp.application_packages.extend(self.packages)
        return resp


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> Iterator[Bucket]:
    yield Bucket(moto_s3)


@pytest.fixture
async def plane() -> Any:
    cp = ControlPlane()
    cp.registry = PackageRegistry()
    cp.scheduler.registry = cp.registry
    await cp.start()
    yield cp
    await cp.stop()


def start_task(command: str, **kw: Any) -> agent_pb2.StartTaskRun:
    downloads = kw.pop("downloads", [])
    failure = kw.pop("failure", None)
    return agent_pb2.StartTaskRun(spec=task_pb2.StartTask(command_line=command, **kw),
                                  downloads=downloads, failure=failure)


def job_task(aid: str, command: str, job: str, prep: task_pb2.JobPreparationTask | None = None,
             ) -> agent_pb2.Assignment:
    a = make_assignment(aid, command, job=job)
    if prep is not None:
        a.job_preparation_task.CopyFrom(prep)
    return a


async def result(s: Stream, aid: str, wait_for: Any) -> agent_pb2.TaskResult:
    return await wait_for(lambda: s.results().get(aid), f"the result of {aid}")


def prep_requests(s: Stream) -> list[agent_pb2.StagingRequest]:
    return [r for r in s.staging_requests() if r.job_task == PREP]


# --- the start task -----------------------------------------------------------------------


async def test_start_task_with_its_file_and_the_pool_packages_runs_before_tasks_and_on_restart(
    plane: ControlPlane, start_agent: Any, bucket: Bucket, tmp_path: Path, assignment: Any,
    wait_for: Any,
) -> None:
    registry = plane.registry
    assert isinstance(registry, PackageRegistry)
    registry.packages = [package_grant(bucket, "Tools", "1.0", tar_gz(
        {"hello.sh": (b"#!/bin/sh\necho hello from tools\n", 0o755)}), is_default=True)]
    conf = bucket.put("setup/tool.txt", b"tool v1\n")
    conf.file_path = "conf/tool.txt"
    shared = "$SHOAL_NODE_SHARED_DIR"
    registry.start_task = start_task(
        sh(f"cat conf/tool.txt > {shared}/setup.txt; $SHOAL_APP_PACKAGE_TOOLS/hello.sh >> "
           f"{shared}/setup.txt; echo \"$SHOAL_TASK_WORKING_DIR $AZ_BATCH_TASK_DIR $GREETING $PWD\" "
           f">> {shared}/setup.txt; {COUNT.format(name='runs.txt')}; echo started"),
        environment={"GREETING": "hi"}, downloads=[conf],
    )
    node = tmp_path / "node"
    agent = await start_agent(plane, node)

    s1 = await plane.stream(1)
    info = s1.hello.start_task_info  # waited for: it ran before the stream opened
    assert (info.state, info.result, info.exit_code, info.retry_count) == (
        INFO.COMPLETED, RESULT.SUCCESS, 0, 0)
    assert info.HasField("start_time") and info.HasField("end_time")
    assert not s1.hello.HasField("setup_failure")
    startup = node / "startup"
    assert (node / "shared/setup.txt").read_text().splitlines() == [
        "tool v1", "hello from tools", f"{startup}/wd {startup} hi {startup}/wd"]
    assert (startup / "stdout.txt").read_text() == "started\n"
    assert (startup / "wd/conf/tool.txt").read_text() == "tool v1\n"

    s1.send(assignments=[assignment("a1", sh("head -1 $SHOAL_NODE_SHARED_DIR/setup.txt"))])
    assert (await result(s1, "a1", wait_for)).exit_code == 0
    assert (node / "tasks/j1/t-a1/a1/stdout.txt").read_text() == "tool v1\n"

    # A restarted agent registers again and runs the start task again (a reboot, in Azure).
    agent.signal(signal.SIGTERM)
    assert await agent.exit_code() == 0
    await start_agent(plane, node)
    s2 = await plane.stream(2)
    assert s2.hello.start_task_info.result == RESULT.SUCCESS
    assert lines(node / "shared/runs.txt") == 2


async def test_a_failing_start_task_with_wait_is_retried_then_the_node_takes_no_tasks(
    plane: ControlPlane, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
) -> None:
    plane.registry.start_task = start_task(
        sh(f"{COUNT.format(name='runs.txt')}; echo oops >&2; exit 3"),
        max_task_retry_count=2, wait_for_success=True,
    )
    node = tmp_path / "node"
    await start_agent(plane, node)
    s1 = await plane.stream(1)
    failure = s1.hello.setup_failure
    assert (failure.category, failure.code) == (USER_ERROR, "START_TASK_FAILED")
    assert "exited with code 3" in failure.message and "2 retries" in failure.message
    info = s1.hello.start_task_info
    assert (info.state, info.result, info.exit_code, info.retry_count) == (
        INFO.COMPLETED, RESULT.FAILURE, 3, 2)
    assert not info.HasField("failure_info")  # it failed by its exit code
    assert lines(node / "shared/runs.txt") == 3
    assert (node / "startup/stderr.txt").read_text() == "oops\n"

    beats = await wait_for(lambda: s1.heartbeats(), "a heartbeat")
    assert beats[0].free_slots == 0
    s1.send(assignments=[assignment("x1", "true")])
    r = await result(s1, "x1", wait_for)
    assert r.failure_info.code == "NODE_DRAINING" and "START_TASK_FAILED" in r.failure_info.message
    assert not r.HasField("exit_code") and not (node / "tasks/j1").exists()


async def test_a_start_task_whose_files_were_not_granted_fails_without_running(
    plane: ControlPlane, start_agent: Any, tmp_path: Path,
) -> None:
    refused = task_pb2.FailureInfo(category=USER_ERROR, code="RESOURCE_FILE_DOWNLOAD_FAILED",
                                   message="resource_files[0]: container 'gone' not found")
    plane.registry.start_task = start_task(sh(COUNT.format(name="runs.txt")), failure=refused)
    node = tmp_path / "node"
    await start_agent(plane, node)
    s1 = await plane.stream(1)
    assert s1.hello.setup_failure.code == "START_TASK_FAILED"
    assert "RESOURCE_FILE_DOWNLOAD_FAILED" in s1.hello.setup_failure.message
    assert "resource_files[0]" in s1.hello.setup_failure.message
    info = s1.hello.start_task_info
    assert (info.result, info.failure_info) == (RESULT.FAILURE, refused)
    assert not info.HasField("exit_code") and not info.HasField("start_time")
    assert not (node / "shared/runs.txt").exists()


async def test_the_start_task_wall_clock_kills_it(
    plane: ControlPlane, start_agent: Any, tmp_path: Path, is_alive: Any,
) -> None:
    plane.registry.start_task = start_task(
        sh("echo $$ > $SHOAL_NODE_SHARED_DIR/pid; exec sleep 60"),
        max_wall_clock_time=seconds(0.5), max_task_retry_count=2,
    )
    node = tmp_path / "node"
    await start_agent(plane, node)
    s1 = await plane.stream(1)
    assert s1.hello.setup_failure.code == "START_TASK_FAILED"
    assert "MAX_WALL_CLOCK_TIME_EXCEEDED" in s1.hello.setup_failure.message
    info = s1.hello.start_task_info
    assert info.failure_info.code == "MAX_WALL_CLOCK_TIME_EXCEEDED"
    assert (info.exit_code, info.retry_count) == (137, 0)  # a timeout is not retried
    assert not is_alive(int((node / "shared/pid").read_text()))


async def test_without_wait_the_node_takes_tasks_while_the_start_task_runs_and_reports_it(
    plane: ControlPlane, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
) -> None:
    # Fails its first run (retried), then waits for `go` and succeeds.
    plane.registry.start_task = start_task(
        sh(f"echo run >> runs.txt; [ $(wc -l < runs.txt) -ge 2 ] || exit 1; {WAIT_GO}; echo done"),
        wait_for_success=False, max_task_retry_count=3,
    )
    node = tmp_path / "node"
    await start_agent(plane, node)
    s1 = await plane.stream(1)
    assert s1.hello.start_task_info.state == INFO.RUNNING
    assert not s1.hello.HasField("setup_failure")

    s1.send(assignments=[assignment("a1", "echo meanwhile")])
    assert (await result(s1, "a1", wait_for)).exit_code == 0
    second = await wait_for(
        lambda: [i for i in s1.start_task_infos() if i.retry_count == 1], "the second run reported")
    assert second[-1].state == INFO.RUNNING and second[-1].HasField("start_time")
    assert not [i for i in s1.start_task_infos() if i.state == INFO.COMPLETED]

    (node / "shared/go").touch()
    done = await wait_for(
        lambda: [i for i in s1.start_task_infos() if i.state == INFO.COMPLETED], "COMPLETED")
    assert (done[0].result, done[0].exit_code, done[0].retry_count) == (RESULT.SUCCESS, 0, 1)
    assert s1.start_task_infos()[-1] == done[0]  # RUNNING before, nothing after
    assert lines(node / "startup/wd/runs.txt") == 2

    s1.close()
    s2 = await plane.stream(2)
    assert s2.hello.start_task_info == done[0]  # every hello carries the latest


# --- the job preparation task ---------------------------------------------------------------


async def test_preparation_runs_once_for_concurrent_tasks_across_a_reconnect(
    control_plane: ControlPlane, start_agent: Any, bucket: Bucket, tmp_path: Path, wait_for: Any,
) -> None:
    cp = control_plane
    data = bucket.put("prep/data.txt", b"DATA\n")
    data.file_path = "data.txt"
    prep = task_pb2.JobPreparationTask(
        command_line=sh(f"{COUNT.format(name='prep-runs.txt')}; cat data.txt > prepared.txt; "
                        "echo $SHOAL_TASK_ID $AZ_BATCH_JOB_ID $MODE"),
        resource_files=[task_pb2.ResourceFile(container="c", object_key="prep/data.txt",
                                              file_path="data.txt")],
        environment={"MODE": "prep"},
    )
    node = tmp_path / "node"
    await start_agent(cp, node)
    s1 = await cp.stream(1)
    show = sh("echo $SHOAL_JOB_PREP_DIR $AZ_BATCH_JOB_PREP_WORKING_DIR; "
              "cat $SHOAL_JOB_PREP_WORKING_DIR/prepared.txt")
    ids = ["p1", "p2", "p3"]
    s1.send(assignments=[job_task(a, show, "jp", prep) for a in ids])
    [req] = await wait_for(lambda: prep_requests(s1), "the preparation's staging request")
    assert (req.kind, req.attempt_id in ids) == (agent_pb2.DOWNLOADS, True)

    # The stream breaks while they wait: they are still running here, and the request comes
    # again on the next stream.
    s1.close()
    s2 = await cp.stream(2)
    assert sorted(s2.hello.running_attempts) == ids
    [again] = await wait_for(lambda: prep_requests(s2), "the request resent")
    assert again.attempt_id == req.attempt_id
    s2.send(staging_grants=[agent_pb2.StagingGrant(
        attempt_id=req.attempt_id, kind=agent_pb2.DOWNLOADS, job_task=PREP, downloads=[data])])

    results = await wait_for(lambda: set(ids) <= s2.results().keys() and s2.results(), "results")
    prep_dir = node / "tasks/jp/jobpreparation"
    for a in ids:
        assert results[a].exit_code == 0 and not results[a].HasField("failure_info")
        assert (node / f"tasks/jp/t-{a}/{a}/stdout.txt").read_text() == \
            f"{prep_dir} {prep_dir}/wd\nDATA\n"
    assert lines(node / "shared/prep-runs.txt") == 1
    assert (prep_dir / "stdout.txt").read_text() == "jobpreparation jp prep\n"

    # A later task of the prepared job neither waits nor prepares again.
    s2.send(assignments=[job_task("p4", show, "jp", prep)])
    assert (await result(s2, "p4", wait_for)).exit_code == 0
    assert lines(node / "shared/prep-runs.txt") == 1
    assert len(prep_requests(s1) + prep_requests(s2)) == 2  # the one request, sent twice


async def test_a_task_waiting_for_preparation_can_be_cancelled(
    control_plane: ControlPlane, start_agent: Any, tmp_path: Path, wait_for: Any,
) -> None:
    cp = control_plane
    prep = task_pb2.JobPreparationTask(command_line=sh(f"{COUNT.format(name='prep-runs.txt')}; {WAIT_GO}"))
    node = tmp_path / "node"
    await start_agent(cp, node)
    s1 = await cp.stream(1)
    s1.send(assignments=[job_task(a, "echo ran", "jc", prep) for a in ("c1", "c2")])
    await wait_for(lambda: (node / "shared/prep-runs.txt").exists(), "the preparation running")
    s1.send(cancel_attempts=["c1"])  # c1 started the preparation; c2 still waits for it
    r1 = await result(s1, "c1", wait_for)
    assert r1.failure_info.code == "TASK_CANCELLED" and not r1.HasField("exit_code")
    assert "c2" not in s1.results()

    (node / "shared/go").touch()
    assert (await result(s1, "c2", wait_for)).exit_code == 0
    assert lines(node / "shared/prep-runs.txt") == 1
    assert not (node / "tasks/jc/t-c1/c1/stdout.txt").exists()  # c1's process never ran


async def test_a_failed_preparation_fails_the_jobs_tasks_here_and_is_one_node_error(
    control_plane: ControlPlane, start_agent: Any, tmp_path: Path, wait_for: Any,
) -> None:
    cp = control_plane
    prep = task_pb2.JobPreparationTask(
        command_line=sh(f"{COUNT.format(name='prep-runs.txt')}; exit 3"), max_task_retry_count=1)
    node = tmp_path / "node"
    await start_agent(cp, node)
    s1 = await cp.stream(1)
    s1.send(assignments=[job_task("f1", "echo ran", "jf", prep)])
    r1 = await result(s1, "f1", wait_for)
    f = r1.failure_info
    assert (f.category, f.code) == (USER_ERROR, "JOB_PREPARATION_TASK_FAILED")
    assert "jf" in f.message and "exited with code 3" in f.message
    assert not r1.HasField("exit_code") and not r1.HasField("start_time")
    assert lines(node / "shared/prep-runs.txt") == 2  # retried once

    [err] = await wait_for(lambda: s1.node_errors(), "the node error")
    assert err.code == "JOB_PREPARATION_TASK_FAILED" and err.message.startswith("job jf: ")
    assert "exited with code 3" in err.message and err.HasField("time")

    # Later tasks of that job fail at once; other jobs' tasks run.
    s1.send(assignments=[job_task("f2", "echo ran", "jf", prep), job_task("o1", "echo ok", "other")])
    r2 = await result(s1, "f2", wait_for)
    assert r2.failure_info == f and not r2.HasField("exit_code")
    assert (await result(s1, "o1", wait_for)).exit_code == 0
    assert lines(node / "shared/prep-runs.txt") == 2
    assert len(s1.node_errors()) == 1
    assert not (node / "tasks/jf/t-f1/f1/stdout.txt").exists()


# --- the job release task -------------------------------------------------------------------


async def test_release_runs_with_its_files_only_where_the_job_ran_and_the_job_prepares_again(
    control_plane: ControlPlane, start_agent: Any, bucket: Bucket, tmp_path: Path, wait_for: Any,
) -> None:
    cp = control_plane
    prep = task_pb2.JobPreparationTask(command_line=sh(COUNT.format(name="prep-runs.txt")))
    node = tmp_path / "node"
    await start_agent(cp, node)
    s1 = await cp.stream(1)
    s1.send(assignments=[job_task("r1", "echo ran", "jr", prep)])
    assert (await result(s1, "r1", wait_for)).exit_code == 0

    cleanup = bucket.put("release/cleanup.txt", b"cleanup v1\n")
    cleanup.file_path = "conf/cleanup.txt"
    out = "$SHOAL_NODE_SHARED_DIR"
    s1.send(jobs_ended=[
        # This node ran nothing of `other`: its release task does not run here.
        agent_pb2.JobEnded(job_id="other", release=task_pb2.JobReleaseTask(
            command_line=sh(f"echo other > {out}/other.txt"))),
        agent_pb2.JobEnded(job_id="jr", downloads=[cleanup], release=task_pb2.JobReleaseTask(
            command_line=sh(f"cat conf/cleanup.txt > {out}/release.tmp; echo $SHOAL_TASK_ID "
                            f"$AZ_BATCH_JOB_ID $SHOAL_JOB_PREP_DIR $PWD $WHO >> {out}/release.tmp; "
                            f"mv {out}/release.tmp {out}/release.txt"),
            environment={"WHO": "me"})),
    ])
    release = node / "shared/release.txt"
    await wait_for(release.exists, "the release task's output")
    rel = node / "tasks/jr/jobrelease"
    assert release.read_text().splitlines() == [
        "cleanup v1", f"jobrelease jr {node}/tasks/jr/jobpreparation {rel}/wd me"]
    assert (rel / "wd/conf/cleanup.txt").exists()
    assert not (node / "shared/other.txt").exists() and not (node / "tasks/other").exists()
    assert s1.node_errors() == []

    # The job's preparation was forgotten: the id used again prepares again.
    s1.send(assignments=[job_task("r2", "echo again", "jr", prep)])
    assert (await result(s1, "r2", wait_for)).exit_code == 0
    assert lines(node / "shared/prep-runs.txt") == 2


async def test_a_failed_release_is_a_node_error(
    control_plane: ControlPlane, start_agent: Any, tmp_path: Path, wait_for: Any,
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    await start_agent(cp, node)
    s1 = await cp.stream(1)
    s1.send(assignments=[job_task("a1", "true", "ja"), job_task("b1", "true", "jb")])
    await wait_for(lambda: {"a1", "b1"} <= s1.results().keys(), "both ran")
    refused = task_pb2.FailureInfo(category=USER_ERROR, code="RESOURCE_FILE_DOWNLOAD_FAILED",
                                   message="resource_files[0]: container 'gone' not found")
    s1.send(jobs_ended=[
        agent_pb2.JobEnded(job_id="ja", release=task_pb2.JobReleaseTask(command_line=sh("exit 4"))),
        agent_pb2.JobEnded(job_id="jb", failure=refused, release=task_pb2.JobReleaseTask(
            command_line=sh("touch $SHOAL_NODE_SHARED_DIR/ran"))),
    ])
    errors = await wait_for(lambda: len(s1.node_errors()) >= 2 and s1.node_errors(), "node errors")
    by_job = {e.message.split(":")[0]: e for e in errors}
    assert set(by_job) == {"job ja", "job jb"}
    assert {e.code for e in errors} == {"JOB_RELEASE_TASK_FAILED"}
    assert "exited with code 4" in by_job["job ja"].message
    assert "RESOURCE_FILE_DOWNLOAD_FAILED" in by_job["job jb"].message
    assert not (node / "shared/ran").exists()


async def test_a_preparation_grant_refused_for_a_cancelled_attempt_is_asked_again_for_another(
    control_plane: ControlPlane, start_agent: Any, bucket: Bucket, tmp_path: Path, wait_for: Any,
) -> None:
    cp = control_plane
    data = bucket.put("prep2/data.txt", b"DATA\n")
    data.file_path = "data.txt"
    prep = task_pb2.JobPreparationTask(
        command_line=sh(f"{COUNT.format(name='prep-runs.txt')}; cat data.txt"),
        resource_files=[task_pb2.ResourceFile(container="c", object_key="prep2/data.txt",
                                              file_path="data.txt")],
    )
    node = tmp_path / "node"
    await start_agent(cp, node)
    s1 = await cp.stream(1)
    s1.send(assignments=[job_task("g1", "echo ran", "jg", prep)])
    [first] = await wait_for(lambda: prep_requests(s1), "the preparation's request")
    s1.send(assignments=[job_task("g2", "echo ran", "jg", prep)])
    s1.send(cancel_attempts=["g1"])
    assert (await result(s1, "g1", wait_for)).failure_info.code == "TASK_CANCELLED"
    # As the scheduler answers for an attempt that is no longer this node's.
    s1.send(staging_grants=[agent_pb2.StagingGrant(
        attempt_id="g1", kind=agent_pb2.DOWNLOADS, job_task=PREP,
        failure=task_pb2.FailureInfo(category=task_pb2.FailureInfo.SERVER_ERROR,
                                     code="ATTEMPT_NOT_ASSIGNED", message="not assigned"))])
    [_, second] = await wait_for(lambda: len(prep_requests(s1)) == 2 and prep_requests(s1),
                                 "the request asked again")
    assert (first.attempt_id, second.attempt_id) == ("g1", "g2")
    s1.send(staging_grants=[agent_pb2.StagingGrant(
        attempt_id="g2", kind=agent_pb2.DOWNLOADS, job_task=PREP, downloads=[data])])
    assert (await result(s1, "g2", wait_for)).exit_code == 0
    assert lines(node / "shared/prep-runs.txt") == 1
    assert s1.node_errors() == []


async def test_stopping_the_agent_kills_node_commands_and_reports_nothing_for_waiting_tasks(
    plane: ControlPlane, start_agent: Any, tmp_path: Path, wait_for: Any, is_alive: Any,
) -> None:
    # A start task that goes on in the background, and a preparation task two tasks wait for.
    plane.registry.start_task = start_task(
        sh(f"echo $$ > $SHOAL_NODE_SHARED_DIR/start.pid; {WAIT_GO}"), wait_for_success=False)
    prep = task_pb2.JobPreparationTask(
        command_line=sh(f"echo $$ > $SHOAL_NODE_SHARED_DIR/prep.pid; {WAIT_GO}"))
    node = tmp_path / "node"
    agent = await start_agent(plane, node)
    s1 = await plane.stream(1)
    s1.send(assignments=[job_task(a, "echo ran", "js", prep) for a in ("w1", "w2")])
    pids = [int(await wait_for(lambda f=f: f.exists() and f.read_text().strip(), f.name))
            for f in (node / "shared/start.pid", node / "shared/prep.pid")]

    agent.signal(signal.SIGTERM)
    assert await agent.exit_code() == 0
    assert not any(is_alive(p) for p in pids)
    assert outbox_ids(node) == set() and s1.results() == {}


async def test_stopping_the_agent_during_a_start_task_it_waits_for_kills_it(
    plane: ControlPlane, start_agent: Any, tmp_path: Path, wait_for: Any, is_alive: Any,
) -> None:
    plane.registry.start_task = start_task(sh(f"echo $$ > $SHOAL_NODE_SHARED_DIR/pid; {WAIT_GO}"))
    node = tmp_path / "node"
    agent = await start_agent(plane, node)
    f = node / "shared/pid"
    pid = int(await wait_for(lambda: f.exists() and f.read_text().strip(), "the start task"))
    assert plane.scheduler.streams == []  # the node waits for its start task to succeed
    agent.signal(signal.SIGTERM)
    assert await agent.exit_code() == 0
    assert not is_alive(pid)
