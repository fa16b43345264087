"""The agent's session logic, driven directly: no network, no real clock."""

from __future__ import annotations

import pytest

from agent.session import (
    BACKOFF_CAP,
    DRAIN_ACK_PATIENCE,
    MAX_CHUNK_BYTES_PER_MESSAGE,
    MAX_ITEMS_PER_MESSAGE,
    Admission,
    Identity,
    ProtocolState,
    backoff,
    draining_result,
    jittered,
)
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2
from tests.support import ManualClock

IDENT = Identity("pools/p1/nodes/n1", "cred", 4, "1.2.3", "host-a")


def make_assignment(attempt_id: str, command_line: str, required_slots: int = 1) -> agent_pb2.Assignment:
    return agent_pb2.Assignment(
        attempt_id=attempt_id, job_id="j1", task_id="t1", command_line=command_line,
        required_slots=required_slots, attempt_number=1,
    )


def result(attempt_id: str, exit_code: int = 0) -> agent_pb2.TaskResult:
    return agent_pb2.TaskResult(attempt_id=attempt_id, exit_code=exit_code)


def new_session(*, outbox: list[agent_pb2.TaskResult] | None = None, clock: ManualClock | None = None) -> ProtocolState:
    return ProtocolState(IDENT, now=clock or ManualClock(1000.0), outbox=outbox or [])


def run(s: ProtocolState, attempt_id: str, slots: int = 1) -> None:
    assert s.admit(make_assignment(attempt_id, "true", required_slots=slots)) is Admission.RUN


def sent_results(messages: list[agent_pb2.AgentMessage]) -> list[str]:
    return [r.attempt_id for m in messages for r in m.results]


def test_hello_describes_the_node_its_running_and_finished_attempts() -> None:
    s = new_session(outbox=[result("old1")])
    run(s, "a1")
    run(s, "a2")
    s.finished(result("a2"))
    hello = s.connect().hello
    assert (hello.node, hello.credential, hello.task_slots) == ("pools/p1/nodes/n1", "cred", 4)
    assert (hello.agent_version, hello.hostname) == ("1.2.3", "host-a")
    assert list(hello.running_attempts) == ["a1"]
    assert sorted(hello.finished_attempts) == ["a2", "old1"]


def test_results_from_the_outbox_are_resent_right_after_hello() -> None:
    s = new_session(outbox=[result("old1"), result("old2", 3)])
    s.connect()
    msgs = s.take()
    assert sent_results(msgs) == ["old1", "old2"]
    assert len(msgs) == 1
    assert msgs[0].results[1].exit_code == 3
    assert s.take() == []


def test_reconnect_resends_unacked_results_and_acks_remove_them() -> None:
    s = new_session()
    s.connect()
    for a in ("a1", "a2", "a3"):
        run(s, a)
        s.finished(result(a))
    assert sent_results(s.take()) == ["a1", "a2", "a3"]
    assert s.take() == []  # sent once per stream
    assert s.acked(["a2", "nope"]) == ["a2"]
    s.disconnect()
    hello = s.connect().hello
    assert sorted(hello.finished_attempts) == ["a1", "a3"]
    assert sent_results(s.take()) == ["a1", "a3"]
    assert s.acked(["a1", "a3"]) == ["a1", "a3"]
    s.disconnect()
    assert list(s.connect().hello.finished_attempts) == []
    assert s.take() == []
    assert s.unacked == []


def test_an_ack_for_a_result_not_yet_sent_unqueues_it() -> None:
    s = new_session(outbox=[result("a1"), result("a2")])
    s.connect()
    assert s.acked(["a1"]) == ["a1"]
    assert sent_results(s.take()) == ["a2"]


def test_results_ending_while_disconnected_are_sent_after_the_next_hello() -> None:
    s = new_session()
    run(s, "a1")
    s.finished(result("a1"))
    assert not s.has_pending()
    assert s.take() == []
    assert list(s.connect().hello.finished_attempts) == ["a1"]
    assert sent_results(s.take()) == ["a1"]


