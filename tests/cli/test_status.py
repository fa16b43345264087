"""`shoal status` against the real suite: the services' health as the gateway sees it, the
endpoint and account in use, and the account's counts."""

from __future__ import annotations

import json

from click.testing import CliRunner

from shoal.cli.main import cli
from shoal.suite import LocalSuite, free_port
from tests.cli.test_cli import ok, shoal
from tests.support import wait_for


def test_status_of_a_running_suite_and_of_one_with_a_service_down(suite: LocalSuite) -> None:
    ok(shoal(suite, "pool", "create", "p", "--nodes", "0"))
    ok(shoal(suite, "job", "create", "j", "--pool", "p"))
    ok(shoal(suite, "task", "add", "j", "t", "--", "true"))
    shown = ok(shoal(suite, "status")).stdout.splitlines()
    rows = {line.split()[0]: line.split(None, 1)[1] for line in shown}
    assert rows["endpoint"] == suite.endpoint and rows["account"] == "default"
    assert [rows[s] for s in ("gateway", "pool-manager", "job-scheduler", "storage-stager")] == [
        "SERVING"] * 4
    assert rows["pools"] == "1 (1 ACTIVE); nodes 0 of 0"
    assert rows["jobs"] == "1 (1 ACTIVE); tasks 1 active, 0 running, 0 succeeded, 0 failed"
    report = json.loads(ok(shoal(suite, "status", "-o", "json")).stdout)
    assert report["ok"] is True and report["jobs"]["tasks"]["active"] == 1
    assert report["pools"]["by_state"] == {"ACTIVE": 1}

    suite.kill("storage-stager")

    def stager_down() -> object:
        result = shoal(suite, "status", "-o", "json")
        return result.exit_code == 1 and json.loads(result.stdout)
    report = wait_for(stager_down, "status to see the stager down", 30)
    assert report["ok"] is False and report["services"]["storage-stager"] == "NOT_SERVING"
    assert report["services"]["job-scheduler"] == "SERVING"
    result = shoal(suite, "status")
    assert result.exit_code == 1 and result.stderr == "error: not every service is serving\n"


def test_status_with_a_wrong_key_or_no_gateway(shared_suite: LocalSuite) -> None:
    result = shoal(shared_suite, "status", key="shoal_wrong")
    assert result.exit_code == 1
    assert "gateway         SERVING" in result.stdout  # health needs no key
    assert result.stderr == "error: the account key is not valid [INVALID_ACCOUNT_KEY]\n"
    port = free_port()
    result = CliRunner().invoke(cli, ["--endpoint", f"127.0.0.1:{port}", "--key", "k", "status"])
    assert result.exit_code == 1
    assert "gateway   UNREACHABLE" in result.stdout
    assert result.stderr.startswith(f"error: cannot reach Shoal at 127.0.0.1:{port}")
