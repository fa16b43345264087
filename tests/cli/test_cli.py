"""The `shoal` command against the real suite (or no server at all): exit codes, one-line
errors, and output. Tests share one suite per module; each works in a pool and a job named
after itself (`uid`), so they never see each other's tasks."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shoal.cli.main import cli
from shoal.suite import LocalSuite, free_port
from tests.support import PY

ROOT = Path(__file__).resolve().parents[2]


def shoal(suite: LocalSuite, *args: str, input: str | None = None, key: str = "") -> Result:
    """The command in this process, talking to the suite with its `default` account's key."""
    return CliRunner().invoke(
        cli,
        ["--endpoint", suite.endpoint, "--key", key or suite.client_config.key, *args],
        input=input,
        env={"SHOAL_DEBUG": ""},
    )


def run_shoal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """The real command in a real process: what a user's terminal would show."""
    base = {k: v for k, v in os.environ.items() if (not k.startswith("SHOAL_") or k == "SHOAL_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", *args],
        capture_output=True,
        timeout=60,
        env={**base, **(env or {})},
        cwd=ROOT,
    )


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def with_job(suite: LocalSuite, uid: str, *commands: str, nodes: int = 0) -> None:
    """Pool and job both named `uid`; tasks t0, t1, ... running `commands`. With no nodes the
    tasks stay ACTIVE."""
    ok(shoal(suite, "pool", "create", uid, "--nodes", str(nodes), "--slots", "4"))
    ok(shoal(suite, "job", "create", uid, "--pool", uid))
    for i, command in enumerate(commands):
        ok(shoal(suite, "task", "add", uid, f"t{i}", "--command-line", command))


def task_ids(suite: LocalSuite, job_id: str) -> list[str]:
    tasks = json.loads(ok(shoal(suite, "task", "list", job_id, "-o", "json")).stdout)
    return [t["name"].rsplit("/", 1)[-1] for t in tasks]


# Without a server