def test_queued_events_are_merged_into_one_message() -> None:
    s = new_session()
    s.connect()
    run(s, "a1")
    run(s, "a2")
    s.started("a1", 5.0)
    s.started("a2", 6.0)
    s.finished(result("a1"))
    s.heartbeat(0.5, 1000)
    s.chunk(agent_pb2.FileChunk(request_id=7, data=b"x", eof=True))
    msgs = s.take()
    assert len(msgs) == 1
    m = msgs[0]
    # a1 ended before anything was sent: its result alone says it started (and when).
    assert [x.attempt_id for x in m.started] == ["a2"]
    assert m.started[0].start_time.seconds == 6
    assert [x.attempt_id for x in m.results] == ["a1"]
    assert m.heartbeat.sequence == 1
    assert [c.request_id for c in m.file_chunks] == [7]


def test_many_results_are_split_by_the_item_limit() -> None:
    n = 2 * MAX_ITEMS_PER_MESSAGE + 5
    s = new_session(outbox=[result(f"a{i}") for i in range(n)])
    s.connect()
    msgs = s.take()
    assert [len(m.results) for m in msgs] == [MAX_ITEMS_PER_MESSAGE, MAX_ITEMS_PER_MESSAGE, 5]
    assert sent_results(msgs) == [f"a{i}" for i in range(n)]


def test_file_chunks_are_split_by_size() -> None:
    s = new_session()
    s.connect()
    chunk = 64 * 1024
    count = 2 * MAX_CHUNK_BYTES_PER_MESSAGE // chunk + 1
    for i in range(count):
        s.chunk(agent_pb2.FileChunk(request_id=1, data=b"x" * chunk, offset=i * chunk))
    assert s.queued_chunk_bytes == count * chunk
    msgs = s.take()
    assert len(msgs) == 3
    assert all(sum(len(c.data) for c in m.file_chunks) <= MAX_CHUNK_BYTES_PER_MESSAGE for m in msgs)
    offsets = [c.offset for m in msgs for c in m.file_chunks]
    assert offsets == [i * chunk for i in range(count)]
    assert s.queued_chunk_bytes == 0


def test_heartbeat_sequence_increases_by_one_per_heartbeat_sent() -> None:
    s = new_session()
    s.heartbeat(0.1, 10)  # not connected: nothing to send it on
    assert not s.has_pending()
    s.connect()
    s.heartbeat(0.1, 10)
    s.heartbeat(0.2, 20)  # refreshes the one not yet sent
    [m] = s.take()
    assert (m.heartbeat.sequence, m.heartbeat.disk_free_bytes) == (1, 20)
    assert m.heartbeat.load_average == pytest.approx(0.2)
    s.heartbeat(0.3, 30)
    s.disconnect()
    s.connect()
    s.heartbeat(0.3, 30)
    [m] = s.take()
    assert m.heartbeat.sequence == 2


def test_disconnect_drops_chunks_and_heartbeats_but_keeps_started_events() -> None:
    s = new_session()
    s.connect()
    run(s, "a1")
    s.started("a1", 1.0)
    s.chunk(agent_pb2.FileChunk(request_id=1, data=b"abc"))
    s.heartbeat(0, 0)
    s.disconnect()
    s.chunk(agent_pb2.FileChunk(request_id=2, data=b"abc"))
    s.connect()
    [m] = s.take()
    assert [x.attempt_id for x in m.started] == ["a1"]
    assert not m.file_chunks and not m.HasField("heartbeat")


def test_free_slots_follow_running_attempts_and_drain() -> None:
    s = new_session()
    assert s.free_slots == 4
    run(s, "a1", slots=2)
    run(s, "a2")
    assert s.free_slots == 1
    s.connect()
    s.heartbeat(0, 0)
    assert s.take()[0].heartbeat.free_slots == 1
    s.finished(result("a1"))
    assert s.free_slots == 3
    run(s, "a3", slots=9)  # overcommitted by the scheduler: never below zero
    assert s.free_slots == 0
    s.finished(result("a3"))
    s.drain(leave=False)
    assert s.free_slots == 0


def test_duplicate_assignments_are_ignored() -> None:
    s = new_session(outbox=[result("done")])
    run(s, "a1")
    assert s.admit(make_assignment("a1", "true")) is Admission.DUPLICATE
    assert s.admit(make_assignment("done", "true")) is Admission.DUPLICATE
    assert s.running == ["a1"]


