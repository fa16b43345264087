"""Staging waits out storage being unavailable, bounded, and fails at once when an upload is
wrong: real subprocesses, the real S3 server behind presigned URLs, a stand-in for the
scheduler's side of the staging protocol that says STORAGE_UNAVAILABLE (as the job-scheduler
does when it cannot reach the storage-stager), and URLs to a port nobody listens on (an object
store that is down). Plus the pure rules of the wait and the session's part in it."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.executor import Executor
from agent.layout import NodeLayout
from agent.session import Identity, ProtocolState
from agent.staging import STORAGE_UNAVAILABLE
from agent.staging.attempt import Staging
from agent.staging.gate import StorageGate, Turn
from agent.staging.late_logs import LateLogs
from agent.staging.outage import BACKOFF_CAP, Outage, backoff
from agent.staging.pending import PendingUploads
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2
from tests.agent.staging_support import Bucket, SchedulerStandIn, make_staging
from tests.support import eventually

OF = task_pb2.OutputFile
DOWN, UP = agent_pb2.DOWNLOADS, agent_pb2.UPLOADS


class Waits:
    """What the staging told the session about its waits."""

    def __init__(self) -> None:
        self.told: list[agent_pb2.StorageWait] = []
        self.over_: list[tuple[str, int]] = []

    def waiting(self, wait: agent_pb2.StorageWait) -> None:
        self.told.append(wait)

    def over(self, attempt_id: str, kind: int) -> None:
        self.over_.append((attempt_id, kind))


def unavailable(req: agent_pb2.StagingRequest) -> agent_pb2.StagingGrant:
    return agent_pb2.StagingGrant(
        attempt_id=req.attempt_id, kind=req.kind, job_task=req.job_task,
        failure=task_pb2.FailureInfo(
            category=task_pb2.FailureInfo.SERVER_ERROR, code=STORAGE_UNAVAILABLE,
            message="the storage-stager answered UNAVAILABLE"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
async def staging(layout: NodeLayout, sched: SchedulerStandIn,
                  waits: Waits) -> AsyncIterator[Staging]:
    s = make_staging(layout.root, sched)
    s.pending = PendingUploads(layout.uploads)
    s.late_logs = LateLogs(s.broker, s.transfers, s.pending,
                           lambda a: layout.attempt(a.job_id, a.task_id, a.attempt_id).dir,
                           s.gate)
    s.waits = waits
    late = asyncio.create_task(s.late_logs.run())
    yield s
    late.cancel()
    await asyncio.gather(late, return_exceptions=True)
    await s.transfers.close()


@pytest.fixture
def executor(layout: NodeLayout, staging: Staging) -> Executor:
    e = Executor(layout, pool_id="p1", node_id="n1",
                 environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, staging=staging)
    e.upload_logs = True
    return e


def staged(aid: str, command: str, *, outputs: list[OF] | None = None, resource_files: int = 0,
           **kw: Any) -> agent_pb2.Assignment:
    a = agent_pb2.Assignment(attempt_id=aid, job_id="j1", task_id=f"t-{aid}",
                             command_line=command, required_slots=1, attempt_number=1, **kw)
    a.files.SetInParent()
    a.files.output_files.extend(outputs or [])
    a.files.resource_files.extend(
        task_pb2.ResourceFile(container="inputs", object_key=f"k{i}", file_path=f"f{i}")
        for i in range(resource_files))
    return a


def first_unavailable(sched: SchedulerStandIn, kind: int, n: int) -> None:
    """The stand-in says STORAGE_UNAVAILABLE to the first `n` requests of `kind`."""
    seen = [0]

    def answer(req: agent_pb2.StagingRequest) -> agent_pb2.StagingGrant:
        if req.kind == kind and seen[0] < n:
            seen[0] += 1
            return unavailable(req)
        return sched._default(req)

    sched.answer = answer


async def test_outputs_wait_out_storage_being_unavailable_and_are_stored_once(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket, staging: Staging,
    layout: NodeLayout, waits: Waits,
) -> None:
    specs = [OF(file_pattern="out.txt", container="results", path="w1/out.txt")]
    sched.output_specs["w1"] = specs
    first_unavailable(sched, UP, 3)
    r = await executor.run(staged("w1", "/bin/sh -c 'echo result > out.txt; echo hi'",
                                  outputs=specs))
    assert r is not None and r.exit_code == 0 and not r.HasField("failure_info")
    assert bucket.read("results/w1/out.txt") == b"result\n"
    assert bucket.read("logs/w1/stdout.txt") == b"hi\n"
    assert [q.kind for q in sched.requests] == [UP] * 4  # three refused, one granted
    # The scheduler was told once what waits and until when; the wait is over now.
    [told] = waits.told
    assert (told.attempt_id, told.kind) == ("w1", UP)
    assert told.give_up_at.ToSeconds() - told.since.ToSeconds() == pytest.approx(300, abs=1)
    assert "UNAVAILABLE" in told.error and waits.over_ == [("w1", UP)]
    # Kept on disk while it waited, until its result is in the outbox.
    assert staging.pending is not None and staging.pending.has_outputs("w1")
    await staging.reported("w1")
    assert not staging.pending.has_outputs("w1")


async def test_an_object_store_that_refuses_connections_is_waited_out_with_fresh_grants(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket, waits: Waits,
) -> None:
    specs = [OF(file_pattern="out.txt", container="results", path="w2/out.txt")]
    sched.output_specs["w2"] = specs
    down = f"http://127.0.0.1:{closed_port()}/nowhere"
    granted = [0]

    def answer(req: agent_pb2.StagingRequest) -> agent_pb2.StagingGrant:
        granted[0] += 1
        if granted[0] <= 2:  # the store is down for two rounds
            return agent_pb2.StagingGrant(attempt_id=req.attempt_id, kind=req.kind,
                                          upload_urls=[down] * len(req.uploads))
        return sched._default(req)

    sched.answer = answer
    r = await executor.run(staged("w2", "/bin/sh -c 'echo two > out.txt'", outputs=specs))
    assert r is not None and r.exit_code == 0 and not r.HasField("failure_info")
    assert bucket.read("results/w2/out.txt") == b"two\n"
    assert len(sched.requests) == 3, "each round asks for a fresh grant"
    assert "output file 'out.txt'" in waits.told[0].error


async def test_an_outage_longer_than_the_bound_fails_the_attempt_saying_so(
    executor: Executor, sched: SchedulerStandIn, staging: Staging, bucket: Bucket,
    layout: NodeLayout,
) -> None:
    staging.outage_timeout = 1.5
    specs = [OF(file_pattern="out.txt", container="results", path="w3/out.txt")]
    sched.output_specs["w3"] = specs
    sched.answer = unavailable
    a = staged("w3", "/bin/sh -c 'echo r > out.txt; echo said; exit 0'", outputs=specs)
    r = await executor.run(a)
    assert r is not None and r.exit_code == 0, "the exit code is kept"
    f = r.failure_info
    assert (f.code, f.category) == ("OUTPUT_FILE_UPLOAD_FAILED", task_pb2.FailureInfo.SERVER_ERROR)
    assert "storage was unavailable for" in f.message and "staging_outage_timeout" in f.message
    assert "the storage-stager answered UNAVAILABLE" in f.message, "the last error"
    assert bucket.keys("results/w3/") == []
    # Its log is not lost: it waits on disk to go up once storage is back.
    assert (layout.uploads / "w3.logs").exists()
    sched.answer = None
    await eventually(lambda: bucket.keys("logs/w3/") == ["logs/w3/stdout.txt"], "the late log")
    await eventually(lambda: not (layout.uploads / "w3.logs").exists(), "its record gone")


async def test_logs_do_not_hold_the_result_up_and_go_up_once_storage_is_back(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket, layout: NodeLayout,
    staging: Staging, waits: Waits,
) -> None:
    sched.answer = unavailable
    r = await executor.run(staged("w4", "/bin/sh -c 'echo late words; exit 3'"))
    assert r is not None and r.exit_code == 3 and not r.HasField("failure_info")
    assert len(sched.requests) == 1 and waits.told == [], "no outputs: the result went at once"
    record = agent_pb2.PendingUpload.FromString((layout.uploads / "w4.logs").read_bytes())
    assert record.assignment.attempt_id == "w4" and not record.HasField("result")
    assert staging.late_logs is not None and staging.late_logs.waiting == ["w4"]
    sched.answer = None
    await eventually(lambda: bucket.keys("logs/w4/") == ["logs/w4/stdout.txt"], "the late log")
    assert bucket.read("logs/w4/stdout.txt") == b"late words\n"
    await eventually(lambda: staging.late_logs.waiting == [], "nothing left waiting")
    assert not (layout.uploads / "w4.logs").exists()


async def test_while_storage_is_known_to_be_away_logs_alone_do_not_even_ask(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket, layout: NodeLayout,
    staging: Staging, waits: Waits,
) -> None:
    staging.gate.failed(Turn.GO, "another attempt found storage unavailable")
    r = await executor.run(staged("w9", "/bin/sh -c 'echo quick'"))
    assert r is not None and r.exit_code == 0 and not r.HasField("failure_info")
    assert sched.requests == [] and waits.told == []
    assert (layout.uploads / "w9.logs").exists() and not (layout.uploads / "w9.outputs").exists()
    staging.gate.succeeded()
    await eventually(lambda: bucket.keys("logs/w9/") == ["logs/w9/stdout.txt"], "the late log")


async def test_a_wrong_upload_fails_at_once_without_waiting(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket, waits: Waits,
) -> None:
    # A URL into a bucket that does not exist: the PUT answers 404.
    sched.answer = lambda req: agent_pb2.StagingGrant(
        attempt_id=req.attempt_id, kind=req.kind,
        upload_urls=[bucket.put_url("x").replace(bucket.name, "t-no-such-bucket")])
    specs = [OF(file_pattern="out.txt", container="results", path="w5/out.txt")]
    r = await executor.run(staged("w5", "/bin/sh -c 'echo r > out.txt'", outputs=specs))
    assert r is not None and r.failure_info.code == "OUTPUT_FILE_UPLOAD_FAILED"
    assert "HTTP 404" in r.failure_info.message or "HTTP 403" in r.failure_info.message
    assert len(sched.requests) == 1 and waits.told == []


async def test_inputs_wait_out_an_outage_before_the_process_starts_once(
    executor: Executor, sched: SchedulerStandIn, bucket: Bucket, layout: NodeLayout,
    waits: Waits,
) -> None:
    d = bucket.put("inputs/in.txt", b"input\n")
    d.file_path = "f0"
    sched.downloads["w6"] = agent_pb2.StagingGrant(downloads=[d])
    first_unavailable(sched, DOWN, 2)
    started: list[str] = []
    a = staged("w6", "/bin/sh -c 'cat f0'", resource_files=1)
    r = await executor.run(a, lambda aid, _t: started.append(aid))
    assert r is not None and r.exit_code == 0 and not r.HasField("failure_info")
    assert started == ["w6"]
    assert layout.attempt("j1", "t-w6", "w6").stdout.read_bytes() == b"input\n"
    assert [(w.attempt_id, w.kind) for w in waits.told] == [("w6", DOWN)]
    assert ("w6", DOWN) in waits.over_


async def test_inputs_unavailable_past_the_bound_fail_before_the_process_runs(
    executor: Executor, sched: SchedulerStandIn, staging: Staging,
) -> None:
    staging.outage_timeout = 1.0
    sched.answer = unavailable
    started: list[str] = []
    r = await executor.run(staged("w7", "true", resource_files=1),
                           lambda aid, _t: started.append(aid))
    assert r is not None and r.failure_info.code == "RESOURCE_FILE_DOWNLOAD_FAILED"
    assert "storage was unavailable for" in r.failure_info.message
    assert started == [] and not r.HasField("exit_code")


async def test_an_attempt_left_uploading_is_taken_up_again(
    layout: NodeLayout, sched: SchedulerStandIn, bucket: Bucket, staging: Staging,
    executor: Executor,
) -> None:
    """What a restarted agent does with an `.outputs` record (tests/agent/test_agent_outage.py
    restarts a real agent)."""
    specs = [OF(file_pattern="out.txt", container="results", path="w8/out.txt")]
    sched.output_specs["w8"] = specs
    a = staged("w8", "true", outputs=specs)
    wd = layout.attempt(a.job_id, a.task_id, a.attempt_id).wd
    wd.mkdir(parents=True)
    (wd / "out.txt").write_text("from an earlier life\n")
    ended = agent_pb2.TaskResult(attempt_id="w8", exit_code=0)
    r = await executor.resume(a, ended, None)
    assert r == ended
    assert bucket.read("results/w8/out.txt") == b"from an earlier life\n"


# --- the pure rules --------------------------------------------------------------------


def test_the_backoff_grows_with_full_jitter_up_to_its_cap() -> None:
    ceilings = [backoff(n, rng=lambda: 1.0) for n in range(1, 10)]
    assert ceilings == sorted(ceilings) and ceilings[0] == 0.5 and max(ceilings) == BACKOFF_CAP
    assert backoff(3, rng=lambda: 0.25) == pytest.approx(0.25 * ceilings[2])
    o = Outage(since=1000.0, bound=60.0)
    assert o.left(1055.0) == 5.0 and not o.over(1059.9) and o.over(1060.0)


async def test_a_closed_gate_lets_one_probe_at_a_time_and_everyone_go_once_it_opens() -> None:
    gate = StorageGate(rng=lambda: 0.01)
    assert await gate.wait(0) is Turn.GO
    gate.failed(Turn.GO, "down")  # the first failure closes it
    assert not gate.is_open and gate.last_error == "down"
    waiters = [asyncio.create_task(gate.wait(30)) for _ in range(5)]
    probe = await eventually(lambda: [w for w in waiters if w.done()], "the probe's turn")
    assert [w.result() for w in probe] == [Turn.PROBE], "one probe, the others wait"
    gate.failed(Turn.GO, "late")  # a try that began before it closed: does not count again
    await asyncio.sleep(0.1)
    assert sum(w.done() for w in waiters) == 1
    gate.failed(Turn.PROBE, "still down")  # the probe failed: after a backoff, the next one
    await eventually(lambda: sum(w.done() for w in waiters) == 2, "the next probe")
    gate.succeeded()
    done = await asyncio.gather(*waiters)
    assert done.count(Turn.PROBE) == 2 and done.count(Turn.GO) == 3 and gate.is_open
    slow = StorageGate(rng=lambda: 1.0)
    slow.failed(Turn.GO, "down")
    assert await slow.wait(0.05) is None, "nobody waits past its own bound"


def test_the_failure_says_for_how_long_since_when_and_the_last_error() -> None:
    o = Outage(since=1_700_000_000.0, bound=300.0)
    o.last_error = "PUT http://s3/b/k: ClientConnectorError"
    f = o.failure("OUTPUT_FILE_UPLOAD_FAILED", "the task's output files", 1_700_000_330.0)
    assert f.code == "OUTPUT_FILE_UPLOAD_FAILED" and f.category == task_pb2.FailureInfo.SERVER_ERROR
    assert "storage was unavailable for 5 min 30 s" in f.message
    assert "2023-11-14 22:13:20 UTC" in f.message and "is 5 min" in f.message
    assert f.message.endswith("last error: PUT http://s3/b/k: ClientConnectorError")


def test_a_wait_is_sent_once_again_after_a_reconnect_and_never_after_the_result() -> None:
    a = agent_pb2.Assignment(attempt_id="a1", job_id="j", task_id="t", command_line="true",
                             required_slots=2)
    s = ProtocolState(Identity("pools/p/nodes/n", "cred", 4, "1", "h"), now=lambda: 0.0,
                      running=[a])
    hello = s.connect().hello
    assert list(hello.running_attempts) == ["a1"] and s.free_slots == 2
    s.storage_wait(agent_pb2.StorageWait(attempt_id="a1", kind=UP, error="down"))
    assert [w.attempt_id for m in s.take() for w in m.storage_waits] == ["a1"]
    assert s.take() == []
    s.disconnect()
    s.connect()
    assert [w.attempt_id for m in s.take() for w in m.storage_waits] == ["a1"], "resent"
    s.finished(agent_pb2.TaskResult(attempt_id="a1", exit_code=0))
    s.disconnect()
    s.connect()
    assert [w for m in s.take() for w in m.storage_waits] == []
