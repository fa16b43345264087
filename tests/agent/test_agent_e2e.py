"""The agent as a real process (`python -m agent`) against test doubles of the pool-manager's
registry and the scheduler's AgentService on a real grpc.aio server."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration

from agent.outbox import stored_attempts
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2

# Runs until a file named `go` appears in its working dir; prints its own pid first.
BLOCKER = "/bin/sh -c 'echo $$ > pid.txt; while [ ! -e go ]; do sleep 0.05; done; echo released'"
# Starts a child that leaves its process group and one that drops its environment, then waits.
ESCAPER = ("/bin/sh -c 'setsid sleep 300 & echo $! > c1; env -i /bin/sleep 301 & echo $! > c2; "
           "echo $$ > pid.txt; wait'")


def outbox_ids(node: Path) -> set[str]:
    return stored_attempts(node / "outbox")


def attempt_dir(node: Path, attempt: str, job: str = "j1") -> Path:
    return node / "tasks" / job / f"t-{attempt}" / attempt


async def pid_of(node: Path, attempt: str, wait_for: Any) -> int:
    f = attempt_dir(node, attempt) / "wd" / "pid.txt"
    return int(await wait_for(lambda: f.exists() and f.read_text().strip(), f"pid of {attempt}"))


def release(node: Path, attempt: str) -> None:
    (attempt_dir(node, attempt) / "wd" / "go").touch()


async def test_register_run_report_reconnect_resend_and_stop(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
    is_alive: Any,
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    agent = await start_agent(cp, node)

    s1 = await cp.stream(1)
    [reg] = cp.registry.requests
    assert (reg.join_token, reg.node_id) == ("join-me", "n1") and reg.hostname
    hello = s1.hello
    assert (hello.node, hello.credential, hello.task_slots) == ("pools/p1/nodes/n1", "cred-1", 2)
    assert hello.agent_version and hello.hostname == reg.hostname
    assert list(hello.running_attempts) == [] and list(hello.finished_attempts) == []

    beats = await wait_for(lambda: len(s1.heartbeats()) >= 3 and s1.heartbeats(), "heartbeats")
    assert [b.sequence for b in beats[:3]] == [1, 2, 3]
    assert beats[0].free_slots == 2 and beats[0].disk_free_bytes > 0

    s1.send(assignments=[
        # The node's identity comes from registration: the task sees it under both names.
        assignment("a1", "/bin/sh -c 'echo one $SHOAL_POOL_ID $AZ_BATCH_NODE_ID'"),
        assignment("a2", "/bin/sh -c 'echo two >&2; exit 3'"),
    ])
    results = await wait_for(lambda: {"a1", "a2"} <= s1.results().keys() and s1.results(), "results")
    assert results["a1"].exit_code == 0 and results["a2"].exit_code == 3
    # A start is sent on its own only if the result is not ready to go with it; either way
    # the result carries the start time.
    assert all(results[a].HasField("start_time") for a in ("a1", "a2"))
    assert (attempt_dir(node, "a1") / "stdout.txt").read_text() == "one p1 n1\n"
    assert (attempt_dir(node, "a2") / "stderr.txt").read_text() == "two\n"
    assert outbox_ids(node) == {"a1", "a2"}  # written before sending, kept until acked

    # A task that outlives the stream keeps running across the reconnect.
    s1.send(assignments=[assignment("b1", BLOCKER)])
    await wait_for(lambda: "b1" in s1.started(), "b1 started")
    blocker = await pid_of(node, "b1", wait_for)
    s1.close()

    s2 = await cp.stream(2)
    assert list(s2.hello.running_attempts) == ["b1"]
    assert sorted(s2.hello.finished_attempts) == ["a1", "a2"]
    await wait_for(lambda: {"a1", "a2"} <= s2.results().keys(), "results resent")
    assert is_alive(blocker)
    s2.send(ack_attempts=["a1", "a2"])
    await wait_for(lambda: not outbox_ids(node), "an empty outbox after the acks")
    release(node, "b1")
    b1 = await wait_for(lambda: s2.results().get("b1"), "b1's result on the new stream")
    assert b1.exit_code == 0
    s2.send(ack_attempts=["b1"])
    await wait_for(lambda: not outbox_ids(node), "b1 acked")

    # SIGTERM: the running task dies with the agent, and no result is written for it.
    s2.send(assignments=[assignment("c1", BLOCKER)])
    victim = await pid_of(node, "c1", wait_for)
    agent.signal(signal.SIGTERM)
    assert await agent.exit_code() == 0
    await wait_for(lambda: not is_alive(victim), "c1's process to die")
    assert outbox_ids(node) == set()
    assert "c1" not in s2.results()
    lines = [json.loads(line) for line in agent.log_text().splitlines() if line.startswith("{")]
    assert all(rec["service"] == "agent" for rec in lines)
    assert any(rec.get("node") == "pools/p1/nodes/n1" for rec in lines)


async def test_file_reads_are_answered_in_chunks(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    await start_agent(cp, node)
    s = await cp.stream(1)
    s.send(assignments=[assignment("a1", "/bin/sh -c 'head -c 150000 /dev/zero | tr \"\\0\" x'")])
    await wait_for(lambda: "a1" in s.results(), "a1's result")

    def read(rid: int, **kw: Any) -> agent_pb2.FileRead:
        fields = {"attempt_id": "a1", "job_id": "j1", "task_id": "t-a1", "path": "stdout.txt"}
        return agent_pb2.FileRead(request_id=rid, **(fields | kw))

    s.send(file_reads=[
        read(1),
        read(2, offset=149_990),
        read(3, path="../../../../../etc/passwd"),
        read(4, job_id=".."),
        read(5, attempt_id="other"),
        read(6, path="pid"),
    ])

    def done(rid: int) -> list[agent_pb2.FileChunk]:
        cs = s.chunks(rid)
        return cs if cs and cs[-1].eof else []

    whole = await wait_for(lambda: done(1), "read 1")
    assert b"".join(c.data for c in whole) == b"x" * 150_000
    assert all(len(c.data) <= 64 * 1024 for c in whole)
    assert [c.eof for c in whole] == [False] * (len(whole) - 1) + [True]
    assert not any(c.error for c in whole)
    [tail] = await wait_for(lambda: done(2), "read 2")
    assert (tail.offset, tail.data) == (149_990, b"x" * 10)
    for rid in (3, 4, 5, 6):
        [bad] = await wait_for(lambda rid=rid: done(rid), f"read {rid}")
        assert bad.error and bad.eof and not bad.data, rid


async def test_cancel_kills_the_attempt_and_reports_it(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
    is_alive: Any,
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    await start_agent(cp, node)
    s = await cp.stream(1)
    s.send(assignments=[assignment("a1", BLOCKER)])
    pid = await pid_of(node, "a1", wait_for)
    s.send(cancel_attempts=["a1"])
    r = await wait_for(lambda: s.results().get("a1"), "a1's result")
    assert r.failure_info.code == "TASK_CANCELLED"
    assert r.failure_info.category == task_pb2.FailureInfo.USER_ERROR
    assert r.exit_code == 137
    await wait_for(lambda: not is_alive(pid), "a1's process to die")


async def test_a_cancel_in_the_same_message_as_its_assignment_stops_it_before_it_runs(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
) -> None:
    # The scheduler merges what it queued within a few milliseconds into one message: an
    # assignment and a terminate of it can arrive together.
    cp = control_plane
    node = tmp_path / "node"
    await start_agent(cp, node)
    s = await cp.stream(1)
    s.send(assignments=[assignment("a1", BLOCKER), assignment("a2", "true")],
           cancel_attempts=["a1"])
    r = await wait_for(lambda: s.results().get("a1"), "a1's result")
    assert r.failure_info.code == "TASK_CANCELLED" and not r.HasField("exit_code")
    assert not (attempt_dir(node, "a1") / "wd" / "pid.txt").exists()  # it never ran
    other = await wait_for(lambda: s.results().get("a2"), "a2's result")
    assert other.exit_code == 0 and not other.HasField("failure_info")


async def test_wall_clock_limit_reported_through_the_stream(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
) -> None:
    cp = control_plane
    await start_agent(cp, tmp_path / "node")
    s = await cp.stream(1)
    s.send(assignments=[assignment("a1", "sleep 300", max_wall_clock_time=Duration(nanos=200_000_000))])
    r = await wait_for(lambda: s.results().get("a1"), "a1's result")
    assert (r.exit_code, r.failure_info.code) == (137, "MAX_WALL_CLOCK_TIME_EXCEEDED")


async def test_drain_with_leave_refuses_work_and_exits_once_idle_and_acked(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    agent = await start_agent(cp, node)
    s = await cp.stream(1)
    s.send(assignments=[assignment("a1", BLOCKER)])
    await pid_of(node, "a1", wait_for)
    s.send(drain=agent_pb2.Drain(leave=True))
    s.send(assignments=[assignment("late", "true")])
    late = await wait_for(lambda: s.results().get("late"), "the refused assignment's result")
    assert late.failure_info.code == "NODE_DRAINING"
    assert late.failure_info.category == task_pb2.FailureInfo.SERVER_ERROR
    assert not (attempt_dir(node, "late") / "stdout.txt").exists()
    beat = await wait_for(
        lambda: [b for b in s.heartbeats() if b.free_slots == 0], "a heartbeat with no free slot"
    )
    assert beat
    assert agent.proc.returncode is None
    release(node, "a1")
    await wait_for(lambda: "a1" in s.results(), "a1's result")
    assert agent.proc.returncode is None  # results not yet acknowledged
    s.send(ack_attempts=["a1", "late"])
    assert await agent.exit_code() == 0
    assert outbox_ids(node) == set()


async def test_a_rejected_join_token_exits_with_code_2(
    control_plane: Any, start_agent: Any, tmp_path: Path
) -> None:
    agent = await start_agent(control_plane, tmp_path / "node", token="wrong")
    assert await agent.exit_code() == 2
    assert "registration rejected" in agent.log_text()
    assert "UNAUTHENTICATED" in agent.log_text()
    assert control_plane.scheduler.streams == []


async def test_registration_is_retried_while_the_pool_manager_is_unavailable(
    control_plane: Any, start_agent: Any, tmp_path: Path
) -> None:
    cp = control_plane
    cp.registry.unavailable_first = 3
    await start_agent(cp, tmp_path / "node")
    s = await cp.stream(1)
    assert len(cp.registry.requests) == 4
    assert s.hello.credential == "cred-1"


async def test_a_scheduler_that_does_not_know_the_node_makes_it_register_again(
    control_plane: Any, start_agent: Any, tmp_path: Path
) -> None:
    cp = control_plane
    cp.scheduler.refuse_next = 1
    await start_agent(cp, tmp_path / "node")
    s = await cp.stream(1)
    assert [m.hello.credential for m in cp.scheduler.refused] == ["cred-1"]
    assert len(cp.registry.requests) == 2
    assert s.hello.credential == "cred-2"


@pytest.mark.parametrize("tracking", [(), ("--no-cgroup",)], ids=["cgroup", "process-groups"])
async def test_a_restarted_agent_kills_leftovers_before_registering_and_resends_its_outbox(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
    is_alive: Any, tracking: tuple[str, ...],
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    first = await start_agent(cp, node, args=tracking)
    s1 = await cp.stream(1)
    s1.send(assignments=[assignment("done", "true"), assignment("left", ESCAPER)])
    await wait_for(lambda: "done" in s1.results(), "done's result")
    wd = attempt_dir(node, "left") / "wd"
    leftovers = [await pid_of(node, "left", wait_for),
                 *(int((wd / name).read_text()) for name in ("c1", "c2"))]
    first.signal(signal.SIGKILL)  # no chance to clean up
    await first.exit_code()
    assert all(is_alive(p) for p in leftovers)

    # The next life kills them before it even registers: long before its hello says that
    # "left" is not running here (and the scheduler requeues it).
    alive_at_register: list[list[int]] = []
    cp.registry.on_register = lambda: alive_at_register.append(
        [p for p in leftovers if is_alive(p)])
    second = await start_agent(cp, node, args=tracking)
    s2 = await cp.stream(2)
    assert alive_at_register[0] == []
    assert "leftovers_killed" in second.log_text()
    assert list(s2.hello.running_attempts) == []
    assert list(s2.hello.finished_attempts) == ["done"]
    assert await wait_for(lambda: s2.results().get("done"), "done resent")


async def test_the_agent_outlives_a_scheduler_restart(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    agent = await start_agent(cp, node)
    s1 = await cp.stream(1)
    s1.send(assignments=[assignment("a1", "true"), assignment("b1", BLOCKER)])
    await wait_for(lambda: "a1" in s1.results(), "a1's result")
    await pid_of(node, "b1", wait_for)

    await cp.stop_scheduler()
    await wait_for(lambda: "UNAVAILABLE" in agent.log_text(), "a failed reconnect")
    release(node, "b1")  # ends while no scheduler listens: kept in the outbox
    await wait_for(lambda: outbox_ids(node) == {"a1", "b1"}, "b1's result in the outbox")
    await cp.start_scheduler()

    s2 = await cp.stream(2)
    assert sorted(s2.hello.finished_attempts) == ["a1", "b1"]
    assert list(s2.hello.running_attempts) == []
    results = await wait_for(lambda: {"a1", "b1"} <= s2.results().keys() and s2.results(), "resent")
    assert results["b1"].exit_code == 0
    assert len(cp.registry.requests) == 1  # a broken stream is no reason to register again


async def test_a_node_that_no_longer_exists_exits_with_code_2_and_kills_its_tasks(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
    is_alive: Any,
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    agent = await start_agent(cp, node)
    s1 = await cp.stream(1)
    s1.send(assignments=[assignment("a1", BLOCKER)])
    pid = await pid_of(node, "a1", wait_for)
    cp.registry.node_gone = True
    cp.scheduler.refuse_next = 1
    s1.close()
    assert await agent.exit_code() == 2
    assert len(cp.registry.requests) == 2
    assert "NOT_FOUND" in agent.log_text()
    await wait_for(lambda: not is_alive(pid), "a1's process to die")


async def test_a_second_agent_on_a_live_agents_root_exits_and_touches_nothing(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
    is_alive: Any,
) -> None:
    cp = control_plane
    node = tmp_path / "node"
    await start_agent(cp, node)
    s1 = await cp.stream(1)
    s1.send(assignments=[assignment("a1", BLOCKER)])
    pid = await pid_of(node, "a1", wait_for)
    intruder = await start_agent(cp, node, node_id="n2", args=("--root-lock-wait", "0.2"))
    assert await intruder.exit_code() == 3
    assert "another agent uses this node root" in intruder.log_text()
    assert is_alive(pid)
    assert len(cp.registry.requests) == 1
    release(node, "a1")
    assert (await wait_for(lambda: s1.results().get("a1"), "a1's result")).exit_code == 0


async def test_an_agent_the_scheduler_stops_hearing_kills_its_tasks_and_says_hello_again(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
    is_alive: Any,
) -> None:
    cp = control_plane
    cp.scheduler.fence_after = 1.0
    cp.scheduler.echo = True
    node = tmp_path / "node"
    agent = await start_agent(cp, node)
    s1 = await cp.stream(1)
    s1.send(assignments=[assignment("a1", ESCAPER)])
    pid = await pid_of(node, "a1", wait_for)
    wd = attempt_dir(node, "a1") / "wd"
    pids = [pid, *(int((wd / name).read_text()) for name in ("c1", "c2"))]
    # Heard all along, for well over fence_after: it keeps running.
    beats = len(s1.heartbeats())
    await wait_for(lambda: len(s1.heartbeats()) >= beats + 10, "ten more heartbeats")
    assert is_alive(pid) and len(cp.scheduler.streams) == 1

    # The scheduler goes on reading but stops answering, as one cut off (or frozen) would:
    # the agent kills the attempt before the scheduler would requeue it, reports nothing
    # for it, and says hello again without it.
    cp.scheduler.echo = False
    await wait_for(lambda: not any(is_alive(p) for p in pids),
                   "the attempt to be fenced, what it started in another session too")
    s2 = await cp.stream(2)
    assert list(s2.hello.running_attempts) == []
    assert "a1" not in s1.results() and "a1" not in s2.results()
    assert "self-fencing" in agent.log_text()
    # A node heard again takes work again.
    cp.scheduler.echo = True
    s2.send(assignments=[assignment("a2", "echo ok")])
    assert (await wait_for(lambda: s2.results().get("a2"), "a2's result")).exit_code == 0
