"""The Python client: discovery from files and the environment, and how answers and errors
of a real gRPC server come out (a stand-in for the gateway's public API)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoal import Client, ClientConfigError, ShoalError, StatusCode, TaskSpec, WaitTimeoutError
from shoal.client import ClientConfig, resolve_config, write_client_file
from shoal.suite import free_port
from shoal.v1 import job_pb2
from tests.cli.standin_gateway import KEY, StandinGateway


@pytest.fixture
def gateway():
    with StandinGateway() as gw:
        yield gw


@pytest.fixture
def client(gateway: StandinGateway):
    with Client(gateway.endpoint, KEY, timeout=10) as c:
        yield c


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOAL_ENDPOINT", "SHOAL_ACCOUNT_KEY", "SHOAL_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)


# Discovery


def test_discover_reads_client_json_of_the_state_dir(tmp_path: Path, no_env: None) -> None:
    write_client_file(tmp_path, ClientConfig("127.0.0.1:6000", "shoal_k1", "default"))
    config = resolve_config(tmp_path)
    assert (config.endpoint, config.key, config.account) == (
        "127.0.0.1:6000",
        "shoal_k1",
        "default",
    )
    assert (tmp_path / "client.json").stat().st_mode & 0o777 == 0o600


def test_state_dir_defaults_to_env_then_dot_shoal(
    tmp_path: Path, no_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    write_client_file(tmp_path / "elsewhere", ClientConfig("h:1", "k-env-dir"))
    (tmp_path / ".shoal").mkdir()
    write_client_file(tmp_path / ".shoal", ClientConfig("h:2", "k-cwd"))
    monkeypatch.chdir(tmp_path)
    assert resolve_config().key == "k-cwd"
    monkeypatch.setenv("SHOAL_STATE_DIR", str(tmp_path / "elsewhere"))
    assert resolve_config().key == "k-env-dir"


def test_environment_wins_over_client_json(
    tmp_path: Path, no_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_client_file(tmp_path, ClientConfig("127.0.0.1:6000", "file-key"))
    monkeypatch.setenv("SHOAL_ENDPOINT", "10.0.0.1:7000")
    monkeypatch.setenv("SHOAL_ACCOUNT_KEY", "env-key")
    config = resolve_config(tmp_path)
    assert (config.endpoint, config.key) == ("10.0.0.1:7000", "env-key")
    # With the environment complete, no file is needed at all.
    assert resolve_config(tmp_path / "missing").key == "env-key"
    # Arguments win over both.
    assert resolve_config(tmp_path, endpoint="h:1", key="arg-key").key == "arg-key"


def test_nothing_found_tells_the_user_to_run_shoal_up(tmp_path: Path, no_env: None) -> None:
    with pytest.raises(ClientConfigError) as caught:
        Client.discover(tmp_path)
    assert "shoal up" in caught.value.message
    assert str(tmp_path / "client.json") in caught.value.message
    assert isinstance(caught.value, ShoalError)


def test_a_broken_client_json_is_a_config_error(tmp_path: Path, no_env: None) -> None:
    (tmp_path / "client.json").write_text("{not json")
    with pytest.raises(ClientConfigError, match="cannot read"):
        resolve_config(tmp_path)
    (tmp_path / "client.json").write_text(json.dumps({"endpoint": "h:1"}))
    with pytest.raises(ClientConfigError, match="lacks"):
        resolve_config(tmp_path)


def test_discovered_client_talks_to_the_endpoint_with_the_key(
    tmp_path: Path, no_env: None, gateway: StandinGateway
) -> None:
    write_client_file(tmp_path, ClientConfig(gateway.endpoint, KEY))
    with Client.discover(tmp_path) as client:
        assert list(client.list_pools()) == []
    assert gateway.world.authorizations == [f"Bearer {KEY}"]


# Errors


def test_server_errors_carry_code_reason_and_field(client: Client) -> None:
    with pytest.raises(ShoalError) as caught:
        client.get_pool("nope")
    e = caught.value
    assert e.code == StatusCode.NOT_FOUND and e.reason == "POOL_NOT_FOUND"
    assert "nope" in e.message and e.field is None

    with pytest.raises(ShoalError) as caught:
        client.create_pool("bad id!", target_nodes=1)
    e = caught.value
    assert e.code == StatusCode.INVALID_ARGUMENT
    assert e.reason == "INVALID_ARGUMENT" and e.field == "pool_id"
    assert str(e).endswith("[INVALID_ARGUMENT]")

    client.create_pool("p1", target_nodes=1)
    with pytest.raises(ShoalError) as caught:
        client.create_pool("p1", target_nodes=1)
    assert (caught.value.code, caught.value.reason) == (
        StatusCode.ALREADY_EXISTS,
        "POOL_ALREADY_EXISTS",
    )


def test_a_wrong_key_is_unauthenticated(gateway: StandinGateway) -> None:
    with Client(gateway.endpoint, "shoal_wrong") as c, pytest.raises(ShoalError) as caught:
        c.get_pool("p1")
    assert caught.value.code == StatusCode.UNAUTHENTICATED
    assert caught.value.reason == "INVALID_ACCOUNT_KEY"
    assert not caught.value.unreachable


def test_no_server_is_unavailable_without_a_reason() -> None:
    with (
        Client(f"127.0.0.1:{free_port()}", KEY, timeout=5) as c,
        pytest.raises(ShoalError) as caught,
    ):
        c.get_job("j1")
    assert caught.value.code == StatusCode.UNAVAILABLE
    assert caught.value.reason == "" and caught.value.unreachable


def test_bad_enum_names_are_refused_before_sending(client: Client) -> None:
    with pytest.raises(ShoalError) as caught:
        client.resize_pool("p1", 2, node_deallocation_option="later")
    assert caught.value.field == "node_deallocation_option"
    assert "requeue" in caught.value.message


# Calls


def test_lists_walk_every_page(client: Client, gateway: StandinGateway) -> None:
    for i in range(7):
        client.create_pool(f"p{i}", target_nodes=0)
    pools = list(client.list_pools(page_size=3))
    assert [p.name for p in pools] == [f"pools/p{i}" for i in range(7)]


def test_add_tasks_sends_chunks_and_counts(client: Client, gateway: StandinGateway) -> None:
    client.create_pool("p", target_nodes=1)
    client.create_job("j", pool_id="p", on_all_tasks_complete="terminate")
    assert client.get_job("j").on_all_tasks_complete == job_pb2.TERMINATE_JOB
    specs = [TaskSpec(f"t{i}", f"echo {i}", {"I": str(i)}, 2.5, 1) for i in range(6)]
    specs.append({"id": "t6", "command_line": "echo 6"})
    added = client.add_tasks("j", specs, chunk=3)
    assert added == 7
    assert gateway.world.batch_sizes == [3, 3, 1]
    t = client.get_task("j", "t1")
    assert t.command_line == "echo 1" and t.environment["I"] == "1"
    assert t.constraints.max_wall_clock_time.ToMilliseconds() == 2500
    assert t.constraints.max_task_retry_count == 1


def test_a_bad_task_in_a_chunk_names_it(client: Client) -> None:
    client.create_pool("p", target_nodes=1)
    client.create_job("j", pool_id="p")
    with pytest.raises(ShoalError) as caught:
        client.add_tasks("j", [TaskSpec("a", "echo"), TaskSpec("b", "")])
    assert caught.value.field == "requests[1].task.command_line"


def test_list_tasks_filters_by_state(client: Client, gateway: StandinGateway) -> None:
    client.create_pool("p", target_nodes=1)
    client.create_job("j", pool_id="p")
    client.add_tasks("j", [TaskSpec(f"t{i}", "true") for i in range(4)])
    gateway.complete("j", "t1", ok=True)
    gateway.complete("j", "t2", ok=False)
    done = [t.name for t in client.list_tasks("j", state="completed", page_size=1)]
    assert done == ["jobs/j/tasks/t1", "jobs/j/tasks/t2"]
    active = [t.name for t in client.list_tasks("j", state=["ACTIVE"])]
    assert active == ["jobs/j/tasks/t0", "jobs/j/tasks/t3"]


def test_read_task_file_joins_the_stream(client: Client, gateway: StandinGateway) -> None:
    gateway.world.files[("jobs/j/tasks/t", "stdout.txt")] = b"hello, streamed world\n"
    assert client.read_task_file("j", "t") == b"hello, streamed world\n"
    assert client.read_task_file("j", "t", offset=7) == b"streamed world\n"
    with pytest.raises(ShoalError) as caught:
        client.read_task_file("j", "t", "stderr.txt")
    assert caught.value.code == StatusCode.NOT_FOUND


def test_wait_job_returns_when_nothing_is_left_to_run(
    client: Client, gateway: StandinGateway
) -> None:
    client.create_pool("p", target_nodes=1)
    client.create_job("j", pool_id="p")
    client.add_tasks("j", [TaskSpec("a", "true"), TaskSpec("b", "true")])
    seen: list[int] = []

    def progress(counts: job_pb2.TaskCounts) -> None:
        seen.append(counts.completed)
        # Tasks finish while we wait, one per poll.
        for task_id in ("a", "b"):
            if gateway.world.tasks["j"][task_id].state != 4:
                gateway.complete("j", task_id, ok=task_id == "a")
                return

    job = client.wait_job("j", poll=0.01, timeout=30, on_progress=progress)
    assert (job.task_counts.succeeded, job.task_counts.failed) == (1, 1)
    assert seen == [0, 1, 2]


def test_wait_job_times_out(client: Client) -> None:
    client.create_pool("p", target_nodes=1)
    client.create_job("j", pool_id="p")
    client.add_task("j", "a", "sleep 100")
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait_job("j", poll=0.01, timeout=0.1)
    assert "1 active" in caught.value.message
    assert isinstance(caught.value, TimeoutError)


def test_a_malformed_task_dict_is_refused_before_sending(
    client: Client, gateway: StandinGateway
) -> None:
    client.create_pool("p", target_nodes=1)
    client.create_job("j", pool_id="p")
    tasks = [{"id": "a", "command_line": "echo"}, {"id": "b", "command": "echo"}]
    with pytest.raises(ShoalError) as caught:
        client.add_tasks("j", tasks)
    assert (caught.value.code, caught.value.field) == (StatusCode.INVALID_ARGUMENT, "tasks[1]")
    assert "unknown key 'command'" in caught.value.message
    assert gateway.world.batch_sizes == []
