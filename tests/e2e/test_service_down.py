"""A service that is down reaches the client as UNAVAILABLE with a reason and the service's
name, through the real gateway, from the SDK and the CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from shoal import ShoalError, StatusCode
from shoal.cli.main import cli
from shoal.suite import LocalSuite


def test_a_down_service_is_named_with_its_reason(suite: LocalSuite) -> None:
    client = suite.client(timeout=10)
    client.create_pool("p", target_nodes=0)
    calls = {
        "pool-manager": ("POOL_MANAGER_UNAVAILABLE", lambda: client.get_pool("p")),
        "job-scheduler": ("JOB_SCHEDULER_UNAVAILABLE", lambda: list(client.list_jobs())),
        "storage-stager": ("STORAGE_UNAVAILABLE", lambda: list(client.list_containers())),
    }
    for service, (reason, call) in calls.items():
        suite.kill(service)
        with pytest.raises(ShoalError) as caught:
            call()
        assert (caught.value.code, caught.value.reason) == (StatusCode.UNAVAILABLE, reason)
        assert f"the {service} is unavailable" in str(caught.value)
    cli_run = CliRunner().invoke(
        cli, ["--endpoint", suite.endpoint, "--key", suite.client_config.key, "job", "list"],
        env={"SHOAL_DEBUG": ""})
    assert cli_run.exit_code == 1
    [line] = cli_run.output.strip().splitlines()
    assert "job-scheduler is unavailable" in line and "[JOB_SCHEDULER_UNAVAILABLE]" in line
