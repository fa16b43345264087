"""`shoal` for issue 5's task and job behaviours, against the real suite: dependencies and exit
conditions, task terminate / reactivate / rm / unblock / why, job disable / enable and the new
job, task and pool options. Tests share one suite per module; each works in a pool and a job
named after itself (`uid`). The usage errors at the top need no server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shoal.cli.main import cli
from shoal.suite import LocalSuite, free_port
from tests.support import wait_for

DEADLINE = 60.0


def shoal(suite: LocalSuite, *args: str, input: str | None = None) -> Result:
    """The command in this process, talking to the suite with its `default` account's key."""
    return CliRunner().invoke(
        cli,
        ["--endpoint", suite.endpoint, "--key", suite.client_config.key, *args],
        input=input,
        env={"SHOAL_DEBUG": ""},
    )


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def as_json(suite: LocalSuite, *args: str) -> Any:
    return json.loads(ok(shoal(suite, *args, "-o", "json")).stdout)


def task(suite: LocalSuite, job: str, task_id: str) -> dict[str, Any]:
    return as_json(suite, "task", "show", job, task_id)  # type: ignore[no-any-return]


def wait_task(suite: LocalSuite, job: str, task_id: str, state: str) -> dict[str, Any]:
    return wait_for(
        lambda: (t := task(suite, job, task_id))["state"] == state and t,
        f"task {task_id} to be {state}", DEADLINE,
    )


def setup(suite: LocalSuite, uid: str, *job_flags: str, nodes: int = 1, slots: int = 2) -> None:
    ok(shoal(suite, "pool", "create", uid, "--nodes", str(nodes), "--slots", str(slots)))
    ok(shoal(suite, "job", "create", uid, "--pool", uid, *job_flags))


def add(suite: LocalSuite, job: str, task_id: str, *flags_and_command: str) -> None:
    ok(shoal(suite, "task", "add", job, task_id, *flags_and_command))


# Without a server: the command's own checks, exit 2 before any call


