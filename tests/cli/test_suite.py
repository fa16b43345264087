"""LocalSuite with stand-in services: real subprocesses serving real gRPC health checks."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway import accounts
from shoal.suite import SERVICES, LocalSuite, SuiteError
from tests.cli.helpers import kill_leftovers, pid_alive, read_pid, standin_commands, wait_for


def free_ports() -> dict[str, int]:
    return dict(gateway_port=0, pool_manager_port=0, scheduler_port=0, stager_port=0)


def serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def addresses(suite: LocalSuite) -> dict[str, str]:
    c = suite.config
    return {
        "gateway": c.gateway_address,
        "pool-manager": c.pool_manager_address,
        "job-scheduler": c.job_scheduler_address,
        "storage-stager": c.storage_stager_address,
    }


def test_start_serves_every_service_and_stop_leaves_nothing_running(tmp_path: Path) -> None:
    suite = LocalSuite(
        tmp_path / "state", commands=standin_commands(pool_manager="spawn"), **free_ports()
    )
    pids: list[int] = []
    try:
        suite.start(timeout=20)
        pids = [suite.pid(s) for s in SERVICES]
        child = read_pid(tmp_path / "state" / "pool-manager.child.pid")
        pids.append(child)
        assert all(pid_alive(p) for p in pids)
        for service, address in addresses(suite).items():
            assert serving(address), service
        assert suite.check() == []

        # The client settings: the gateway's endpoint and a key the gateway's table resolves.
        client_file = tmp_path / "state" / "client.json"
        saved = json.loads(client_file.read_text())
        assert saved["endpoint"] == suite.endpoint
        assert saved["account"] == "default"
        assert stat.S_IMODE(client_file.stat().st_mode) == 0o600
        found = accounts.lookup(suite.config.db_path("gateway"), saved["key"])
        assert found is not None and found.name == "default"
        assert (tmp_path / "state" / "logs" / "gateway.log").exists()

        suite.stop()
        for pid in pids:
            wait_for(lambda pid=pid: not pid_alive(pid), what=f"pid {pid} to exit")
        # Stopped in order with SIGTERM: each stand-in logged its own clean stop.
        assert '"stopped"' in suite.log_tail("storage-stager")
        suite.stop()  # idempotent
    finally:
        suite.stop()
        kill_leftovers(pids)


def test_a_service_that_exits_at_start_fails_with_its_log_tail(tmp_path: Path) -> None:
    state = tmp_path / "state"
    suite = LocalSuite(state, commands=standin_commands(job_scheduler="exit"), **free_ports())
    with pytest.raises(SuiteError) as caught:
        suite.start(timeout=20)
    assert caught.value.service == "job-scheduler"
    assert "exited with code 3" in str(caught.value)
    assert "boom: job-scheduler cannot open its database" in caught.value.log_tail
    # The stager had started before it; it is stopped again.
    stager = read_pid(state / "storage-stager.pid")
    wait_for(lambda: not pid_alive(stager), what="the stager to be stopped")
    assert not (state / "gateway.pid").exists()


def test_a_service_that_never_gets_healthy_fails_at_the_deadline(tmp_path: Path) -> None:
    state = tmp_path / "state"
    suite = LocalSuite(state, commands=standin_commands(storage_stager="hang"), **free_ports())
    with pytest.raises(SuiteError) as caught:
        suite.start(timeout=1.5)
    assert caught.value.service == "storage-stager"
    assert "did not become healthy" in str(caught.value)
    stager = read_pid(state / "storage-stager.pid")
    wait_for(lambda: not pid_alive(stager), what="the stager to be stopped")


def test_kill_and_restart_one_service(tmp_path: Path) -> None:
    with LocalSuite(tmp_path / "state", commands=standin_commands(), **free_ports()) as suite:
        old = suite.pid("pool-manager")
        suite.kill("pool-manager")
        assert not pid_alive(old)
        assert suite.check() == ["pool-manager"]
        suite.restart("pool-manager")
        new = suite.pid("pool-manager")
        assert new != old and pid_alive(new)
        assert suite.check() == []
        assert serving(suite.config.pool_manager_address)
        pids = [suite.pid(s) for s in SERVICES]
    for pid in pids:
        wait_for(lambda pid=pid: not pid_alive(pid), what=f"pid {pid} to exit")


def test_stop_kills_a_service_that_ignores_sigterm(tmp_path: Path) -> None:
    suite = LocalSuite(
        tmp_path / "state", commands=standin_commands(gateway="stubborn"), **free_ports()
    )
    suite.start(timeout=20)
    pid = suite.pid("gateway")
    try:
        suite.stop(timeout=1)
        assert not pid_alive(pid)
    finally:
        kill_leftovers([pid])


def test_restart_keeps_secret_and_key_and_applies_new_ports(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalSuite(state, commands=standin_commands(), **free_ports()) as first:
        secret, key, endpoint = first.config.secret, first.client_config.key, first.endpoint
    with LocalSuite(state, commands=standin_commands(), **free_ports()) as second:
        assert second.config.secret == secret
        assert second.client_config.key == key
        saved = json.loads((state / "client.json").read_text())
        assert saved["key"] == key and saved["endpoint"] == second.endpoint
        assert (
            json.loads((state / "cluster.json").read_text())["gateway_address"] == second.endpoint
        )
    assert endpoint  # both runs had a gateway address


def test_a_stale_key_in_client_json_is_replaced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "client.json").write_text(
        json.dumps({"endpoint": "127.0.0.1:1", "account": "default", "key": "shoal_forgotten"})
    )
    with LocalSuite(state, commands=standin_commands(), **free_ports()) as suite:
        key = suite.client_config.key
        assert key != "shoal_forgotten"
        assert accounts.lookup(suite.config.db_path("gateway"), key).name == "default"
        assert json.loads((state / "client.json").read_text())["key"] == key


def test_a_port_in_use_is_reported_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        suite = LocalSuite(
            tmp_path / "state",
            gateway_port=port,
            pool_manager_port=0,
            scheduler_port=0,
            stager_port=0,
            commands=standin_commands(),
        )
        with pytest.raises(SuiteError, match=f"port {port} .* in use"):
            suite.start()
    assert not (tmp_path / "state" / "storage-stager.pid").exists()


def test_services_are_stopped_when_the_parent_exits_without_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = textwrap.dedent(
        f"""
        import json, sys
        from shoal.suite import LocalSuite
        from tests.cli.helpers import standin_commands
        suite = LocalSuite({str(state)!r}, gateway_port=0, pool_manager_port=0,
                           scheduler_port=0, stager_port=0, commands=standin_commands())
        suite.start(timeout=20)
        print(json.dumps([suite.pid(s) for s in ("gateway", "pool-manager", "job-scheduler", "storage-stager")]))
        sys.exit(0)  # no stop(): the atexit handler must do it
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pids = json.loads(done.stdout.strip().splitlines()[-1])
    try:
        for pid in pids:
            wait_for(lambda pid=pid: not pid_alive(pid), what=f"pid {pid} to exit")
    finally:
        kill_leftovers(pids)


