"""The session's part in staging, driven directly: staging requests are batched with the
rest, resent after every reconnect until granted, and a node whose setup failed says so and
runs nothing. Plus the grant broker's waiting rules."""

from __future__ import annotations

import asyncio

import pytest

from agent.session import Admission, Identity, ProtocolState
from agent.staging import OUTPUT_FILE_UPLOAD_FAILED, RESOURCE_FILE_DOWNLOAD_FAILED, StagingFailure
from agent.staging.grants import GrantBroker
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2
from tests.support import eventually

IDENT = Identity("pools/p1/nodes/n1", "cred", 4, "1.2.3", "host-a")
DOWN, UP = agent_pb2.DOWNLOADS, agent_pb2.UPLOADS


def session() -> ProtocolState:
    return ProtocolState(IDENT, now=lambda: 1000.0)


def assignment(aid: str) -> agent_pb2.Assignment:
    return agent_pb2.Assignment(attempt_id=aid, job_id="j", task_id="t", command_line="true",
                                required_slots=1, attempt_number=1)


def request(aid: str, kind: int = DOWN, *keys: str) -> agent_pb2.StagingRequest:
    return agent_pb2.StagingRequest(
        attempt_id=aid, kind=kind,  # type: ignore[arg-type]
        uploads=[agent_pb2.UploadWanted(container="c", key=k) for k in keys],
    )


def grant(aid: str, kind: int = DOWN) -> agent_pb2.StagingGrant:
    return agent_pb2.StagingGrant(attempt_id=aid, kind=kind)  # type: ignore[arg-type]


def sent(messages: list[agent_pb2.AgentMessage]) -> list[tuple[str, int]]:
    return [(r.attempt_id, r.kind) for m in messages for r in m.staging_requests]


def test_staging_requests_go_out_in_one_message_with_the_other_events() -> None:
    s = session()
    s.connect()
    for aid in ("a1", "a2", "a3"):
        assert s.admit(assignment(aid)) is Admission.RUN
    s.started("a3", 5.0)
    s.stage(request("a1"))
    s.stage(request("a2"))
    s.finished(agent_pb2.TaskResult(attempt_id="a3", exit_code=0))
    [m] = s.take()
    assert sent([m]) == [("a1", DOWN), ("a2", DOWN)]
    assert [r.attempt_id for r in m.results] == ["a3"]
    assert s.take() == []  # sent once per stream


def test_pending_requests_are_resent_after_every_reconnect_until_granted() -> None:
    s = session()
    s.admit(assignment("a1"))
    s.admit(assignment("a2"))
    s.stage(request("a1"))  # while disconnected: kept for the next stream
    s.stage(request("a2", UP, "out/x.csv"))
    hello = s.connect()
    assert list(hello.hello.running_attempts) == ["a1", "a2"]  # preparing counts as running
    first = s.take()
    assert sent(first) == [("a1", DOWN), ("a2", UP)]
    assert [u.key for u in first[0].staging_requests[1].uploads] == ["out/x.csv"]
    s.disconnect()
    s.connect()
    assert sent(s.take()) == [("a1", DOWN), ("a2", UP)]
    assert s.granted(grant("a1")) is True
    assert s.granted(grant("a1")) is False  # a duplicate grant
    assert s.granted(grant("a2", DOWN)) is False  # a2 asked for UPLOADS, not DOWNLOADS
    s.disconnect()
    s.connect()
    assert sent(s.take()) == [("a2", UP)]
    s.unstage(("a2", UP, 0))  # the attempt stopped waiting (cancelled, timed out)
    s.disconnect()
    s.connect()
    assert sent(s.take()) == [] and s.staging == []


def test_a_request_withdrawn_before_it_was_sent_is_not_sent() -> None:
    s = session()
    s.connect()
    s.admit(assignment("a1"))
    s.stage(request("a1"))
    s.unstage(("a1", DOWN, 0))
    assert s.take() == []


def test_a_node_whose_setup_failed_says_so_and_runs_nothing() -> None:
    s = session()
    failure = task_pb2.FailureInfo(category=task_pb2.FailureInfo.USER_ERROR,
                                   code="APPLICATION_PACKAGE_FAILED",
                                   message="application package 'blender' version '9': not found")
    s.setup_failure = failure
    hello = s.connect().hello
    assert hello.setup_failure == failure
    assert s.admit(assignment("a1")) is Admission.SETUP_FAILED
    assert s.free_slots == 0 and s.running == []
    s.heartbeat(0.1, 100)
    [m] = s.take()
    assert m.heartbeat.free_slots == 0


def test_setup_failed_result_is_requeued_by_the_scheduler_as_not_run() -> None:
    from agent.session import setup_failed_result
    from services.job_scheduler.model import NOT_RUN_CODES

    r = setup_failed_result("a1", 5.0, task_pb2.FailureInfo(code="APPLICATION_PACKAGE_FAILED",
                                                            message="boom"))
    assert r.failure_info.code in NOT_RUN_CODES
    assert "setup failed" in r.failure_info.message and "boom" in r.failure_info.message
    assert not r.HasField("exit_code")


async def test_the_broker_hands_each_grant_to_its_waiter() -> None:
    sent_reqs: list[agent_pb2.StagingRequest] = []
    withdrawn: list[tuple[str, int]] = []
    b = GrantBroker(sent_reqs.append, lambda key: withdrawn.append(key[:2]))
    down = asyncio.create_task(b.request(request("a1")))
    up = asyncio.create_task(b.request(request("a1", UP, "k")))
    await eventually(lambda: len(sent_reqs) == 2, "both requests sent")
    assert b.deliver(grant("a2")) is False
    assert b.deliver(grant("a1", UP)) is True
    assert (await up).kind == UP
    assert not down.done()
    assert b.deliver(grant("a1", DOWN)) is True
    assert (await down).kind == DOWN
    assert sorted(withdrawn) == [("a1", DOWN), ("a1", UP)]
    assert b.waiting == []


async def test_the_broker_gives_up_after_its_timeout_with_the_kinds_code() -> None:
    withdrawn: list[tuple[str, int]] = []
    b = GrantBroker(lambda r: None, lambda key: withdrawn.append(key[:2]), timeout=0.05)
    with pytest.raises(StagingFailure) as down:
        await b.request(request("a1"))
    assert down.value.code == RESOURCE_FILE_DOWNLOAD_FAILED
    assert down.value.category == task_pb2.FailureInfo.SERVER_ERROR
    with pytest.raises(StagingFailure) as up:
        await b.request(request("a1", UP))
    assert up.value.code == OUTPUT_FILE_UPLOAD_FAILED
    assert withdrawn == [("a1", DOWN), ("a1", UP)]


def test_a_grant_pairs_with_its_request_by_attempt_kind_and_whose_files() -> None:
    s = session()
    s.connect()
    s.admit(assignment("a1"))
    prep = request("a1")
    prep.job_task = agent_pb2.JOB_PREPARATION
    s.stage(prep)
    s.stage(request("a1"))
    assert len(s.take()[0].staging_requests) == 2
    assert s.granted(grant("a1")) is True  # the task's own downloads
    assert s.staging == [("a1", DOWN, agent_pb2.JOB_PREPARATION)]
