"""LocalSuite with the real services (and their real agents), plus stand-ins for the failure
modes a real service cannot be made to show: exiting at start, never healthy, ignoring SIGTERM."""

from __future__ import annotations

import contextlib
import json
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import accounts
from shoal import Client, ShoalError, StatusCode
from shoal.suite import SERVICES, LocalSuite, SuiteError, free_port
from tests.cli.helpers import (
    agent_pids,
    kill_leftovers,
    logged_clean_stop,
    pid_alive,
    read_pid,
    serving,
    standin_commands,
    wait_gone,
)
from tests.support import FAST, processes_mentioning, start_suite, wait_for

ROOT = Path(__file__).resolve().parents[2]


def local_suite(
    state: Path, *, gateway_port: int = 0, commands: dict[str, list[str]] | None = None
) -> LocalSuite:
    """Not started yet; free ports except where given."""
    return LocalSuite(
        state,
        gateway_port=gateway_port,
        pool_manager_port=0,
        scheduler_port=0,
        stager_port=0,
        metrics_port=0,
        dashboard_port=0,
        timing=FAST,
        commands=commands,
    )


def pid_of(suite: LocalSuite, service: str) -> int:
    pid = suite.pid(service)
    assert pid is not None, f"{service} is not started"
    return pid


def addresses(suite: LocalSuite) -> dict[str, str]:
    c = suite.config
    return {
        "gateway": c.gateway_address,
        "pool-manager": c.pool_manager_address,
        "job-scheduler": c.job_scheduler_address,
        "storage-stager": c.storage_stager_address,
    }


@contextlib.contextmanager
def running(state: Path) -> Iterator[LocalSuite]:
    suite = start_suite(state)
    try:
        yield suite
    finally:
        suite.stop()


def with_agent(suite: LocalSuite, pool_id: str = "p") -> int:
    """A pool of one node; the pid of its agent once it runs."""
    suite.client().create_pool(pool_id, target_nodes=1)
    return wait_for(lambda: agent_pids(suite.state_dir), "the pool's agent to start", 30)[0]