@pytest.mark.parametrize(
    "args",
    [
        ["task", "add", "j", "t", "--exit-code", "3", "--", "true"],
        ["task", "add", "j", "t", "--exit-code", "3=explode", "--", "true"],
        ["task", "add", "j", "t", "--exit-code", "soon=block", "--", "true"],
        ["task", "add", "j", "t", "--depends-on-range", "5", "--", "true"],
        ["task", "add", "j", "t", "--depends-on", "a,,b", "--", "true"],
        ["task", "add", "j", "t", "--retention", "forever", "--", "true"],
        ["task", "add", "j", "t", "--max-wall-clock", "0", "--", "true"],
        ["task", "add", "j", "t", "--required-slots", "0", "--", "true"],
        ["task", "add", "j", "t", "--priority", "1001", "--", "true"],
        ["task", "why", "j"],
        ["task", "rm", "j"],
        ["job", "create", "j", "--pool", "p", "--max-wall-clock", "soon"],
        ["job", "create", "j", "--pool", "p", "--on-task-failure", "panic"],
        ["job", "create", "j", "--pool", "p", "--max-parallel", "-1"],
        ["job", "disable", "j", "--option", "later"],
        ["pool", "create", "p", "--nodes", "1", "--fill-type", "diagonal"],
    ],
)
def test_usage_errors_exit_2_without_calling_the_server(args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--endpoint", f"127.0.0.1:{free_port()}", "--key", "k", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "cannot reach" not in result.output


def test_a_bad_exit_code_form_is_named() -> None:
    result = CliRunner().invoke(cli, [
        "--endpoint", f"127.0.0.1:{free_port()}", "--key", "k",
        "task", "add", "j", "t", "--exit-code", "3=block", "--exit-code", "3=satisfy", "--", "true",
    ])
    assert result.exit_code == 2
    assert result.stderr == "error: --exit-code: '3=satisfy': exit code 3 is given twice\n"


# Options as the server keeps them


def test_pool_fill_type_round_trips(shared_suite: LocalSuite, uid: str) -> None:
    pool = as_json(shared_suite, "pool", "create", uid, "--nodes", "0", "--fill-type", "pack")
    assert pool["node_fill_type"] == "PACK"
    assert as_json(shared_suite, "pool", "show", uid)["node_fill_type"] == "PACK"


def test_new_task_and_job_options_round_trip(shared_suite: LocalSuite, uid: str) -> None:
    s = shared_suite
    ok(shoal(s, "pool", "create", uid, "--nodes", "0", "--slots", "4"))
    job = as_json(
        s, "job", "create", uid, "--pool", uid, "--uses-dependencies", "--max-parallel", "3",
        "--max-wall-clock", "2h", "--max-task-retries", "2",
        "--on-task-failure", "perform-exit-options-job-action",
    )
    assert job["uses_task_dependencies"] is True and job["max_parallel_tasks"] == 3
    assert job["constraints"] == {"max_wall_clock_time": "7200s", "max_task_retry_count": 2}
    assert job["on_task_failure"] == "PERFORM_EXIT_OPTIONS_JOB_ACTION"
    add(s, uid, "1", "--", "true")
    add(s, uid, "2", "--", "true")
    add(s, uid, "a", "--", "true")
    add(s, uid, "t", "--required-slots", "2", "--priority", "-7", "--retention", "1h30m",
        "--max-retries", "0", "--depends-on", "a", "--depends-on-range", "1-2",
        "--exit-code", "3=terminate,satisfy", "--exit-code", "10-20=disable",
        "--exit-code", "default=none,block", "--", "true")
    t = task(s, uid, "t")
    assert (t["required_slots"], t["priority"]) == (2, -7)
    assert t["constraints"]["retention_time"] == "5400s"
    assert t["constraints"]["max_task_retry_count"] == 0
    assert t["depends_on"] == {"task_ids": ["a"], "task_id_ranges": [{"start": 1, "end": 2}]}
    exits = t["exit_conditions"]
    assert exits["exit_codes"] == [
        {"code": 3, "exit_options": {"job_action": "TERMINATE", "dependency_action": "SATISFY"}}]
    assert exits["exit_code_ranges"][0]["exit_options"]["job_action"] == "DISABLE"
    assert exits["default"] == {"job_action": "NONE", "dependency_action": "BLOCK"}
    # The table says the same, in the forms the flags take.
    lines = ok(shoal(s, "task", "show", uid, "t")).stdout.splitlines()

    def row(label: str) -> str:
        return next(line.rstrip() for line in lines if line.startswith(label + " "))

    assert row("retention").split()[1:] == ["1h30m"]
    assert row("exit conditions").endswith("3=terminate,satisfy  10-20=disable  default=none,block")
    assert row("depends on").endswith("a, 1-2")
    assert row("required slots").split()[2:] == ["2"]
    assert row("priority").split()[1:] == ["-7"]
    shown = ok(shoal(s, "job", "show", uid)).stdout
    assert "perform" in shown.lower() and "2h" in shown


def test_add_many_takes_the_new_keys(shared_suite: LocalSuite, uid: str) -> None:
    s = shared_suite
    setup(s, uid, "--uses-dependencies", "--on-task-failure", "perform-exit-options-job-action",
          nodes=0)
    lines = "".join(json.dumps(t) + "\n" for t in [
        {"id": "1", "command_line": "true"},
        {"id": "2", "command_line": "true", "priority": 5, "retention_time": "1d"},
        {"id": "r", "command_line": "true", "depends_on": [[1, 2]], "required_slots": 2,
         "exit_conditions": ["default=terminate"]},
    ])
    ok(shoal(s, "task", "add-many", uid, "-", input=lines))
    assert task(s, uid, "2")["priority"] == 5
    assert task(s, uid, "2")["constraints"]["retention_time"] == "86400s"
    r = task(s, uid, "r")
    assert r["depends_on"]["task_id_ranges"] == [{"start": 1, "end": 2}]
    assert r["required_slots"] == 2
    assert r["exit_conditions"]["default"]["job_action"] == "TERMINATE"


# Dependencies and exit conditions on a real node


def test_a_failed_dependency_blocks_says_why_and_can_be_unblocked(
    shared_suite: LocalSuite, uid: str
) -> None:
    s = shared_suite
    setup(s, uid, "--uses-dependencies")
    add(s, uid, "a", "--", "/bin/sh", "-c", "exit 2")
    add(s, uid, "b", "--depends-on", "a", "--", "true")
    wait_task(s, uid, "a", "COMPLETED")
    b = wait_for(lambda: (t := task(s, uid, "b"))["state_reason"] and t, "b's state reason",
                 DEADLINE)
    assert b["state"] == "ACTIVE" and "a" in b["state_reason"]
    shown = ok(shoal(s, "task", "show", uid, "b")).stdout
    assert any(line.split(None, 2)[:2] == ["state", "reason"] for line in shown.splitlines())
    why = ok(shoal(s, "task", "why", uid, "b")).stdout.splitlines()
    assert why and why[0].strip() and not why[0].startswith(" ")
    assert all(line.startswith("  ") for line in why[1:])
    explained = as_json(s, "task", "why", uid, "b")
    assert "DEPENDENCY_FAILED" in explained["reasons"] and explained["state"] == "ACTIVE"
    assert explained["summary"] == why[0]

    unblocked = as_json(s, "task", "unblock", uid, "b")
    assert unblocked["name"] == f"jobs/{uid}/tasks/b"
    done = wait_task(s, uid, "b", "COMPLETED")
    assert done["execution_info"]["result"] == "SUCCESS"


def test_satisfy_on_an_exit_code_lets_a_range_of_dependents_run(
    shared_suite: LocalSuite, uid: str
) -> None:
    s = shared_suite
    setup(s, uid, "--uses-dependencies")
    add(s, uid, "1", "--", "true")
    add(s, uid, "2", "--exit-code", "3=satisfy", "--", "/bin/sh", "-c", "exit 3")
    add(s, uid, "reduce", "--depends-on-range", "1-2", "--", "true")
    done = wait_task(s, uid, "reduce", "COMPLETED")
    assert done["execution_info"]["result"] == "SUCCESS"
    assert task(s, uid, "2")["execution_info"]["result"] == "FAILURE"


def test_a_terminate_exit_option_ends_the_job(shared_suite: LocalSuite, uid: str) -> None:
    s = shared_suite
    setup(s, uid, "--on-task-failure", "perform-exit-options-job-action")
    add(s, uid, "bad", "--exit-code", "3=terminate", "--", "/bin/sh", "-c", "exit 3")
    job = wait_for(lambda: (j := as_json(s, "job", "show", uid))["state"] == "COMPLETED" and j,
                   "the job to complete", DEADLINE)
    assert job["terminate_reason"]


# Task operations


def test_terminate_reactivate_and_rm(shared_suite: LocalSuite, uid: str) -> None:
    s = shared_suite
    setup(s, uid)
    add(s, uid, "s", "--", "sleep", "600")
    wait_task(s, uid, "s", "RUNNING")
    ok(shoal(s, "task", "terminate", uid, "s"))
    t = wait_task(s, uid, "s", "COMPLETED")
    assert t["execution_info"]["result"] == "FAILURE"
    assert t["execution_info"]["failure_info"]["code"] == "TASK_TERMINATED"

    again = as_json(s, "task", "reactivate", uid, "s")
    assert again["state"] in ("ACTIVE", "PREPARING", "RUNNING")
    wait_task(s, uid, "s", "RUNNING")

    result = ok(shoal(s, "task", "rm", uid, "s", "--yes"))
    assert f"deleted task s of job {uid}" in result.stderr
    gone = shoal(s, "task", "show", uid, "s")
    assert gone.exit_code == 1 and "[TASK_NOT_FOUND]" in gone.stderr


def test_terminating_a_waiting_task_completes_it_without_running(
    shared_suite: LocalSuite, uid: str
) -> None:
    s = shared_suite
    setup(s, uid, nodes=0)
    add(s, uid, "w", "--", "true")
    t = as_json(s, "task", "terminate", uid, "w")
    t = t if t["state"] == "COMPLETED" else wait_task(s, uid, "w", "COMPLETED")
    assert t["execution_info"]["failure_info"]["code"] == "TASK_TERMINATED"
    assert "start_time" not in t["execution_info"] or not t["execution_info"]["start_time"]


# Jobs


def test_disable_and_enable_a_job_and_why_says_so(shared_suite: LocalSuite, uid: str) -> None:
    s = shared_suite
    setup(s, uid, nodes=0)
    add(s, uid, "t", "--", "true")
    nodes = as_json(s, "task", "why", uid, "t")
    assert "NO_NODES" in nodes["reasons"]

    job = as_json(s, "job", "disable", uid, "--option", "wait")
    assert job["state"] in ("DISABLING", "DISABLED")
    wait_for(lambda: as_json(s, "job", "show", uid)["state"] == "DISABLED", "DISABLED", DEADLINE)
    assert "JOB_DISABLED" in as_json(s, "task", "why", uid, "t")["reasons"]
    assert "DISABLED" in ok(shoal(s, "job", "show", uid)).stdout

    assert as_json(s, "job", "enable", uid)["state"] == "ACTIVE"
    assert "JOB_DISABLED" not in as_json(s, "task", "why", uid, "t")["reasons"]


def test_disabling_with_requeue_puts_running_tasks_back(shared_suite: LocalSuite, uid: str) -> None:
    s = shared_suite
    setup(s, uid)
    add(s, uid, "s", "--", "sleep", "600")
    wait_task(s, uid, "s", "RUNNING")
    ok(shoal(s, "job", "disable", uid))  # requeue is the default
    t = wait_task(s, uid, "s", "ACTIVE")
    # Back in the queue, counted neither as a retry nor as a requeue for a lost node.
    assert t["execution_info"].get("requeue_count", 0) == 0
    assert t["execution_info"].get("retry_count", 0) == 0
    ok(shoal(s, "job", "enable", uid))
    wait_task(s, uid, "s", "RUNNING")
    ok(shoal(s, "job", "terminate", uid))


# Files on the node


def test_retention_and_rm_clean_the_nodes_task_directories(
    shared_suite: LocalSuite, uid: str
) -> None:
    s = shared_suite
    setup(s, uid)
    add(s, uid, "short", "--retention", "0.5s", "--", "true")
    add(s, uid, "kept", "--", "true")
    add(s, uid, "gone", "--", "true")
    for t in ("short", "kept", "gone"):
        assert wait_task(s, uid, t, "COMPLETED")["execution_info"]["result"] == "SUCCESS"
    # The local provider's node roots: {state_dir}/nodes/{account}/{pool}/{node}/.
    [tasks] = list(s.state_dir.glob(f"nodes/*/{uid}/*/tasks/{uid}"))
    wait_for(lambda: not (tasks / "short").exists(), "the short-retention task's directory",
             DEADLINE)
    ok(shoal(s, "task", "rm", uid, "gone", "--yes"))
    wait_for(lambda: not (tasks / "gone").exists(), "the deleted task's directory", DEADLINE)
    [kept] = (tasks / "kept").iterdir()
    assert (kept / "stdout.txt").exists()
