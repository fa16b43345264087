"""The `shoal` command: exit codes, one-line errors, and output, against a stand-in gateway
(or no server at all)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoal.cli.main import cli
from shoal.suite import free_port
from tests.cli.standin_gateway import KEY, StandinGateway

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gateway():
    with StandinGateway() as gw:
        yield gw


def shoal(gateway: StandinGateway, *args: str, input: str | None = None):
    runner = CliRunner()
    return runner.invoke(
        cli,
        ["--endpoint", gateway.endpoint, "--key", KEY, *args],
        input=input,
        env={"SHOAL_DEBUG": ""},
    )


def run_shoal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a real process: what a user's terminal would show."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        cwd=ROOT,
    )


def with_job(gateway: StandinGateway, tasks: int = 0) -> None:
    assert shoal(gateway, "pool", "create", "p", "--nodes", "1").exit_code == 0
    assert shoal(gateway, "job", "create", "j", "--pool", "p").exit_code == 0
    for i in range(tasks):
        assert shoal(gateway, "task", "add", "j", f"t{i}", "--", "true").exit_code == 0


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
    assert done.stdout == ""
    assert done.stderr == f"error: cannot reach Shoal at 127.0.0.1:{port}: is `shoal up` running?\n"


def test_cannot_reach_a_discovered_endpoint_names_it(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "client.json").write_text(
        json.dumps({"endpoint": f"127.0.0.1:{port}", "account": "default", "key": "k"})
    )
    done = run_shoal("--state-dir", str(tmp_path), "job", "list")
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot reach Shoal at 127.0.0.1:{port}")
    assert done.stderr.count("\n") == 1


def test_nothing_to_talk_to_says_run_shoal_up(tmp_path: Path) -> None:
    done = run_shoal("--state-dir", str(tmp_path), "job", "list")
    assert done.returncode == 1
    assert done.stderr.startswith("error: no Shoal to talk to")
    assert "`shoal up`" in done.stderr and done.stderr.count("\n") == 1


def test_server_errors_are_one_line_with_the_reason(gateway: StandinGateway) -> None:
    result = shoal(gateway, "job", "show", "nope")
    assert result.exit_code == 1
    assert result.stderr == "error: job 'jobs/nope' not found [JOB_NOT_FOUND]\n"
    result = shoal(gateway, "pool", "create", "bad.id", "--nodes", "1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: pool_id: 'bad.id' is not a valid id")
    assert result.stderr.rstrip().endswith("[INVALID_ARGUMENT]")


def test_a_wrong_key_is_reported(gateway: StandinGateway) -> None:
    result = CliRunner().invoke(
        cli, ["--endpoint", gateway.endpoint, "--key", "bad", "pool", "list"]
    )
    assert result.exit_code == 1
    assert result.stderr == "error: the account key is not valid [INVALID_ACCOUNT_KEY]\n"


def test_add_many_names_the_malformed_line_and_sends_nothing(
    gateway: StandinGateway, tmp_path: Path
) -> None:
    with_job(gateway)
    lines = tmp_path / "tasks.jsonl"
    lines.write_text(
        '{"id": "a", "command_line": "echo a"}\n'
        "\n"
        '{"id": "b", "command_line": }\n'
        '{"id": "c", "command_line": "echo c"}\n'
    )
    result = shoal(gateway, "task", "add-many", "j", str(lines))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {lines} line 3: not valid JSON")
    assert result.stderr.count("\n") == 1
    assert gateway.world.batch_sizes == []


def test_add_many_names_a_line_with_a_bad_field(gateway: StandinGateway) -> None:
    with_job(gateway)
    text = '{"id": "a", "command_line": "echo a"}\n{"id": "b", "cmd": "echo b"}\n'
    result = shoal(gateway, "task", "add-many", "j", "-", input=text)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: <stdin> line 2: unknown key 'cmd'")
    text = '{"id": "a", "command_line": "echo a", "max_task_retry_count": "2"}\n'
    result = shoal(gateway, "task", "add-many", "j", "-", input=text)
    assert result.exit_code == 1
    assert "line 1: 'max_task_retry_count' must be an integer" in result.stderr


def test_add_many_sends_in_chunks(gateway: StandinGateway) -> None:
    with_job(gateway)
    text = "".join(
        json.dumps({"id": f"t{i}", "command_line": f"echo {i}", "environment": {"I": str(i)}})
        + "\n"
        for i in range(5)
    )
    result = shoal(gateway, "task", "add-many", "j", "-", "--chunk", "2", input=text)
    assert result.exit_code == 0, result.output
    assert "added 5 tasks to job j" in result.stderr
    assert gateway.world.batch_sizes == [2, 2, 1]
    assert gateway.world.tasks["j"]["t3"].environment["I"] == "3"


def test_task_add_keeps_arguments_as_given(gateway: StandinGateway) -> None:
    with_job(gateway)
    result = shoal(
        gateway, "task", "add", "j", "t1", "--env", "A=1", "--", "echo", "hello world", "-n"
    )
    assert result.exit_code == 0, result.output
    task = gateway.world.tasks["j"]["t1"]
    assert task.command_line == "echo 'hello world' -n"
    assert dict(task.environment) == {"A": "1"}


def test_lists_and_shows_as_json(gateway: StandinGateway) -> None:
    with_job(gateway, tasks=2)
    result = shoal(gateway, "pool", "list", "-o", "json")
    assert result.exit_code == 0
    pools = json.loads(result.stdout)
    assert [p["name"] for p in pools] == ["pools/p"]
    assert pools[0]["target_nodes"] == 1 and pools[0]["task_slots_per_node"] == 1
    job = json.loads(shoal(gateway, "job", "show", "j", "-o", "json").stdout)
    assert job["task_counts"]["active"] == "2"  # int64 is a string in protobuf JSON
    tasks = json.loads(shoal(gateway, "task", "list", "j", "-o", "json", "--limit", "1").stdout)
    assert [t["name"] for t in tasks] == ["jobs/j/tasks/t0"]


def test_tables_show_ids_and_states(gateway: StandinGateway) -> None:
    with_job(gateway, tasks=1)
    result = shoal(gateway, "task", "list", "j")
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:3] == ["ID", "STATE", "RESULT"]
    assert row.split()[:2] == ["t0", "ACTIVE"]
    shown = shoal(gateway, "job", "show", "j").stdout
    assert "1 total: 1 active, 0 running, 0 completed" in shown


def test_wait_exits_0_when_all_succeeded(gateway: StandinGateway) -> None:
    with_job(gateway, tasks=2)
    gateway.complete("j", "t0", ok=True)
    gateway.complete("j", "t1", ok=True)
    result = shoal(gateway, "task", "wait", "j", "--timeout", "10")
    assert result.exit_code == 0, result.output
    assert "all 2 tasks of job j succeeded" in result.stderr


def test_wait_exits_1_naming_failed_tasks(gateway: StandinGateway) -> None:
    with_job(gateway, tasks=3)
    gateway.complete("j", "t0", ok=True)
    gateway.complete("j", "t1", ok=False)
    gateway.complete("j", "t2", ok=False)
    result = shoal(gateway, "task", "wait", "j", "--timeout", "10")
    assert result.exit_code == 1
    assert "error: 2 of 3 tasks failed: t1, t2\n" in result.stderr


def test_wait_exits_124_on_timeout(gateway: StandinGateway) -> None:
    with_job(gateway, tasks=1)
    result = shoal(gateway, "task", "wait", "j", "--timeout", "0.2", "--poll", "0.05")
    assert result.exit_code == 124
    assert "error: timed out: job 'j' still has 1 active and 0 running tasks" in result.stderr


def test_logs_prints_the_file_as_is(gateway: StandinGateway) -> None:
    gateway.world.files[("jobs/j/tasks/t", "stdout.txt")] = b"line 1\nline 2\n"
    gateway.world.files[("jobs/j/tasks/t", "stderr.txt")] = b"oops\n"
    assert shoal(gateway, "task", "logs", "j", "t").stdout_bytes == b"line 1\nline 2\n"
    assert shoal(gateway, "task", "logs", "j", "t", "--stderr").stdout_bytes == b"oops\n"


def test_delete_confirms(gateway: StandinGateway) -> None:
    assert shoal(gateway, "pool", "create", "p", "--nodes", "0").exit_code == 0
    result = shoal(gateway, "pool", "delete", "p")
    assert result.exit_code == 0 and "deleted pool p" in result.stderr
    assert shoal(gateway, "pool", "show", "p").exit_code == 1