@pytest.mark.parametrize(
    "args",
    [
        ["pool", "create", "p1"],
        ["pool", "create", "p1", "--nodes", "many"],
        ["pool", "create", "p1", "--nodes", "1", "--metadata", "novalue"],
        ["job", "create", "j1"],
        ["task", "add", "j1", "t1"],
        ["task", "add", "j1", "t1", "--command-line", "echo", "--", "echo"],
        ["task", "add", "j1", "t1", "--env", "NOEQUALS", "--", "true"],
        ["task", "list", "j1", "--state", "sleeping"],
        ["job", "update", "j1"],
        ["job", "update", "j1", "--metadata", "novalue"],
        ["job", "update", "j1", "--on-all-tasks-complete", "sometimes"],
        ["pool", "update", "p1"],
        ["pool", "update", "p1", "--start-task", "true", "--clear-start-task"],
        ["pool", "update", "p1", "--app-package", "a", "--clear-app-packages"],
        ["pool", "update", "p1", "--start-task-file", "c:k", "--metadata", "a=b"],
        ["task", "update", "j1", "t1"],
        ["task", "update", "j1", "t1", "--max-task-retries", "often"],
        ["task", "update", "j1", "t1", "--max-wall-clock", "soon"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2_without_calling_the_server(args: list[str]) -> None:
    # Nothing listens at this endpoint: a usage error must be found before any call.
    result = CliRunner().invoke(
        cli, ["--endpoint", f"127.0.0.1:{free_port()}", "--key", "k", *args]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "cannot reach" not in result.output


def test_cannot_reach_is_one_line_and_exit_1() -> None:
    port = free_port()
    done = run_shoal("--endpoint", f"127.0.0.1:{port}", "--key", "k", "pool", "list")
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr.decode() == (
        f"error: cannot reach Shoal at 127.0.0.1:{port}: is `shoal up` running?\n"
    )


def test_cannot_reach_a_discovered_endpoint_names_it(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "client.json").write_text(
        json.dumps({"endpoint": f"127.0.0.1:{port}", "account": "default", "key": "k"})
    )
    done = run_shoal("--state-dir", str(tmp_path), "job", "list")
    assert done.returncode == 1
    stderr = done.stderr.decode()
    assert stderr.startswith(f"error: cannot reach Shoal at 127.0.0.1:{port}")
    assert stderr.count("\n") == 1


def test_nothing_to_talk_to_says_run_shoal_up(tmp_path: Path) -> None:
    done = run_shoal("--state-dir", str(tmp_path), "job", "list")
    assert done.returncode == 1
    stderr = done.stderr.decode()
    assert stderr.startswith("error: no Shoal to talk to")
    assert "`shoal up`" in stderr and stderr.count("\n") == 1


# Errors from the real services


def test_server_errors_are_one_line_with_the_reason(shared_suite: LocalSuite, uid: str) -> None:
    result = shoal(shared_suite, "job", "show", uid)
    assert result.exit_code == 1
    assert result.stderr == f"error: job 'jobs/{uid}' not found [JOB_NOT_FOUND]\n"
    result = shoal(shared_suite, "pool", "create", "bad.id", "--nodes", "1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: pool_id: 'bad.id' is not a valid id")
    assert result.stderr.endswith("[INVALID_ARGUMENT]\n") and result.stderr.count("\n") == 1
    ok(shoal(shared_suite, "pool", "create", uid, "--nodes", "0"))
    result = shoal(shared_suite, "pool", "create", uid, "--nodes", "0")
    assert result.exit_code == 1
    assert result.stderr == f"error: pool '{uid}' already exists [POOL_ALREADY_EXISTS]\n"


def test_a_wrong_key_is_reported(shared_suite: LocalSuite) -> None:
    result = shoal(shared_suite, "pool", "list", key="shoal_wrong")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: the account key is not valid [INVALID_ACCOUNT_KEY]\n"


def test_the_real_command_finds_the_suite_through_its_state_dir(
    shared_suite: LocalSuite, uid: str
) -> None:
    env = {"SHOAL_STATE_DIR": str(shared_suite.state_dir)}
    done = run_shoal("pool", "create", uid, "--nodes", "0", "-o", "json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == f"pools/{uid}"
    # Seen by another client of the same account.
    assert shared_suite.client().get_pool(uid).target_nodes == 0


# Adding tasks


def test_add_many_names_the_malformed_line_and_sends_nothing(
    shared_suite: LocalSuite, uid: str, tmp_path: Path
) -> None:
    with_job(shared_suite, uid)
    lines = tmp_path / "tasks.jsonl"
    lines.write_text(
        '{"id": "a", "command_line": "echo a"}\n'
        "\n"
        '{"id": "b", "command_line": }\n'
        '{"id": "c", "command_line": "echo c"}\n'
    )
    result = shoal(shared_suite, "task", "add-many", uid, str(lines))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {lines} line 3: not valid JSON")
    assert result.stderr.count("\n") == 1
    # Not even the good line before it was added.
    assert task_ids(shared_suite, uid) == []
    empty = shoal(shared_suite, "task", "list", uid)
    assert empty.stdout == "" and f"no tasks in job {uid}" in empty.stderr


def test_add_many_names_a_line_with_a_bad_field(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid)
    text = '{"id": "a", "command_line": "echo a"}\n{"id": "b", "cmd": "echo b"}\n'
    result = shoal(shared_suite, "task", "add-many", uid, "-", input=text)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: <stdin> line 2: unknown key 'cmd'")
    text = '{"id": "a", "command_line": "echo a", "max_task_retry_count": "2"}\n'
    result = shoal(shared_suite, "task", "add-many", uid, "-", input=text)
    assert result.exit_code == 1
    assert "line 1: 'max_task_retry_count' must be an integer" in result.stderr
    assert task_ids(shared_suite, uid) == []


def lines_of(*tasks: Mapping[str, object]) -> str:
    return "".join(json.dumps(t) + "\n" for t in tasks)


def test_add_many_sends_in_chunks(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid)
    text = lines_of(
        *(
            {"id": f"t{i}", "command_line": f"echo {i}", "environment": {"I": str(i)}}
            for i in range(5)
        )
    )
    result = shoal(shared_suite, "task", "add-many", uid, "-", "--chunk", "2", input=text)
    assert result.exit_code == 0, result.output
    assert "added 5 tasks to job " + uid in result.stderr
    assert task_ids(shared_suite, uid) == [f"t{i}" for i in range(5)]
    shown = json.loads(ok(shoal(shared_suite, "task", "show", uid, "t3", "-o", "json")).stdout)
    assert shown["command_line"] == "echo 3" and shown["environment"] == {"I": "3"}

    # Each chunk is one all-or-nothing request: a task the server refuses in the second chunk
    # leaves the first chunk added and nothing of the second.
    text = lines_of(
        {"id": "u0", "command_line": "echo"},
        {"id": "u1", "command_line": "echo"},
        {"id": "u2", "command_line": "echo"},
        {"id": "u3", "command_line": ""},
        {"id": "u4", "command_line": "echo"},
    )
    result = shoal(shared_suite, "task", "add-many", uid, "-", "--chunk", "2", input=text)
    assert result.exit_code == 1
    note, error = result.stderr.splitlines()
    assert note == "2 of 5 tasks were added before the error"
    assert error.startswith("error: requests[1].task.command_line: is required")
    assert task_ids(shared_suite, uid) == [*(f"t{i}" for i in range(5)), "u0", "u1"]


def test_task_add_keeps_arguments_as_given(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid)
    result = shoal(
        shared_suite, "task", "add", uid, "t1", "--env", "A=1", "--", "echo", "hello world", "-n"
    )
    assert result.exit_code == 0, result.output
    task = json.loads(ok(shoal(shared_suite, "task", "show", uid, "t1", "-o", "json")).stdout)
    assert task["command_line"] == "echo 'hello world' -n"
    assert task["environment"] == {"A": "1"}


# Output


def test_lists_and_shows_as_json(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid, "true", "true")
    pools = json.loads(ok(shoal(shared_suite, "pool", "list", "-o", "json")).stdout)
    names = [p["name"] for p in pools]
    assert f"pools/{uid}" in names and names == sorted(names, key=str.lower)
    mine = next(p for p in pools if p["name"] == f"pools/{uid}")
    assert (mine["target_nodes"], mine["task_slots_per_node"], mine["state"]) == (0, 4, "ACTIVE")
    job = json.loads(ok(shoal(shared_suite, "job", "show", uid, "-o", "json")).stdout)
    assert (job["id"], job["pool"]) == (uid, f"pools/{uid}")
    # int64 is a string in protobuf's JSON; people and jq want numbers.
    assert job["task_counts"]["active"] == 2 and job["task_counts"]["failed"] == 0
    listed = shoal(shared_suite, "task", "list", uid, "-o", "json", "--limit", "1")
    assert [t["name"] for t in json.loads(ok(listed).stdout)] == [f"jobs/{uid}/tasks/t0"]


def test_tables_show_ids_and_states(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid, "true")
    result = ok(shoal(shared_suite, "task", "list", uid))
    header, row = result.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "EXIT", "RETRIES", "NODE", "REASON", "COMMAND"]
    assert row.split()[:5] == ["t0", "ACTIVE", "-", "0", "-"] and row.split()[-1] == "true"
    assert f"pool '{uid}' has no connected nodes" in row
    shown = ok(shoal(shared_suite, "job", "show", uid)).stdout
    assert "1 total: 1 active, 0 running, 0 completed" in shown
    pool = ok(shoal(shared_suite, "pool", "show", uid)).stdout.splitlines()
    assert ["state", "ACTIVE"] in [r.split() for r in pool]
    assert ["nodes", "0", "of", "0"] in [r.split() for r in pool]


# Updating a job


def test_job_update_changes_what_it_names_and_shows_the_new_etag(
    shared_suite: LocalSuite, uid: str
) -> None:
    with_job(shared_suite, uid, "true")  # no nodes: the task stays active
    etag = json.loads(ok(shoal(shared_suite, "job", "show", uid, "-o", "json")).stdout)["etag"]
    assert ["etag", etag] in [r.split() for r in ok(shoal(shared_suite, "job", "show", uid))
                              .stdout.splitlines()]
    result = ok(shoal(shared_suite, "job", "update", uid, "--priority", "7",
                      "--max-parallel-tasks", "2", "--max-wall-clock", "2h",
                      "--max-task-retries", "3", "--metadata", "team=a", "--if-match", etag,
                      "-o", "json"))
    job = json.loads(result.stdout)
    assert (job["priority"], job["max_parallel_tasks"], job["metadata"]) == (7, 2, {"team": "a"})
    assert job["constraints"] == {"max_wall_clock_time": "7200s", "max_task_retry_count": 3}
    assert job["etag"] != etag and job["state"] == "ACTIVE"
    # The etag read first is stale now: one line, and nothing changes.
    stale = shoal(shared_suite, "job", "update", uid, "--priority", "1", "--if-match", etag)
    assert stale.exit_code == 1 and stale.stdout == ""
    assert stale.stderr.startswith(f"error: job '{uid}' has changed since it was read")
    assert stale.stderr.endswith("[CONDITION_NOT_MET]\n") and stale.stderr.count("\n") == 1
    # An etag as a shell leaves it (without its quotes) matches; 0 removes the wall clock.
    shown = ok(shoal(shared_suite, "job", "update", uid, "--if-match", job["etag"].strip('"'),
                     "--max-wall-clock", "0", "--clear-metadata")).stdout
    rows = [r.split() for r in shown.splitlines()]
    assert ["priority", "7"] in rows and ["max", "wall", "clock", "none"] in rows
    assert ["metadata", "-"] in rows


def test_job_update_errors_are_one_line_with_the_reason(shared_suite: LocalSuite, uid: str) -> None:
    result = shoal(shared_suite, "job", "update", uid, "--priority", "1")
    assert result.exit_code == 1
    assert result.stderr == f"error: job 'jobs/{uid}' not found [JOB_NOT_FOUND]\n"
    with_job(shared_suite, uid)
    ok(shoal(shared_suite, "job", "update", uid, "--on-all-tasks-complete", "terminatejob"))
    result = shoal(shared_suite, "job", "update", uid, "--on-all-tasks-complete", "noaction")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: job.on_all_tasks_complete: cannot go back")
    assert result.stderr.endswith("[INVALID_ARGUMENT]\n")
    usage = shoal(shared_suite, "job", "update", uid)
    assert usage.exit_code == 2 and "nothing to update" in usage.stderr


# Updating a pool and a task


def test_pool_update_changes_what_it_names_and_shows_the_new_etag(
    shared_suite: LocalSuite, uid: str
) -> None:
    ok(shoal(shared_suite, "pool", "create", uid, "--nodes", "0", "--metadata", "team=a"))
    etag = json.loads(ok(shoal(shared_suite, "pool", "show", uid, "-o", "json")).stdout)["etag"]
    assert ["etag", etag] in [r.split() for r in ok(shoal(shared_suite, "pool", "show", uid))
                              .stdout.splitlines()]
    pool = json.loads(ok(shoal(
        shared_suite, "pool", "update", uid, "--start-task", "echo hello",
        "--start-task-retries", "2", "--app-package", "tool:1.0", "--app-package", "other",
        "--if-match", etag, "-o", "json")).stdout)
    start = pool["start_task"]
    assert (start["command_line"], start["max_task_retry_count"], start["wait_for_success"]) == (
        "echo hello", 2, True)
    assert pool["application_package_references"] == [
        {"application_id": "tool", "version": "1.0"}, {"application_id": "other", "version": ""}]
    assert pool["metadata"] == {"team": "a"} and pool["etag"] != etag  # metadata kept
    # The etag read first is stale now: one line, and nothing changes.
    stale = shoal(shared_suite, "pool", "update", uid, "--clear-metadata", "--if-match", etag)
    assert stale.exit_code == 1 and stale.stdout == ""
    assert stale.stderr.startswith(f"error: pool '{uid}' has changed since it was read")
    assert stale.stderr.endswith("[CONDITION_NOT_MET]\n") and stale.stderr.count("\n") == 1
    # Without its quotes, as a shell leaves it; each setting cleared.
    shown = ok(shoal(shared_suite, "pool", "update", uid, "--if-match", pool["etag"].strip('"'),
                     "--clear-start-task", "--clear-app-packages", "--clear-metadata")).stdout
    rows = [r.split() for r in shown.splitlines()]
    assert ["start", "task", "-"] in rows and ["app", "packages", "-"] in rows
    assert ["metadata", "-"] in rows
    bad = shoal(shared_suite, "pool", "update", uid, "--app-package", "bad id!")
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error: pool.application_package_references[0].application_id")


def test_task_update_changes_its_constraints_and_shows_the_new_etag(
    shared_suite: LocalSuite, uid: str
) -> None:
    with_job(shared_suite, uid, "true")  # no nodes: the task stays active
    etag = json.loads(ok(shoal(shared_suite, "task", "show", uid, "t0", "-o", "json")).stdout)["etag"]
    task = json.loads(ok(shoal(
        shared_suite, "task", "update", uid, "t0", "--max-wall-clock", "90s",
        "--max-task-retries", "3", "--retention", "1h", "--if-match", etag, "-o", "json")).stdout)
    assert task["constraints"] == {"max_wall_clock_time": "90s", "max_task_retry_count": 3,
                                   "retention_time": "3600s"}
    assert task["etag"] != etag and task["state"] == "ACTIVE"
    stale = shoal(shared_suite, "task", "update", uid, "t0", "--retention", "2h",
                  "--if-match", etag)
    assert stale.exit_code == 1 and stale.stderr.endswith("[CONDITION_NOT_MET]\n")
    shown = ok(shoal(shared_suite, "task", "update", uid, "t0", "--max-wall-clock", "0",
                     "--max-retries", "job", "--if-match", task["etag"].strip('"'))).stdout
    rows = [r.split() for r in shown.splitlines()]
    assert ["max", "wall", "clock", "none"] in rows and ["max", "retries", "the", "job's"] in rows
    assert ["retention", "1h"] in rows
    missing = shoal(shared_suite, "task", "update", uid, "nope", "--retention", "1h")
    assert missing.exit_code == 1
    assert missing.stderr == f"error: task 'jobs/{uid}/tasks/nope' not found [TASK_NOT_FOUND]\n"


# Running tasks on a real node


def test_wait_exits_0_when_all_succeeded(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid, "echo hi", "true", nodes=1)
    result = shoal(shared_suite, "task", "wait", uid, "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert f"all 2 tasks of job {uid} succeeded" in result.stderr


def test_wait_exits_1_naming_failed_tasks(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid, "true", "/bin/sh -c 'exit 3'", "false", nodes=1)
    result = shoal(shared_suite, "task", "wait", uid, "--timeout", "30")
    assert result.exit_code == 1, result.output
    assert result.stderr.endswith("error: 2 of 3 tasks failed: t1, t2\n")
    row = ok(shoal(shared_suite, "task", "list", uid, "--state", "completed")).stdout
    assert [r.split()[:3] for r in row.splitlines()[1:]] == [
        ["t0", "SUCCEEDED", "0"],
        ["t1", "FAILED", "3"],
        ["t2", "FAILED", "1"],
    ]


def test_wait_exits_124_on_timeout(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid, "true")  # no nodes: it stays active
    result = shoal(shared_suite, "task", "wait", uid, "--timeout", "0.2")
    assert result.exit_code == 124
    assert f"error: timed out: job '{uid}' still has 1 active and 0 running tasks" in result.stderr


def test_logs_prints_the_files_bytes_as_is(shared_suite: LocalSuite, uid: str) -> None:
    code = (
        "import sys; sys.stdout.buffer.write(b'line 1\\nline 2\\n\\xff\\x00 no newline'); "
        "sys.stderr.write('oops\\n')"
    )
    with_job(shared_suite, uid, shlex.join([PY, "-c", code]), nodes=1)
    ok(shoal(shared_suite, "task", "wait", uid, "--timeout", "30"))
    # A real process: bytes that are not UTF-8 reach the terminal unchanged.
    env = {"SHOAL_STATE_DIR": str(shared_suite.state_dir)}
    done = run_shoal("task", "logs", uid, "t0", env=env)
    assert (done.returncode, done.stdout) == (0, b"line 1\nline 2\n\xff\x00 no newline")
    done = run_shoal("task", "logs", uid, "t0", "--stderr", env=env)
    assert (done.returncode, done.stdout) == (0, b"oops\n")


def test_delete_says_what_it_deleted(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid, "true")
    result = ok(shoal(shared_suite, "job", "delete", uid, "--yes"))
    assert f"deleted job {uid}" in result.stderr
    result = shoal(shared_suite, "job", "show", uid)
    assert result.exit_code == 1 and "[JOB_NOT_FOUND]" in result.stderr
    result = ok(shoal(shared_suite, "pool", "rm", uid, "-y"))
    assert f"deleted pool {uid}" in result.stderr
    # A pool is DELETING until the pool-manager has let its nodes go (as in Azure Batch).
    deadline = time.monotonic() + 30
    while (result := shoal(shared_suite, "pool", "show", uid, "-o", "json")).exit_code == 0:
        assert json.loads(result.stdout)["state"] == "DELETING"
        assert time.monotonic() < deadline, "the pool was not deleted"
        time.sleep(0.05)
    assert result.exit_code == 1
    assert result.stderr == f"error: pool 'pools/{uid}' not found [POOL_NOT_FOUND]\n"
