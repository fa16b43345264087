"""The executor against real subprocesses."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration

from agent.executor import Executor
from agent.layout import NodeLayout
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2

USER_ERROR = task_pb2.FailureInfo.USER_ERROR


@pytest.fixture
def layout(tmp_path: Path) -> NodeLayout:
    lay = NodeLayout(tmp_path / "node")
    lay.create()
    return lay


@pytest.fixture
def executor(layout: NodeLayout) -> Executor:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGENT_SECRET": "do-not-leak"}
    return Executor(layout, pool_id="p1", node_id="n1", environ=env)


def stdout_of(layout: NodeLayout, a: agent_pb2.Assignment) -> str:
    return layout.attempt(a.job_id, a.task_id, a.attempt_id).stdout.read_text()


async def test_stdout_and_stderr_go_to_files_in_the_attempt_dir(
    executor: Executor, layout: NodeLayout, assignment: Any
) -> None:
    a = assignment("a1", "/bin/sh -c 'echo out; echo err >&2'")
    started: list[tuple[str, float]] = []
    r = await executor.run(a, lambda aid, t: started.append((aid, t)))
    assert r is not None
    assert r.exit_code == 0 and not r.HasField("failure_info")
    paths = layout.attempt("j1", "t-a1", "a1")
    assert paths.stdout.read_text() == "out\n"
    assert paths.stderr.read_text() == "err\n"
    assert [aid for aid, _ in started] == ["a1"]
    assert r.start_time.seconds > 0 and r.end_time.ToNanoseconds() >= r.start_time.ToNanoseconds()


async def test_environment_has_shoal_and_azure_batch_names_and_nothing_leaks(
    executor: Executor, layout: NodeLayout, assignment: Any
) -> None:
    a = assignment(
        "a1", "/usr/bin/env", job="job-7", task="task-3", attempt_number=2,
        environment={"MY_VAR": "hello world", "SHOAL_JOB_ID": "spoofed"},
    )
    r = await executor.run(a)
    assert r is not None and r.exit_code == 0
    env = dict(line.split("=", 1) for line in stdout_of(layout, a).splitlines())
    paths = layout.attempt("job-7", "task-3", "a1")
    expected = {
        "NODE_ROOT_DIR": str(layout.root),
        "NODE_SHARED_DIR": str(layout.shared),
        "NODE_STARTUP_DIR": str(layout.startup),
        "TASK_DIR": str(paths.dir),
        "TASK_WORKING_DIR": str(paths.wd),
        "POOL_ID": "p1",
        "NODE_ID": "n1",
        "JOB_ID": "job-7",
        "TASK_ID": "task-3",
    }
    for k, v in expected.items():
        assert env[f"SHOAL_{k}"] == v, k
        assert env[f"AZ_BATCH_{k}"] == v, k
    assert env["SHOAL_TASK_ATTEMPT"] == "2"
    assert env["SHOAL_TASK_ATTEMPT_ID"] == "a1"
    assert env["HOME"] == str(paths.dir)
    assert env["MY_VAR"] == "hello world"
    assert "AGENT_SECRET" not in env


async def test_the_command_runs_without_a_shell(
    executor: Executor, layout: NodeLayout, assignment: Any
) -> None:
    a = assignment("a1", "echo $HOME 'two  spaces' *")
    r = await executor.run(a)
    assert r is not None and r.exit_code == 0
    assert stdout_of(layout, a) == "$HOME two  spaces *\n"

    b = assignment("a2", "/bin/sh -c 'echo hi | tr a-z A-Z'")
    r = await executor.run(b)
    assert r is not None and r.exit_code == 0
    assert stdout_of(layout, b) == "HI\n"


async def test_the_working_dir_is_the_cwd(executor: Executor, layout: NodeLayout, assignment: Any) -> None:
    a = assignment("a1", "pwd")
    await executor.run(a)
    assert stdout_of(layout, a).strip() == str(layout.attempt("j1", "t-a1", "a1").wd)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("no-such-program-xyz --flag", "COMMAND_NOT_FOUND"),
        ("./missing.sh", "COMMAND_NOT_FOUND"),
        ("", "INVALID_COMMAND_LINE"),
        ("   ", "INVALID_COMMAND_LINE"),
        ("echo 'unbalanced", "INVALID_COMMAND_LINE"),
    ],
)
async def test_a_command_that_cannot_start_fails_without_an_exit_code(
    executor: Executor, assignment: Any, command: str, code: str
) -> None:
    r = await executor.run(assignment("a1", command))
    assert r is not None
    assert not r.HasField("exit_code")
    assert not r.HasField("start_time")
    assert r.HasField("end_time")
    assert (r.failure_info.category, r.failure_info.code) == (USER_ERROR, code)
    assert r.failure_info.message


async def test_a_file_without_execute_permission_is_not_executable(
    executor: Executor, layout: NodeLayout, assignment: Any
) -> None:
    script = layout.shared / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    r = await executor.run(assignment("a1", str(script)))
    assert r is not None and not r.HasField("exit_code")
    assert r.failure_info.code == "COMMAND_NOT_EXECUTABLE"
    assert str(script) in r.failure_info.message


async def test_a_bad_environment_variable_fails_the_attempt(executor: Executor, assignment: Any) -> None:
    r = await executor.run(assignment("a1", "true", environment={"A=B": "x"}))
    assert r is not None and r.failure_info.code == "INVALID_ENVIRONMENT"
    assert "'A=B'" in r.failure_info.message


async def test_ids_that_would_escape_the_node_root_are_refused(
    executor: Executor, layout: NodeLayout, assignment: Any
) -> None:
    r = await executor.run(assignment("a1", "true", job=".."))
    assert r is not None and r.failure_info.code == "INVALID_ASSIGNMENT"
    assert r.failure_info.category == task_pb2.FailureInfo.SERVER_ERROR
    assert sorted(p.name for p in layout.root.iterdir()) == ["outbox", "shared", "startup", "tasks"]
    assert list(layout.tasks.iterdir()) == []


@pytest.mark.parametrize(("command", "exit_code"), [
    ("/bin/sh -c 'exit 7'", 7),
    ("false", 1),
    ("/bin/sh -c 'kill -TERM $$'", 128 + 15),
])
async def test_the_exit_code_is_reported(
    executor: Executor, assignment: Any, command: str, exit_code: int
) -> None:
    r = await executor.run(assignment("a1", command))
    assert r is not None
    assert r.exit_code == exit_code
    assert not r.HasField("failure_info")


async def test_max_wall_clock_time_kills_the_whole_process_group(
    executor: Executor, layout: NodeLayout, assignment: Any, wait_for: Any, is_alive: Any
) -> None:
    limit = Duration(nanos=300_000_000)
    a = assignment(
        "a1", "/bin/sh -c 'sleep 300 & echo $! > child.pid; wait'", max_wall_clock_time=limit
    )
    r = await executor.run(a)
    assert r is not None
    assert r.exit_code == 137
    assert (r.failure_info.category, r.failure_info.code) == (USER_ERROR, "MAX_WALL_CLOCK_TIME_EXCEEDED")
    assert "0.3s" in r.failure_info.message
    child = int((layout.attempt("j1", "t-a1", "a1").wd / "child.pid").read_text())
    await wait_for(lambda: not is_alive(child), "the background child to die")


async def test_a_task_within_its_wall_clock_limit_is_not_killed(
    executor: Executor, assignment: Any
) -> None:
    r = await executor.run(assignment("a1", "true", max_wall_clock_time=Duration(seconds=60)))
    assert r is not None and r.exit_code == 0 and not r.HasField("failure_info")


def limits(attempt_id: str, wall: Duration | None = None,
           retention: Duration | None = None) -> agent_pb2.AttemptConstraints:
    return agent_pb2.AttemptConstraints(attempt_id=attempt_id, max_wall_clock_time=wall,
                                        retention_time=retention)


async def test_a_wall_clock_set_while_the_attempt_runs_kills_it(
    executor: Executor, assignment: Any
) -> None:
    a = assignment("a1", "sleep 300")  # no limit when it was assigned
    started = asyncio.Event()
    task = asyncio.create_task(executor.run(a, lambda *_: started.set()))
    await started.wait()
    assert executor.update(limits("a1", wall=Duration(nanos=200_000_000), retention=Duration(seconds=5)))
    r = await task
    assert r is not None and r.exit_code == 137
    assert r.failure_info.code == "MAX_WALL_CLOCK_TIME_EXCEEDED" and "0.2s" in r.failure_info.message
    # Its assignment carries the new limits: its end (the cleanup) reads its retention there.
    assert a.retention_time.seconds == 5


async def test_a_wall_clock_raised_while_the_attempt_runs_lets_it_finish(
    executor: Executor, assignment: Any
) -> None:
    # It would be killed after 0.3 s; the update reaches it as it starts, and it outlives
    # the old limit.
    a = assignment("a1", "sleep 1", max_wall_clock_time=Duration(nanos=300_000_000))
    r = await executor.run(a, lambda aid, _: executor.update(limits(aid, wall=Duration(seconds=120))))
    assert r is not None and r.exit_code == 0 and not r.HasField("failure_info")


async def test_an_update_that_comes_before_the_attempt_starts_reaches_it(
    executor: Executor, assignment: Any
) -> None:
    # An update for an attempt not started yet (assigned in the same message) reaches it.
    a = assignment("a2", "sleep 1", max_wall_clock_time=Duration(nanos=300_000_000))
    executor.expect(a)
    assert executor.update(limits("a2"))
    r = await executor.run(a)
    assert r is not None and r.exit_code == 0 and not a.HasField("max_wall_clock_time")
    assert not executor.update(limits("a2"))  # ended: nothing to update


async def test_every_attempt_gets_a_fresh_directory(
    executor: Executor, layout: NodeLayout, assignment: Any
) -> None:
    first = assignment("a1", "/bin/sh -c 'ls; echo made > leftover.txt'", task="t1")
    second = assignment("a2", "/bin/sh -c 'ls'", task="t1")
    await executor.run(first)
    await executor.run(second)
    d1, d2 = layout.attempt("j1", "t1", "a1"), layout.attempt("j1", "t1", "a2")
    assert d1.dir != d2.dir
    assert (d1.wd / "leftover.txt").exists()
    assert stdout_of(layout, second) == ""
    # The same attempt id run again (a previous life of the agent) starts from an empty dir.
    await executor.run(assignment("a1", "/bin/sh -c 'ls'", task="t1"))
    assert stdout_of(layout, first) == ""


async def test_cancel_kills_the_process_group_and_still_reports(
    executor: Executor, layout: NodeLayout, assignment: Any, wait_for: Any, is_alive: Any
) -> None:
    a = assignment("a1", "/bin/sh -c 'sleep 300 & echo $! > child.pid; wait'")
    started = asyncio.Event()
    task = asyncio.create_task(executor.run(a, lambda *_: started.set()))
    await started.wait()
    child_file = layout.attempt("j1", "t-a1", "a1").wd / "child.pid"
    child = int(await wait_for(lambda: child_file.exists() and child_file.read_text().strip(), "child pid"))
    assert executor.running == ["a1"]
    assert executor.cancel("a1")
    r = await task
    assert r is not None
    assert (r.failure_info.category, r.failure_info.code) == (USER_ERROR, "TASK_CANCELLED")
    assert r.exit_code == 137
    await wait_for(lambda: not is_alive(child), "the child to die")
    assert executor.running == []
    assert not executor.cancel("a1")


async def test_kill_all_stops_attempts_without_results(
    executor: Executor, layout: NodeLayout, assignment: Any, wait_for: Any, is_alive: Any
) -> None:
    a = assignment("a1", "/bin/sh -c 'echo $$ > pid.txt; exec sleep 300'")
    task = asyncio.create_task(executor.run(a))
    pid_file = layout.attempt("j1", "t-a1", "a1").wd / "pid.txt"
    pid = int(await wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "pid"))
    await executor.kill_all()
    assert await task is None
    await wait_for(lambda: not is_alive(pid), "the task to die")


