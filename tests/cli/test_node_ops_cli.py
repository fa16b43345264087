"""`shoal node disable | enable | reboot | remove` against the real suite: what they print
(tables and -o json), that their options reach the service, and one-line errors."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shoal.cli.main import cli
from shoal.errors import ShoalError, StatusCode
from shoal.suite import LocalSuite
from shoal.v1 import pool_pb2, task_pb2
from tests.support import wait_for

N = pool_pb2.Node


def shoal(suite: LocalSuite, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--endpoint", suite.endpoint, "--key", suite.client_config.key, *args],
        env={"SHOAL_DEBUG": ""},
    )


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def idle_nodes(suite: LocalSuite, pool: str, count: int) -> list[str]:
    ok(shoal(suite, "pool", "create", pool, "--nodes", str(count)))
    c = suite.client()

    def idle() -> list[str] | None:
        ns = list(c.list_nodes(pool))
        ok = len(ns) == count and all(n.state == N.IDLE for n in ns)
        return [short(n.name) for n in ns] if ok else None

    return wait_for(idle, f"{count} idle nodes")


def test_disable_enable_and_show(shared_suite: LocalSuite, uid: str, tmp_path: Path) -> None:
    a, b = idle_nodes(shared_suite, uid, 2)
    c = shared_suite.client()
    c.create_job(uid, pool_id=uid)
    started = tmp_path / "started"
    c.add_task(uid, "t", f"/bin/sh -c {shlex.quote(f'touch {started}; exec sleep 300')}")
    def running() -> task_pb2.Task | None:
        t = c.get_task(uid, "t")
        return t if t.state == task_pb2.Task.RUNNING and started.exists() else None

    busy = short(wait_for(running, "the task to run").execution_info.node)

    node = json.loads(ok(shoal(shared_suite, "node", "disable", uid, busy, "--option",
                               "terminate", "-o", "json")).stdout)
    assert (node["name"], node["scheduling_state"]) == (f"pools/{uid}/nodes/{busy}", "DISABLED")
    # The option reached the scheduler: the running task was terminated, not requeued.
    done = c.wait_task(uid, "t", timeout=60)
    assert done.execution_info.failure_info.code == "NODE_SCHEDULING_DISABLED"

    table = ok(shoal(shared_suite, "node", "list", uid)).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "STATE", "SCHEDULING"]
    rows = {line.split()[0]: line.split()[2] for line in table[1:]}
    assert rows == {busy: "DISABLED", (b if busy == a else a): "ENABLED"}
    shown = ok(shoal(shared_suite, "node", "show", uid, busy)).stdout
    assert any(line.split() == ["scheduling", "DISABLED"] for line in shown.splitlines())

    node = json.loads(ok(shoal(shared_suite, "node", "enable", uid, busy, "-o", "json")).stdout)
    assert node["scheduling_state"] == "ENABLED"
    assert c.get_node(uid, busy).scheduling_state == N.ENABLED


def test_reboot_and_remove(shared_suite: LocalSuite, uid: str) -> None:
    a, b, d = idle_nodes(shared_suite, uid, 3)
    shown = ok(shoal(shared_suite, "node", "reboot", uid, a)).stdout
    assert any(line.split() == ["state", "STARTING"] for line in shown.splitlines())
    c = shared_suite.client()
    wait_for(lambda: c.get_node(uid, a).state == N.IDLE, "the rebooted node to be back")

    pool = json.loads(ok(shoal(shared_suite, "node", "remove", uid, a, d, "--option",
                               "taskcompletion", "-o", "json")).stdout)
    assert pool["target_nodes"] == 1
    wait_for(lambda: [short(n.name) for n in c.list_nodes(uid)] == [b], "two nodes removed")


def test_errors_are_one_line(shared_suite: LocalSuite, uid: str) -> None:
    (a,) = idle_nodes(shared_suite, uid, 1)
    for args in (["disable", uid, "node-nope"], ["enable", uid, "node-nope"],
                 ["reboot", uid, "node-nope"], ["remove", uid, a, "node-nope"]):
        result = shoal(shared_suite, "node", *args)
        assert result.exit_code == 1, args
        assert result.stderr == (
            f"error: node 'pools/{uid}/nodes/node-nope' not found [NODE_NOT_FOUND]\n"), args
    assert shared_suite.client().get_pool(uid).target_nodes == 1  # nothing removed

    result = shoal(shared_suite, "node", "disable", "no-such-pool", a)
    assert result.exit_code == 1
    assert result.stderr == "error: pool 'pools/no-such-pool' not found [POOL_NOT_FOUND]\n"


@pytest.mark.parametrize("args", [
    ["node", "remove", "p1"],
    ["node", "disable", "p1", "n1", "--option", "later"],
    ["node", "remove", "p1", "n1", "--option", "wait"],
    ["node", "reboot", "p1"],
])
def test_usage_errors_exit_2_without_calling_the_server(args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--endpoint", "127.0.0.1:1", "--key", "k", *args])
    assert result.exit_code == 2, result.output
    assert "cannot reach" not in result.output


def test_client_methods_take_option_names_and_a_single_id(
    shared_suite: LocalSuite, uid: str
) -> None:
    a, b = idle_nodes(shared_suite, uid, 2)
    c = shared_suite.client()
    assert c.disable_node_scheduling(uid, a, "task_completion").scheduling_state == N.DISABLED
    assert c.enable_node_scheduling(uid, a).scheduling_state == N.ENABLED
    with pytest.raises(ShoalError) as err:
        c.disable_node_scheduling(uid, a, "sometimes")
    assert err.value.code == StatusCode.INVALID_ARGUMENT
    assert err.value.field == "node_disable_scheduling_option"
    assert c.remove_nodes(uid, b).target_nodes == 1  # one id as a string is that node
    wait_for(lambda: [short(n.name) for n in c.list_nodes(uid)] == [a], "the node removed")
