"""What the session says about the node's own commands, driven directly (no network, no
clock): the start task's progress (latest only, in every hello) and node errors (once)."""

from __future__ import annotations

from agent.node_commands import Outcome, running_info, start_task_failure
from agent.session import Identity, ProtocolState
from shoal.v1 import pool_pb2, task_pb2

IDENT = Identity("pools/p1/nodes/n1", "cred", 2, "1.0", "host")
INFO = task_pb2.NodeTaskInfo


def new_session() -> ProtocolState:
    return ProtocolState(IDENT, now=lambda: 1000.0)


def completed(exit_code: int, retries: int = 0) -> task_pb2.NodeTaskInfo:
    return Outcome(exit_code=exit_code, retry_count=retries, start=10.0, end=20.0).info()


def test_only_the_latest_start_task_progress_is_sent_and_every_hello_carries_it() -> None:
    s = new_session()
    assert not s.connect().hello.HasField("start_task_info")  # the pool has no start task
    s.start_task(running_info(0, 5.0))
    s.start_task(running_info(1, 6.0))
    [m] = s.take()
    assert m.start_task_info == running_info(1, 6.0)
    assert s.take() == []  # sent once

    s.disconnect()
    s.start_task(completed(0, 1))
    assert s.take() == []  # no stream: the next hello carries it instead
    hello = s.connect()
    assert hello.hello.start_task_info == completed(0, 1)
    assert s.take() == []


def test_node_errors_are_sent_once_and_wait_for_a_stream() -> None:
    s = new_session()
    e1 = pool_pb2.NodeError(code="JOB_PREPARATION_TASK_FAILED", message="job j1: ...")
    e2 = pool_pb2.NodeError(code="JOB_RELEASE_TASK_FAILED", message="job j2: ...")
    s.node_error(e1)
    assert s.take() == []
    s.connect()
    s.node_error(e2)
    [m] = s.take()
    assert list(m.node_errors) == [e1, e2]
    s.disconnect()
    s.connect()
    assert s.take() == []


def test_outcomes_read_as_the_node_shows_them() -> None:
    info = completed(3, 2)
    assert (info.state, info.result, info.exit_code, info.retry_count) == (
        INFO.COMPLETED, task_pb2.TaskExecutionInfo.FAILURE, 3, 2)
    assert not info.HasField("failure_info")
    f = start_task_failure(info)
    assert (f.category, f.code) == (task_pb2.FailureInfo.USER_ERROR, "START_TASK_FAILED")
    assert f.message == "the start task exited with code 3 after 2 retries"
    assert start_task_failure(completed(1, 1)).message == \
        "the start task exited with code 1 after 1 retry"

    why = task_pb2.FailureInfo(code="COMMAND_NOT_FOUND", message="program 'x' not found")
    info = Outcome(failure=why, end=1.0).info()
    assert info.result == task_pb2.TaskExecutionInfo.FAILURE and info.failure_info == why
    assert not info.HasField("exit_code") and not info.HasField("start_time")
    assert start_task_failure(info).message == \
        "the start task failed: COMMAND_NOT_FOUND: program 'x' not found"
    assert completed(0).result == task_pb2.TaskExecutionInfo.SUCCESS