def test_a_second_suite_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalSuite(state, commands=standin_commands(), **free_ports()) as first:
        cluster = (state / "cluster.json").read_text()
        second = LocalSuite(state, commands=standin_commands(), **free_ports())
        with pytest.raises(SuiteError, match="another Shoal .* is running with state dir"):
            second.start()
        # The running suite's files are untouched and it still serves.
        assert (state / "cluster.json").read_text() == cluster
        assert serving(first.endpoint)
    # Once the first has stopped, the state dir is free again.
    with LocalSuite(state, commands=standin_commands(), **free_ports()) as third:
        assert serving(third.endpoint)


def test_stop_ends_what_a_killed_service_left_in_its_own_session(tmp_path: Path) -> None:
    state = tmp_path / "state"
    suite = LocalSuite(
        state, commands=standin_commands(pool_manager="spawn-detached"), **free_ports()
    )
    child = 0
    try:
        suite.start(timeout=20)
        child = read_pid(state / "pool-manager.child.pid")
        suite.kill("pool-manager")  # a crash: its "agent" lives on, in a session of its own
        assert pid_alive(child)
        suite.stop()
        wait_for(lambda: not pid_alive(child), what="the detached child to be stopped")
    finally:
        suite.stop()
        kill_leftovers([child] if child else [])


def test_start_stops_what_a_killed_parent_left_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from shoal.suite import LocalSuite
        from tests.cli.helpers import standin_commands
        suite = LocalSuite({str(state)!r}, gateway_port=0, pool_manager_port=0,
                           scheduler_port=0, stager_port=0, commands=standin_commands())
        suite.start(timeout=20)
        print(json.dumps([suite.pid(s) for s in ("gateway", "pool-manager", "job-scheduler", "storage-stager")]), flush=True)
        time.sleep(600)
        """
    )
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True
    )
    pids: list[int] = []
    try:
        pids = json.loads(parent.stdout.readline())
        parent.kill()  # no atexit, no stop(): the services are orphaned
        parent.wait()
        assert all(pid_alive(p) for p in pids)
        with LocalSuite(state, commands=standin_commands(), **free_ports()) as suite:
            assert suite.leftovers_stopped == 4
            for pid in pids:
                wait_for(lambda pid=pid: not pid_alive(pid), what=f"orphan {pid} to be stopped")
            assert serving(suite.endpoint)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
        kill_leftovers(pids)