def test_a_draining_node_refuses_new_work_with_a_server_error() -> None:
    s = new_session()
    s.drain(leave=False)
    assert s.admit(make_assignment("a1", "true")) is Admission.DRAINING
    assert s.running == []
    r = draining_result("a1", 5.0)
    assert r.failure_info.category == task_pb2.FailureInfo.SERVER_ERROR
    assert r.failure_info.code == "NODE_DRAINING"
    assert not r.HasField("exit_code")


def test_leaving_exits_once_idle_and_acknowledged() -> None:
    s = new_session()
    s.connect()
    run(s, "a1")
    assert not s.should_exit()
    s.drain(leave=False)
    assert not s.should_exit()  # drained but not asked to leave
    s.drain(leave=True)
    assert not s.should_exit()  # a1 still runs
    s.finished(result("a1"))
    assert not s.should_exit()  # its result is not acknowledged
    s.acked(["a1"])
    assert s.should_exit()


def test_leaving_gives_up_on_acks_after_the_patience() -> None:
    clock = ManualClock(1000.0)
    s = new_session(outbox=[result("old")], clock=clock)
    s.connect()
    assert s.seconds_until_exit_check() is None
    s.drain(leave=True)
    assert s.seconds_until_exit_check() == pytest.approx(DRAIN_ACK_PATIENCE)
    clock.t += DRAIN_ACK_PATIENCE - 1
    assert not s.should_exit()
    assert s.seconds_until_exit_check() == pytest.approx(1)
    clock.t += 1
    assert s.should_exit()


def test_an_ack_restarts_the_patience() -> None:
    clock = ManualClock(1000.0)
    s = new_session(outbox=[result("old1"), result("old2")], clock=clock)
    s.drain(leave=True)
    clock.t += DRAIN_ACK_PATIENCE - 1
    s.acked(["old1"])
    clock.t += DRAIN_ACK_PATIENCE - 1
    assert not s.should_exit()
    clock.t += 1
    assert s.should_exit()


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    assert backoff(0, lambda: 1.0) == pytest.approx(0.2)
    assert backoff(1, lambda: 1.0) == pytest.approx(0.4)
    assert backoff(3, lambda: 1.0) == pytest.approx(1.6)
    assert backoff(10, lambda: 1.0) == BACKOFF_CAP
    assert backoff(10_000, lambda: 1.0) == BACKOFF_CAP
    assert backoff(5, lambda: 0.0) == 0.0
    assert backoff(2, lambda: 0.5) == pytest.approx(0.4)


def test_heartbeat_interval_jitter_stays_within_ten_percent() -> None:
    assert jittered(10.0, lambda: 0.0) == pytest.approx(9.0)
    assert jittered(10.0, lambda: 1.0) == pytest.approx(11.0)
    assert jittered(10.0, lambda: 0.5) == pytest.approx(10.0)


def test_the_agent_must_fence_once_the_scheduler_has_not_confirmed_hearing_it() -> None:
    clock = ManualClock(1000.0)
    s = new_session(clock=clock)
    s.connect()  # the hello is sent at 1000
    run(s, "a1")
    assert s.fence_in() is None  # no welcome yet: no fencing asked for
    clock.advance(0.5)
    s.welcomed(10.0)  # the scheduler took in the hello, sent at 1000
    assert s.fence_in() == 9.5
    clock.advance(2.0)
    s.heartbeat(0.1, 1)
    s.take()  # heartbeat 1, sent at 1002.5
    clock.advance(2.0)
    s.heartbeat(0.1, 1)
    s.take()  # heartbeat 2, sent at 1004.5
    s.heard(1)
    assert s.fence_in() == 1002.5 + 10.0 - 1004.5
    s.heard(2)
    s.heard(1)  # an older echo moves nothing back
    assert s.fence_in() == 10.0
    clock.advance(10.0)
    assert s.fence_in() == 0.0  # fence now
    s.fenced(["a1"])
    assert s.fence_in() is None and s.running == []
    assert list(s.connect().hello.running_attempts) == []


def test_no_fencing_when_the_scheduler_asks_for_none_or_nothing_runs() -> None:
    clock = ManualClock(1000.0)
    s = new_session(clock=clock)
    s.connect()
    s.welcomed(10.0)
    assert s.fence_in() is None  # nothing runs
    run(s, "a1")
    assert s.fence_in() == 10.0
    s.connect()
    s.welcomed(0.0)  # a scheduler that does not ask for it
    clock.advance(3600.0)
    assert s.fence_in() is None
