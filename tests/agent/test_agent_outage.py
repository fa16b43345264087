"""A real agent (`python -m agent`) whose uploads wait for storage, against the test doubles of
the registry and the scheduler (tests/agent/conftest.py) and the real S3 server: SIGKILLed
while an attempt's outputs wait, the next agent on the node takes the attempt up again,
reports it running, and uploads once storage is back; logs left behind go up after the
result, also across a restart."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2
from tests.agent.conftest import Stream
from tests.agent.staging_support import Bucket
from tests.agent.test_staging_outage import unavailable

UP = agent_pb2.UPLOADS


def uploads(s: Stream, n: int = 1) -> list[agent_pb2.StagingRequest]:
    """The stream's UPLOADS requests, once there are `n`."""
    got = [r for r in s.staging_requests() if r.kind == UP]
    return got if len(got) >= n else []


def grant(bucket: Bucket, req: agent_pb2.StagingRequest) -> agent_pb2.StagingGrant:
    return agent_pb2.StagingGrant(attempt_id=req.attempt_id, kind=UP, upload_urls=[
        bucket.put_url(f"{u.container}/{u.key}" if u.container
                       else f"logs/{req.attempt_id}/{u.key}") for u in req.uploads])


def waits(s: Stream) -> list[agent_pb2.StorageWait]:
    return [w for m in s.received for w in m.storage_waits]


async def ran_while_storage_is_down(
    cp: Any, start_agent: Any, node: Path, a: agent_pb2.Assignment, wait_for: Any
) -> tuple[Any, Stream]:
    """A real agent on `node` that ran `a` and was told storage is unavailable when it asked
    to upload: the agent and its stream."""
    cp.scheduler.upload_logs = True
    agent = await start_agent(cp, node)
    s = await cp.stream(1)
    s.send(assignments=[a])
    [req] = await wait_for(lambda: uploads(s), "the UPLOADS request")
    s.send(staging_grants=[unavailable(req)])  # the storage-stager is down
    return agent, s


async def test_an_agent_killed_while_outputs_wait_uploads_them_in_its_next_life(
    control_plane: Any, start_agent: Any, tmp_path: Path, wait_for: Any, bucket: Bucket,
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    a = agent_pb2.Assignment(attempt_id="r1", job_id="j1", task_id="t1", required_slots=2,
                             attempt_number=1,
                             command_line="/bin/sh -c 'echo made > out.txt; echo printed'")
    a.files.output_files.add(file_pattern="out.txt", container="results", path="r1/out.txt",
                             upload_condition=task_pb2.OutputFile.TASK_SUCCESS)
    first, s1 = await ran_while_storage_is_down(cp, start_agent, node, a, wait_for)
    [told] = await wait_for(lambda: waits(s1), "the wait, told to the scheduler")
    assert (told.attempt_id, told.kind) == ("r1", UP)
    assert (node / "uploads" / "r1.outputs").exists()
    assert "r1" not in s1.results(), "the result waits for the outputs"

    first.signal(signal.SIGKILL)
    await first.exit_code()
    await start_agent(cp, node)
    s2 = await cp.stream(2)
    assert list(s2.hello.running_attempts) == ["r1"], "taken up again, reported running"
    [again] = await wait_for(lambda: uploads(s2), "the UPLOADS request of the next life")
    assert [(u.container, u.key) for u in again.uploads] == [
        ("results", "r1/out.txt"), ("", "stdout.txt")]
    s2.send(staging_grants=[grant(bucket, again)])  # storage is back
    result = await wait_for(lambda: s2.results().get("r1"), "r1's result")
    assert result.exit_code == 0 and not result.HasField("failure_info")
    assert bucket.read("results/r1/out.txt") == b"made\n"
    assert bucket.read("logs/r1/stdout.txt") == b"printed\n"
    s2.send(ack_attempts=["r1"])
    await wait_for(lambda: not (node / "uploads" / "r1.outputs").exists(), "the record gone")


async def test_logs_left_behind_go_up_after_the_result_and_across_a_restart(
    control_plane: Any, start_agent: Any, tmp_path: Path, wait_for: Any, bucket: Bucket,
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    a = agent_pb2.Assignment(attempt_id="l1", job_id="j1", task_id="t1", required_slots=1,
                             attempt_number=1, command_line="/bin/sh -c 'echo my log'")
    a.files.SetInParent()
    first, s1 = await ran_while_storage_is_down(cp, start_agent, node, a, wait_for)
    result = await wait_for(lambda: s1.results().get("l1"), "the result, not held up")
    assert result.exit_code == 0 and not result.HasField("failure_info")
    assert (node / "uploads" / "l1.logs").exists()

    first.signal(signal.SIGKILL)
    await first.exit_code()
    await start_agent(cp, node)
    s2 = await cp.stream(2)
    assert list(s2.hello.running_attempts) == []  # the attempt is over; only its log waits
    [late] = await wait_for(lambda: uploads(s2), "the late log's request")
    assert (late.attempt_id, [(u.container, u.key) for u in late.uploads]) == (
        "l1", [("", "stdout.txt")])
    s2.send(staging_grants=[grant(bucket, late)])
    await wait_for(lambda: bucket.keys("logs/l1/") == ["logs/l1/stdout.txt"], "the log stored")
    assert bucket.read("logs/l1/stdout.txt") == b"my log\n"
    await wait_for(lambda: not (node / "uploads" / "l1.logs").exists(), "its record gone")
