"""Ended attempts' directories go after their retention time, deleted tasks' at once (but not
under a running attempt), across agent restarts, and never through a symlink: the plan as pure
logic, the agent as a real process against the stand-in control plane."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration

from agent.retention import Removal, RetentionPlan
from shoal.agent.v1 import agent_pb2

BLOCKER = "/bin/sh -c 'while [ ! -e go ]; do sleep 0.05; done'"
HOUR = 3600.0


def seconds(s: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(s * 1e9))
    return d


def attempt_dir(node: Path, job: str, task: str, attempt: str) -> Path:
    return node / "tasks" / job / task / attempt


# --- the plan, pure ------------------------------------------------------------------------


def test_due_attempts_come_in_deadline_order_and_only_once() -> None:
    plan = RetentionPlan()
    for attempt, deadline in (("a", 30.0), ("b", 10.0), ("c", 20.0)):
        plan.began("j", "t", attempt)
        assert plan.ended("j", "t", attempt, deadline) == []
    assert plan.next_deadline() == 10.0
    assert plan.due(9.0) == []
    assert plan.due(20.0) == [Removal("j", "t", ("b", "b.retain")),
                              Removal("j", "t", ("c", "c.retain"))]
    assert plan.due(25.0) == [] and plan.next_deadline() == 30.0 and len(plan) == 1


def test_short_of_disk_the_earliest_retained_attempts_go_before_their_time() -> None:
    plan = RetentionPlan()
    for attempt, deadline in (("a", 30.0), ("b", 10.0), ("c", 20.0)):
        plan.began("j", "t", attempt)
        plan.ended("j", "t", attempt, deadline)
    plan.began("j", "t", "running")
    assert plan.earliest(2) == [Removal("j", "t", ("b", "b.retain")),
                                Removal("j", "t", ("c", "c.retain"))]
    assert plan.earliest(5) == [Removal("j", "t", ("a", "a.retain"))]  # never a running one
    assert plan.earliest(5) == [] and plan.due(100.0) == []


def test_a_deleted_task_waits_for_its_running_attempts() -> None:
    plan = RetentionPlan()
    plan.began("j", "t", "a1")
    plan.ended("j", "t", "a1", 100.0)
    plan.began("j", "t", "a2")
    plan.began("j", "t", "a3")
    assert plan.delete_task("j", "t", ["a1", "a2", "a3", "a1.retain"]) == []
    assert plan.ended("j", "t", "a2", 100.0) == []
    [removal] = plan.ended("j", "t", "a3", 100.0)
    assert removal == Removal("j", "t", ("a1", "a1.retain", "a2", "a2.retain", "a3", "a3.retain"))
    assert plan.waiting_deletions() == []


def test_a_deleted_task_with_nothing_running_goes_at_once() -> None:
    plan = RetentionPlan()
    plan.began("j", "other", "x")
    assert plan.delete_task("j", "t", ["a1"]) == [Removal("j", "t", ("a1",))]


def test_an_attempt_begun_after_the_deletion_is_not_part_of_it() -> None:
    # The task was deleted and added again under its id: its new attempt keeps its directory
    # for its own retention.
    plan = RetentionPlan()
    plan.began("j", "t", "old")
    assert plan.delete_task("j", "t", ["old"]) == []
    plan.began("j", "t", "new")
    assert plan.ended("j", "t", "new", 50.0) == []
    assert plan.ended("j", "t", "old", 50.0) == [Removal("j", "t", ("old", "old.retain"))]
    assert plan.due(50.0) == [Removal("j", "t", ("new", "new.retain"))]


# --- the agent, a real process ---------------------------------------------------------------


async def test_directories_go_after_their_retention_and_empty_parents_with_them(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
) -> None:
    node = tmp_path / "node"
    await start_agent(control_plane, node)
    s = await control_plane.stream(1)
    s.send(assignments=[
        assignment("short", "true", job="js", task="t", retention_time=seconds(0.5)),
        assignment("long", "true", job="jl", task="t", retention_time=seconds(HOUR)),
        assignment("dflt", "true", job="jd", task="t"),
        assignment("zero", "true", job="jl", task="z", retention_time=seconds(0)),
    ])
    await wait_for(lambda: {"short", "long", "dflt", "zero"} <= s.results().keys(), "results")
    await wait_for(lambda: not (node / "tasks" / "js").exists(), "job js's directory to go")
    await wait_for(lambda: not (node / "tasks" / "jl" / "z").exists(), "task z to go")
    assert (attempt_dir(node, "jl", "t", "long") / "stdout.txt").exists()
    assert (attempt_dir(node, "jd", "t", "dflt") / "stdout.txt").exists()
    # A retention other than the default is written down next to the attempt, to outlive
    # the agent; the default needs no file.
    deadline = float((node / "tasks" / "jl" / "t" / "long.retain").read_text())
    assert time.time() + HOUR - 600 < deadline <= time.time() + HOUR
    assert sorted(os.listdir(node / "tasks" / "jd" / "t")) == ["dflt"]
    assert s.results()["short"].exit_code == 0


async def test_what_was_retained_before_a_restart_goes_when_due_after_it(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
) -> None:
    node = tmp_path / "node"
    agent = await start_agent(control_plane, node)
    s = await control_plane.stream(1)
    s.send(assignments=[
        assignment("keep", "true", task="keep", retention_time=seconds(HOUR)),
        assignment("past", "true", task="past", retention_time=seconds(HOUR)),
        assignment("old", "true", task="old"),
        assignment("recent", "true", task="recent"),
    ])
    await wait_for(lambda: {"keep", "past", "old", "recent"} <= s.results().keys(), "results")
    agent.signal(signal.SIGTERM)
    assert await agent.exit_code() == 0

    # While the agent was down, time passed: one marker's deadline, and the default
    # retention of an attempt that ended eight days ago.
    tasks = node / "tasks" / "j1"
    (tasks / "past" / "past.retain").write_text(f"{time.time() - 1:.3f}\n")
    eight_days_ago = time.time() - 8 * 24 * HOUR
    os.utime(tasks / "old" / "old", (eight_days_ago, eight_days_ago))
    # A marker whose attempt directory is gone is cleaned up too.
    (tasks / "keep" / "lost.retain").write_text("1\n")

    await start_agent(control_plane, node)
    await control_plane.stream(2)
    await wait_for(lambda: not (tasks / "past").exists() and not (tasks / "old").exists(),
                   "the due directories to go after the restart")
    await wait_for(lambda: not (tasks / "keep" / "lost.retain").exists(), "the orphan marker")
    # Removed in the same pass as the due ones: what is not due stays.
    assert (tasks / "keep" / "keep" / "stdout.txt").exists()
    assert (tasks / "keep" / "keep.retain").exists()
    assert (tasks / "recent" / "recent" / "stdout.txt").exists()


async def test_a_deleted_task_goes_at_once_but_not_under_a_running_attempt(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
) -> None:
    node = tmp_path / "node"
    await start_agent(control_plane, node)
    s = await control_plane.stream(1)
    s.send(assignments=[
        assignment("d1", "true", task="done"),
        assignment("d2", "true", task="done", retention_time=seconds(HOUR)),
        assignment("r1", "true", task="running"),
        assignment("r2", BLOCKER, task="running"),
        assignment("o1", "true", task="other"),
    ])
    await wait_for(lambda: {"d1", "d2", "r1", "o1"} <= s.results().keys(), "results")
    await wait_for(lambda: "r2" in s.started(), "r2 to start")
    tasks = node / "tasks" / "j1"
    s.send(deleted_tasks=[agent_pb2.TaskRef(job_id="j1", task_id="running"),
                          agent_pb2.TaskRef(job_id="j1", task_id="done")])
    await wait_for(lambda: not (tasks / "done").exists(), "the deleted task's directory to go")
    # Handled in the same pass: the task with a running attempt keeps all of it for now.
    assert (tasks / "running" / "r1" / "stdout.txt").exists()
    assert (tasks / "running" / "r2" / "wd").is_dir()

    (tasks / "running" / "r2" / "wd" / "go").touch()
    result = await wait_for(lambda: s.results().get("r2"), "r2's result")
    assert result.exit_code == 0
    await wait_for(lambda: not (tasks / "running").exists(), "the task to go after its attempt")
    assert (tasks / "other" / "o1" / "stdout.txt").exists()


async def test_clean_up_never_follows_a_symlink_out(
    control_plane: Any, start_agent: Any, tmp_path: Path, assignment: Any, wait_for: Any,
) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "precious.txt").write_text("keep me")
    (outside / "sub" / "also.txt").write_text("keep me too")
    node = tmp_path / "node"
    await start_agent(control_plane, node)
    s = await control_plane.stream(1)
    # The task plants links to the outside in its own directories.
    plant = f"/bin/sh -c 'ln -s {outside} out; ln -s {outside}/sub ../sub; ln -s {outside} ../../x'"
    s.send(assignments=[
        assignment("p1", plant, task="planter", retention_time=seconds(0.3)),
        assignment("q1", "true", task="victim"),
    ])
    await wait_for(lambda: {"p1", "q1"} <= s.results().keys(), "results")
    tasks = node / "tasks" / "j1"
    await wait_for(lambda: not (tasks / "planter" / "p1").exists(), "p1's directory to go")
    assert (outside / "precious.txt").read_text() == "keep me"
    assert (outside / "sub" / "also.txt").read_text() == "keep me too"

    # A task directory replaced by a link to the outside is not followed either.
    victim = tasks / "victim"
    victim.rename(tmp_path / "moved-victim")
    victim.symlink_to(outside)
    s.send(assignments=[assignment("w1", "true", task="witness")])
    await wait_for(lambda: "w1" in s.results(), "w1's result")
    s.send(deleted_tasks=[agent_pb2.TaskRef(job_id="j1", task_id="victim"),
                          agent_pb2.TaskRef(job_id="j1", task_id="witness")])
    await wait_for(lambda: not (tasks / "witness").exists(), "the witness task to go")
    assert victim.is_symlink()
    assert sorted(os.listdir(outside)) == ["precious.txt", "sub"]
    assert (outside / "sub" / "also.txt").exists()
