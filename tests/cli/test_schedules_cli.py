"""`shoal schedule ...` against the real suite (or no server at all): its life from create to
rm, its jobs, -o json, and one-line errors. Each test works in a pool and a schedule named
after itself (`uid`)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from shoal.cli.main import cli
from shoal.suite import LocalSuite, free_port
from tests.cli.test_cli import ok, shoal
from tests.support import wait_for


@pytest.mark.parametrize("args", [
    ["schedule", "create", "s", "--pool", "p", "--every", "10m", "--cron", "0 3 * * *"],
    ["schedule", "create", "s", "--pool", "p", "--every", "soon"],
    ["schedule", "create", "s", "--pool", "p", "--every", "0"],
    ["schedule", "create", "s", "--pool", "p", "--not-before", "next tuesday"],
    ["schedule", "create", "s", "--pool", "p", "--task", "no-command"],
    ["schedule", "create", "s", "--every", "10m"],
    ["schedule", "show"],
])
def test_usage_errors_exit_2_without_calling_the_server(args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--endpoint", f"127.0.0.1:{free_port()}", "--key", "k", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "cannot reach" not in result.output


def schedule_json(suite: LocalSuite, schedule_id: str) -> dict[str, object]:
    return json.loads(ok(shoal(suite, "schedule", "show", schedule_id, "-o", "json")).stdout)


def test_a_schedule_from_create_to_rm(shared_suite: LocalSuite, uid: str) -> None:
    s = shared_suite
    ok(shoal(s, "pool", "create", uid, "--nodes", "0"))
    created = ok(shoal(s, "schedule", "create", uid, "--pool", uid, "--every", "1h",
                       "--not-before", "+1h", "--task", "a=echo a", "--task", "b=echo b c",
                       "--terminate-on-complete"))
    assert "every 1h" in created.stdout and "ACTIVE" in created.stdout
    got = schedule_json(s, uid)
    assert got["name"] == f"jobSchedules/{uid}"
    assert got["schedule"]["recurrence_interval"] == "3600s"  # type: ignore[index]
    spec = got["job_specification"]
    assert spec["job"]["pool"] == f"pools/{uid}"  # type: ignore[index]
    assert spec["job"]["on_all_tasks_complete"] == "TERMINATE_JOB"  # type: ignore[index]
    assert [(t["task_id"], t["task"]["command_line"]) for t in spec["tasks"]] == [  # type: ignore[index]
        ("a", "echo a"), ("b", "echo b c")]
    assert got["jobs_created"] == 0  # not before an hour from now

    listed = ok(shoal(s, "schedule", "ls"))
    line = next(x for x in listed.stdout.splitlines() if x.startswith(f"{uid} "))
    assert "ACTIVE" in line and "every 1h" in line
    assert uid in [x["name"].split("/")[1] for x in json.loads(
        ok(shoal(s, "schedule", "ls", "-o", "json")).stdout)]

    assert "DISABLED" in ok(shoal(s, "schedule", "disable", uid)).stdout
    assert schedule_json(s, uid)["state"] == "DISABLED"
    assert "ACTIVE" in ok(shoal(s, "schedule", "enable", uid)).stdout
    ended = json.loads(ok(shoal(s, "schedule", "terminate", uid, "-o", "json")).stdout)
    assert ended["state"] == "COMPLETED" and "next_run_time" not in ended

    again = shoal(s, "schedule", "terminate", uid)
    assert again.exit_code == 1
    assert again.stderr == f"error: job schedule {uid!r} is completed [JOB_SCHEDULE_COMPLETED]\n"
    removed = ok(shoal(s, "schedule", "rm", uid, "--yes"))
    assert f"deleted job schedule {uid}" in removed.stderr
    gone = shoal(s, "schedule", "show", uid)
    assert gone.exit_code == 1
    assert gone.stderr == (
        f"error: job_schedule 'jobSchedules/{uid}' not found [JOB_SCHEDULE_NOT_FOUND]\n")


def test_a_schedule_makes_a_job_that_runs_its_tasks(shared_suite: LocalSuite, uid: str) -> None:
    s = shared_suite
    ok(shoal(s, "pool", "create", uid, "--nodes", "1"))
    # Neither --every nor --cron: one job, now. Without --terminate-on-complete it stays
    # ACTIVE once its task is done.
    ok(shoal(s, "schedule", "create", uid, "--pool", uid,
              "--task", "t=/bin/sh -c 'echo $SHOAL_JOB_ID'"))
    job_id = f"{uid}-1"

    def task_done() -> bool:
        result = shoal(s, "task", "list", job_id, "-o", "json")
        return result.exit_code == 0 and [t["state"] for t in json.loads(result.stdout)] == [
            "COMPLETED"]

    wait_for(task_done, f"the task of {job_id}")
    assert ok(shoal(s, "task", "logs", job_id, "t")).stdout == f"{job_id}\n"
    got = schedule_json(s, uid)
    assert got["recent_job"] == f"jobs/{job_id}" and got["jobs_created"] == 1
    shown = ok(shoal(s, "schedule", "show", uid)).stdout
    assert "once" in shown and job_id in shown
    ok(shoal(s, "schedule", "rm", uid, "--yes"))
    gone = shoal(s, "job", "show", job_id)
    assert gone.stderr == f"error: job 'jobs/{job_id}' not found [JOB_NOT_FOUND]\n"


@pytest.mark.parametrize("args, field", [
    (["--cron", "61 * * * *"], "job_schedule.schedule.cron"),
    (["--every", "30s"], "job_schedule.schedule.recurrence_interval"),
    (["--every", "1h", "--task", "bad.id=true"], "job_schedule.job_specification.tasks[0].task_id"),
])
def test_refusals_are_one_line_naming_the_field(shared_suite: LocalSuite, uid: str,
                                                args: list[str], field: str) -> None:
    result = shoal(shared_suite, "schedule", "create", uid, "--pool", "p", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {field}: ")
    assert result.stderr.endswith("[INVALID_ARGUMENT]\n") and result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_a_cron_schedule_shows_its_next_match(shared_suite: LocalSuite, uid: str) -> None:
    s = shared_suite
    shown = ok(shoal(s, "schedule", "create", uid, "--pool", "p", "--cron", "30 3 * * *",
                     "--not-before", "2031-01-06T03:31:00Z", "--not-after", "2031-02-01T00:00:00Z"))
    assert "cron 30 3 * * * (UTC)" in shown.stdout
    got = schedule_json(s, uid)
    assert got["next_run_time"] == "2031-01-07T03:30:00Z"
    assert got["schedule"]["do_not_run_after"] == "2031-02-01T00:00:00Z"  # type: ignore[index]
    ok(shoal(s, "schedule", "rm", uid, "--yes"))