def in_a_child_process(state: Path, then: str) -> str:
    """A script starting the real suite on `state`, printing its pids, then running `then`."""
    return textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        from tests.support import start_suite
        suite = start_suite(Path({str(state)!r}))
        print(json.dumps([suite.pid(s) for s in {SERVICES!r}]), flush=True)
        {then}
        """
    )


# The real services


def test_start_serves_every_service_and_stop_leaves_nothing_running(tmp_path: Path) -> None:
    state = (tmp_path / "state").resolve()
    suite = start_suite(state)
    pids: list[int] = []
    try:
        pids = [pid_of(suite, s) for s in SERVICES]
        pids.append(with_agent(suite))
        assert all(pid_alive(p) for p in pids)
        for service, address in addresses(suite).items():
            assert serving(address), service
        assert suite.check() == []

        # The client settings: the gateway's endpoint and a key the gateway's table resolves.
        client_file = state / "client.json"
        saved = json.loads(client_file.read_text())
        assert saved["endpoint"] == suite.endpoint
        assert saved["account"] == "default"
        assert stat.S_IMODE(client_file.stat().st_mode) == 0o600
        found = accounts.lookup(suite.config.db_path("gateway"), saved["key"])
        assert found is not None and found.name == "default"
        with Client.discover(state) as client:
            assert [p.name for p in client.list_pools()] == ["pools/p"]
        assert (state / "logs" / "gateway.log").exists()

        suite.stop()
        wait_gone(pids)
        assert processes_mentioning(str(state)) == {}
        # Stopped in order with SIGTERM: each service logged its own clean stop.
        for service in SERVICES:
            assert logged_clean_stop(suite.log_tail(service)), suite.log_tail(service)
        suite.stop()  # idempotent
    finally:
        suite.stop()
        kill_leftovers(pids)


def test_kill_and_restart_one_service(suite: LocalSuite) -> None:
    client = suite.client()
    client.create_pool("kept", target_nodes=0)
    old = pid_of(suite, "pool-manager")
    suite.kill("pool-manager")
    assert not pid_alive(old)
    assert suite.check() == ["pool-manager"]
    with pytest.raises(ShoalError) as caught:
        client.get_pool("kept")
    assert caught.value.code == StatusCode.UNAVAILABLE
    suite.restart("pool-manager")
    new = pid_of(suite, "pool-manager")
    assert new != old and pid_alive(new)
    assert suite.check() == []
    assert serving(suite.config.pool_manager_address)
    # The restarted service has its data, and the gateway reaches it again ("try again
    # shortly": its channel reconnects after gRPC's backoff).
    assert wait_for(lambda: reachable(client, "kept"), "the gateway to reach it", 30)


def reachable(client: Client, pool_id: str) -> bool:
    try:
        return client.get_pool(pool_id).name == f"pools/{pool_id}"
    except ShoalError as e:
        if e.code != StatusCode.UNAVAILABLE:
            raise
        return False


def test_stop_ends_what_a_killed_service_left_in_its_own_session(tmp_path: Path) -> None:
    suite = start_suite(tmp_path / "state")
    agent = 0
    try:
        agent = with_agent(suite)
        suite.kill("pool-manager")  # a crash: its agent lives on, in a session of its own
        assert pid_alive(agent)
        suite.stop()
        wait_gone([agent])
        assert processes_mentioning(str(suite.state_dir)) == {}
    finally:
        suite.stop()
        kill_leftovers([agent] if agent else [])


def test_restart_keeps_secret_and_key_and_applies_new_ports(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with running(state) as first:
        secret, key, old_endpoint = first.config.secret, first.client_config.key, first.endpoint
        first.client().create_pool("kept", target_nodes=0)
    port = wait_for(
        lambda: (p := free_port()) != int(old_endpoint.rsplit(":", 1)[1]) and p, "a new port"
    )
    second = local_suite(state, gateway_port=port).start()
    try:
        assert second.endpoint == f"127.0.0.1:{port}"
        assert second.config.secret == secret
        assert second.client_config.key == key
        saved = json.loads((state / "client.json").read_text())
        assert saved == {"endpoint": second.endpoint, "account": "default", "key": key}
        cluster = json.loads((state / "cluster.json").read_text())
        assert cluster["gateway_address"] == second.endpoint
        # What a user sees: the same client.json reaches the new port, and the pool is there.
        with Client.discover(state) as client:
            assert client.get_pool("kept").name == "pools/kept"
    finally:
        second.stop()


def test_a_stale_key_in_client_json_is_replaced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "client.json").write_text(
        json.dumps({"endpoint": "127.0.0.1:1", "account": "default", "key": "shoal_forgotten"})
    )
    with running(state) as suite:
        key = suite.client_config.key
        assert key != "shoal_forgotten"
        found = accounts.lookup(suite.config.db_path("gateway"), key)
        assert found is not None and found.name == "default"
        assert json.loads((state / "client.json").read_text())["key"] == key
        with Client.discover(state) as client:
            assert list(client.list_pools()) == []
        with Client(suite.endpoint, "shoal_forgotten") as c, pytest.raises(ShoalError) as caught:
            next(c.list_pools(), None)
        assert caught.value.reason == "INVALID_ACCOUNT_KEY"


def test_a_port_in_use_is_reported_before_anything_starts(tmp_path: Path) -> None:
    state = (tmp_path / "state").resolve()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        suite = local_suite(state, gateway_port=port)
        with pytest.raises(SuiteError, match=f"port {port} .* in use"):
            suite.start()
    assert processes_mentioning(str(state)) == {}
    assert not (state / "logs" / "storage-stager.log").exists()


def test_services_are_stopped_when_the_parent_exits_without_stop(tmp_path: Path) -> None:
    state = (tmp_path / "state").resolve()
    script = in_a_child_process(state, "sys.exit(0)  # no stop(): the atexit handler must do it")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pids = json.loads(done.stdout.strip().splitlines()[-1])
    try:
        wait_gone(pids)
        assert processes_mentioning(str(state)) == {}
    finally:
        kill_leftovers(pids)


def test_a_second_suite_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with running(state) as first:
        cluster = (state / "cluster.json").read_text()
        second = local_suite(state)
        with pytest.raises(SuiteError, match="another Shoal .* is running with state dir"):
            second.start()
        # The running suite's files are untouched and it still serves.
        assert (state / "cluster.json").read_text() == cluster
        assert list(first.client().list_pools()) == []
    # That the state dir is free again once the first has stopped is shown by
    # test_restart_keeps_secret_and_key_and_applies_new_ports.


def test_start_stops_what_a_killed_parent_left_running(tmp_path: Path) -> None:
    state = (tmp_path / "state").resolve()
    script = in_a_child_process(state, "time.sleep(600)")
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
        parent.kill()  # no atexit, no stop(): the services are orphaned
        parent.wait()
        assert all(pid_alive(p) for p in pids)
        with running(state) as suite:
            assert suite.leftovers_stopped == 4
            wait_gone(pids)
            assert list(suite.client().list_pools()) == []
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        kill_leftovers(pids)


# Stand-ins: what a real service does not do on purpose


def test_a_service_that_exits_at_start_fails_with_its_log_tail(tmp_path: Path) -> None:
    state = tmp_path / "state"
    suite = local_suite(state, commands=standin_commands(job_scheduler="exit"))
    with pytest.raises(SuiteError) as caught:
        suite.start(timeout=20)
    assert caught.value.service == "job-scheduler"
    assert "exited with code 3" in str(caught.value)
    assert "boom: job-scheduler cannot open its database" in caught.value.log_tail
    # The stager had started before it; it is stopped again.
    stager = read_pid(state / "storage-stager.pid")
    wait_gone([stager])
    assert not (state / "gateway.pid").exists()


def test_a_service_that_never_gets_healthy_fails_at_the_deadline(tmp_path: Path) -> None:
    state = tmp_path / "state"
    suite = local_suite(state, commands=standin_commands(storage_stager="hang"))
    with pytest.raises(SuiteError) as caught:
        suite.start(timeout=1.5)
    assert caught.value.service == "storage-stager"
    assert "did not become healthy" in str(caught.value)
    stager = read_pid(state / "storage-stager.pid")
    wait_gone([stager])


def test_stop_kills_a_service_that_ignores_sigterm(tmp_path: Path) -> None:
    suite = local_suite(tmp_path / "state", commands=standin_commands(gateway="stubborn"))
    suite.start(timeout=20)
    pid = pid_of(suite, "gateway")
    try:
        suite.stop(timeout=1)
        assert not pid_alive(pid)
    finally:
        kill_leftovers([pid])
