"""Lists and deletes the same everywhere: pages, filters, the reason a task waits, `ls`/`rm`,
JSON with numbers and ids, tables at 80 columns, and deletes that ask first. Against the real
suite (one per module), and in a real pseudo-terminal where a terminal matters."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shoal.cli.common import Flex, table_lines
from shoal.cli.main import cli
from shoal.suite import LocalSuite, free_port
from tests.cli.helpers import run_in_terminal
from tests.cli.test_cli import lines_of, ok, shoal, with_job
from tests.support import wait_for


def ids_of(stdout: str) -> list[str]:
    return [row.split()[0] for row in stdout.splitlines()[1:]]


def terminal_env(suite: LocalSuite) -> dict[str, str]:
    return {"SHOAL_ENDPOINT": suite.endpoint, "SHOAL_ACCOUNT_KEY": suite.client_config.key}


# Pages


def test_a_list_shows_a_page_and_says_how_to_get_the_next(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid)
    text = lines_of(*({"id": f"t{i:03}", "command_line": "true"} for i in range(103)))
    ok(shoal(shared_suite, "task", "add-many", uid, "-", input=text))

    first = ok(shoal(shared_suite, "task", "list", uid))
    assert ids_of(first.stdout) == [f"t{i:03}" for i in range(100)]  # the default page
    token = re.fullmatch(r"more: --page-token (\S+) \(or --all\)\n", first.stderr)
    assert token, first.stderr
    rest = ok(shoal(shared_suite, "task", "list", uid, "--page-token", token.group(1)))
    assert ids_of(rest.stdout) == ["t100", "t101", "t102"] and rest.stderr == ""

    small = ok(shoal(shared_suite, "task", "ls", uid, "--limit", "2", "-o", "json"))
    assert [t["id"] for t in json.loads(small.stdout)] == ["t000", "t001"]
    token = small.stderr.split()[2]
    after = ok(shoal(shared_suite, "task", "ls", uid, "--limit", "2", "--page-token", token))
    assert ids_of(after.stdout) == ["t002", "t003"]

    every = ok(shoal(shared_suite, "task", "list", uid, "--all", "-o", "json"))
    assert len(json.loads(every.stdout)) == 103 and every.stderr == ""


def test_every_list_pages(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid)
    ok(shoal(shared_suite, "pool", "create", f"{uid}-2", "--nodes", "0"))
    ok(shoal(shared_suite, "storage", "container", "create", uid.lower().replace("_", "-")[:40]))
    ok(shoal(shared_suite, "app", "create", uid))
    for args in (["pool", "list"], ["job", "list"], ["schedule", "list"], ["app", "list"],
                 ["storage", "container", "list"], ["storage", "list"], ["node", "list", uid]):
        result = ok(shoal(shared_suite, *args, "--limit", "1", "-o", "json"))
        assert len(json.loads(result.stdout)) <= 1, args
    pools = ok(shoal(shared_suite, "pool", "list", "--limit", "1"))
    assert len(pools.stdout.splitlines()) == 2 and pools.stderr.startswith("more: --page-token ")
    result = shoal(shared_suite, "pool", "list", "--page-token", "not-a-token")
    assert result.exit_code == 1
    assert result.stderr == ("error: page_token: is not a token this server issued "
                             "[INVALID_ARGUMENT]\n")


# Filters


def test_tasks_filter_by_state_as_people_mean_it_node_and_exit_code(
    shared_suite: LocalSuite, uid: str
) -> None:
    with_job(shared_suite, uid, "true", "/bin/sh -c 'exit 3'", "false", nodes=1)
    # Exits 1: two tasks failed.
    assert shoal(shared_suite, "task", "wait", uid, "--timeout", "60").exit_code == 1
    node = json.loads(ok(shoal(shared_suite, "node", "list", uid, "-o", "json")).stdout)[0]["id"]

    def listed(*args: str) -> list[str]:
        return ids_of(ok(shoal(shared_suite, "task", "list", uid, *args)).stdout)

    assert listed("--state", "failed") == ["t1", "t2"]
    assert listed("--state", "succeeded") == ["t0"]
    assert listed("--state", "FAILED", "--state", "succeeded") == ["t0", "t1", "t2"]
    assert listed("--state", "completed") == ["t0", "t1", "t2"]
    assert listed("--exit-code", "3") == ["t1"]
    assert listed("--exit-code", "!=0") == ["t1", "t2"]
    assert listed("--state", "failed", "--exit-code", "<3") == ["t2"]
    assert listed("--node", node) == ["t0", "t1", "t2"]
    assert listed("--node", f"pools/{uid}/nodes/{node}", "--exit-code", "0") == ["t0"]
    nothing = shoal(shared_suite, "task", "list", uid, "--node", "node-elsewhere")
    assert nothing.exit_code == 0 and nothing.stdout == ""
    assert nothing.stderr == f"no tasks in job {uid}\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--exit-code", "zero"], "--exit-code"),
        (["--exit-code", "=>3"], "--exit-code"),
        (["--state", "sleeping"], "--state"),
    ],
)
def test_bad_task_filters_are_usage_errors(args: list[str], says: str) -> None:
    result = CliRunner().invoke(
        cli, ["--endpoint", f"127.0.0.1:{free_port()}", "--key", "k", "task", "list", "j", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output


def test_a_bad_node_is_refused_by_the_server_naming_the_filter(
    shared_suite: LocalSuite, uid: str
) -> None:
    with_job(shared_suite, uid)
    result = shoal(shared_suite, "task", "list", uid, "--node", "a/b")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: filter: node: 'a/b' is neither a node id nor a name")
    assert result.stderr.endswith("[INVALID_ARGUMENT]\n")


def test_waiting_tasks_say_why(shared_suite: LocalSuite, uid: str) -> None:
    ok(shoal(shared_suite, "pool", "create", uid, "--nodes", "1"))
    ok(shoal(shared_suite, "job", "create", uid, "--pool", uid, "--max-parallel", "1",
             "--uses-dependencies"))
    ok(shoal(shared_suite, "task", "add", uid, "a", "--", "sleep", "30"))
    ok(shoal(shared_suite, "task", "add", uid, "b", "--", "true"))
    ok(shoal(shared_suite, "task", "add", uid, "c", "--depends-on", "a", "--", "true"))
    wait_for(lambda: "RUNNING" in ok(shoal(shared_suite, "task", "list", uid)).stdout,
             "a to run", 60)
    rows = {r.split()[0]: r for r in ok(shoal(shared_suite, "task", "list", uid)).stdout.splitlines()[1:]}
    assert rows["a"].split()[1] == "RUNNING"
    assert "the job's max_parallel_tasks are running (1)" in rows["b"]
    assert "waiting for 1 dependency" in rows["c"]
    ok(shoal(shared_suite, "task", "terminate", uid, "a"))


# Verbs and JSON


def test_the_same_verbs_everywhere() -> None:
    runner = CliRunner()
    for group in (["pool"], ["node"], ["job"], ["task"], ["schedule"], ["app"], ["storage"],
                  ["storage", "container"]):
        shown = runner.invoke(cli, [*group, "--help"]).output
        assert re.search(r"^\s+list \(ls\)\s", shown, re.M), (group, shown)
        if group != ["node"]:  # nodes leave a pool with `node remove`
            assert re.search(r"^\s+delete \(rm\)\s", shown, re.M), (group, shown)
        # The alias runs the command, under its canonical name.
        help_ls = runner.invoke(cli, [*group, "ls", "--help"]).output
        assert f"Usage: cli {' '.join(group)} list" in help_ls


def test_json_has_ids_and_numbers(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid, "true")
    pools = json.loads(ok(shoal(shared_suite, "pool", "list", "--all", "-o", "json")).stdout)
    mine = next(p for p in pools if p["id"] == uid)
    assert mine["name"] == f"pools/{uid}" and mine["task_slots_per_node"] == 4
    jobs = json.loads(ok(shoal(shared_suite, "job", "ls", "--all", "-o", "json")).stdout)
    job = next(j for j in jobs if j["id"] == uid)
    assert job["task_counts"] == {"active": 1, "running": 0, "completed": 0, "succeeded": 0,
                                  "failed": 0}
    (task,) = json.loads(ok(shoal(shared_suite, "task", "list", uid, "-o", "json")).stdout)
    assert (task["id"], task["state"]) == ("t0", "ACTIVE")
    assert isinstance(task["execution_info"]["retry_count"], int)


# Tables


def test_a_table_cuts_the_command_not_ids_or_numbers() -> None:
    columns = ["ID", "STATE", "EXIT", Flex("REASON"), Flex("COMMAND")]
    rows = [["task-00001", "FAILED", "137", "-", "python3 " + "x" * 100],
            ["t2", "ACTIVE", "-", "pool 'render-farm' has no connected nodes", "echo hi"]]
    lines = table_lines(columns, rows, 80)
    assert all(len(line) <= 80 for line in lines)
    assert lines[1].startswith("task-00001  FAILED  137")
    assert "pool 'render-farm' has no connected nodes" in lines[2]  # the reason fits whole
    assert lines[1].endswith("…") and "python3 x" in lines[1]
    narrow = table_lines(columns, rows, 50)
    assert narrow[1].startswith("task-00001  FAILED  137") and len(narrow[2]) <= 50
    assert "pool 'render-farm' has no connected nodes" not in narrow[2]  # cut once COMMAND is
    assert table_lines(columns, rows, None)[1].endswith("x" * 100)  # piped: nothing is cut


def test_tables_in_an_80_column_terminal(shared_suite: LocalSuite, uid: str) -> None:
    long_id = "a-task-with-a-long-id-of-30-ch"
    with_job(shared_suite, uid)
    ok(shoal(shared_suite, "task", "add", uid, long_id, "--",
             "python3", "-c", "print('a command line far longer than the terminal is wide')"))
    shown = run_in_terminal("task", "list", uid, env=terminal_env(shared_suite), columns=80)
    assert shown.returncode == 0, shown.text
    header, row = shown.text.splitlines()
    assert header.split()[:3] == ["ID", "STATE", "EXIT"]
    assert len(row) <= 80 and row.startswith(long_id + "  ACTIVE")
    assert row.endswith("…") and "  python3" in row


# Deletes ask first


def test_delete_refuses_without_a_terminal_unless_yes(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid, "true")
    for args in (["task", "delete", uid, "t0"], ["job", "rm", uid], ["pool", "delete", uid]):
        result = shoal(shared_suite, *args)
        assert result.exit_code == 2
        assert result.stderr.startswith("error: not deleting ")
        assert result.stderr.endswith("stdin is not a terminal; add --yes\n")
    assert ok(shoal(shared_suite, "task", "show", uid, "t0"))  # all still there
    assert "deleted task t0" in ok(shoal(shared_suite, "task", "rm", uid, "t0", "--yes")).stderr


def test_delete_asks_in_a_terminal(shared_suite: LocalSuite, uid: str) -> None:
    with_job(shared_suite, uid)
    env = terminal_env(shared_suite)
    kept = run_in_terminal("job", "delete", uid, env=env, answers={"[y/N]": "n"})
    assert kept.returncode == 1
    assert f"Delete job {uid} and all its tasks? [y/N]: n" in kept.text
    assert "error: nothing deleted" in kept.text
    assert ok(shoal(shared_suite, "job", "show", uid))
    gone = run_in_terminal("job", "delete", uid, env=env, answers={"[y/N]": "y"})
    assert gone.returncode == 0 and f"deleted job {uid}" in gone.text
    assert shoal(shared_suite, "job", "show", uid).exit_code == 1


# Shell completion, as the README documents it


def test_shell_completion_as_documented(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_") and not
            k.startswith("_SHOAL")}
    shoal_bin = str(Path(sys.executable).parent / "shoal")
    script = subprocess.run([shoal_bin, "completion", "bash"], capture_output=True, text=True,
                            env=base, timeout=60)
    assert script.returncode == 0 and "complete -o nosort -F _shoal_completion shoal" in script.stdout
    # What bash asks when the user presses Tab after `shoal task l` and `--state f`.
    for words, cword, expected in [("shoal task l", "2", ["list", "logs"]),
                                   ("shoal task list j --state f", "5", ["failed"])]:
        done = subprocess.run([shoal_bin], capture_output=True, text=True, timeout=60, env={
            **base, "_SHOAL_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword})
        assert [line.split(",", 1)[1] for line in done.stdout.split()] == expected
