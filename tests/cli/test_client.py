"""The Python client: discovery from files and the environment, and how answers and errors of
the real suite come out. Tests share one suite per module; each works in a pool and a job named
after itself (`uid`)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal import Client, ClientConfigError, ShoalError, StatusCode, TaskSpec, WaitTimeoutError
from shoal.client import ClientConfig, resolve_config, write_client_file
from shoal.suite import LocalSuite, free_port
from shoal.v1 import job_pb2, task_pb2
from tests.support import PY, wait_for

COMPLETED = task_pb2.Task.COMPLETED


@pytest.fixture
def client(shared_suite: LocalSuite) -> Iterator[Client]:
    with shared_suite.client(timeout=10) as c:
        yield c


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOAL_ENDPOINT", "SHOAL_ACCOUNT_KEY", "SHOAL_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)


def pool_and_job(client: Client, uid: str, nodes: int = 0, slots: int = 1) -> None:
    """Pool and job both named `uid`; with no nodes, tasks stay ACTIVE."""
    client.create_pool(uid, target_nodes=nodes, task_slots_per_node=slots)
    client.create_job(uid, pool_id=uid)


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


def test_discovered_client_talks_to_the_suite_with_its_key(
    shared_suite: LocalSuite, client: Client, no_env: None, uid: str, tmp_path: Path
) -> None:
    # The state dir of a running suite is all a user needs.
    with Client.discover(shared_suite.state_dir) as discovered:
        discovered.create_pool(uid, target_nodes=0)
    assert client.get_pool(uid).name == f"pools/{uid}"
    # The key really is sent: the same endpoint with another key is refused.
    write_client_file(tmp_path, ClientConfig(shared_suite.endpoint, "shoal_not-the-key"))
    with Client.discover(tmp_path) as stranger, pytest.raises(ShoalError) as caught:
        stranger.get_pool(uid)
    assert caught.value.reason == "INVALID_ACCOUNT_KEY"


# Errors


def test_server_errors_carry_code_reason_and_field(client: Client, uid: str) -> None:
    with pytest.raises(ShoalError) as caught:
        client.get_pool(uid)
    e = caught.value
    assert e.code == StatusCode.NOT_FOUND and e.reason == "POOL_NOT_FOUND"
    assert uid in e.message and e.field is None

    with pytest.raises(ShoalError) as caught:
        client.create_pool("bad id!", target_nodes=1)
    e = caught.value
    assert e.code == StatusCode.INVALID_ARGUMENT
    assert e.reason == "INVALID_ARGUMENT" and e.field == "pool_id"
    assert str(e).endswith("[INVALID_ARGUMENT]")

    client.create_pool(uid, target_nodes=0)
    with pytest.raises(ShoalError) as caught:
        client.create_pool(uid.upper(), target_nodes=0)  # ids are unique ignoring case
    assert (caught.value.code, caught.value.reason) == (
        StatusCode.ALREADY_EXISTS,
        "POOL_ALREADY_EXISTS",
    )


def test_a_wrong_key_is_unauthenticated(shared_suite: LocalSuite) -> None:
    with Client(shared_suite.endpoint, "shoal_wrong") as c, pytest.raises(ShoalError) as caught:
        c.get_pool("p1")
    assert caught.value.code == StatusCode.UNAUTHENTICATED
    assert caught.value.reason == "INVALID_ACCOUNT_KEY"
    assert not caught.value.unreachable


def test_no_server_is_unavailable_without_a_reason() -> None:
    with (
        Client(f"127.0.0.1:{free_port()}", "shoal_k", timeout=5) as c,
        pytest.raises(ShoalError) as caught,
    ):
        c.get_job("j1")
    assert caught.value.code == StatusCode.UNAVAILABLE
    assert caught.value.reason == "" and caught.value.unreachable


def test_bad_enum_names_are_refused_before_sending(client: Client, uid: str) -> None:
    client.create_pool(uid, target_nodes=0)
    with pytest.raises(ShoalError) as caught:
        client.resize_pool(uid, 2, node_deallocation_option="later")
    assert caught.value.field == "node_deallocation_option"
    assert "requeue" in caught.value.message
    assert client.get_pool(uid).target_nodes == 0


# Calls


def test_lists_walk_every_page(client: Client, uid: str) -> None:
    mine = [f"{uid}-{i}" for i in range(7)]
    for pool_id in mine:
        client.create_pool(pool_id, target_nodes=0)
    names = [p.name for p in client.list_pools(page_size=3)]
    assert len(names) == len(set(names))
    assert [n for n in names if n.startswith(f"pools/{uid}-")] == [f"pools/{p}" for p in mine]

    pool_and_job(client, uid)
    client.add_tasks(uid, [TaskSpec(f"t{i}", "true") for i in range(7)])
    tasks = [t.name for t in client.list_tasks(uid, page_size=3)]
    assert tasks == [f"jobs/{uid}/tasks/t{i}" for i in range(7)]


def test_add_tasks_sends_chunks_and_counts(client: Client, uid: str) -> None:
    client.create_pool(uid, target_nodes=0)
    client.create_job(uid, pool_id=uid, on_all_tasks_complete="terminate")
    assert client.get_job(uid).on_all_tasks_complete == job_pb2.TERMINATE_JOB
    specs: list[TaskSpec | dict[str, object]] = [
        TaskSpec(f"t{i}", f"echo {i}", {"I": str(i)}, 2.5, 1) for i in range(6)
    ]
    specs.append({"id": "t6", "command_line": "echo 6"})
    progress: list[int] = []
    added = client.add_tasks(uid, specs, chunk=3, on_chunk=progress.append)
    assert added == 7 and progress == [3, 6, 7]
    assert client.get_job(uid).task_counts.active == 7
    t = client.get_task(uid, "t1")
    assert t.command_line == "echo 1" and t.environment["I"] == "1"
    assert t.constraints.max_wall_clock_time.ToMilliseconds() == 2500
    assert t.constraints.max_task_retry_count == 1


def test_a_bad_task_in_a_chunk_names_it_and_earlier_chunks_stay(client: Client, uid: str) -> None:
    pool_and_job(client, uid)
    specs = [TaskSpec("a", "echo"), TaskSpec("b", "echo"), TaskSpec("c", "echo"), TaskSpec("d", "")]
    with pytest.raises(ShoalError) as caught:
        client.add_tasks(uid, specs, chunk=2)
    assert caught.value.field == "requests[1].task.command_line"
    # The first chunk was one request of its own; nothing of the refused one was added.
    assert [t.name.rsplit("/", 1)[-1] for t in client.list_tasks(uid)] == ["a", "b"]


def test_list_tasks_filters_by_state(client: Client, uid: str) -> None:
    pool_and_job(client, uid, nodes=1, slots=2)
    client.add_tasks(uid, [TaskSpec("t1", "true"), TaskSpec("t2", "false")])
    wait_for(lambda: client.get_job(uid).task_counts.completed == 2, "t1 and t2 to complete", 30)
    # Without nodes, tasks added now stay active.
    client.resize_pool(uid, 0)
    wait_for(lambda: not list(client.list_nodes(uid)), "the node to leave", 30)
    client.add_tasks(uid, [TaskSpec("t0", "true"), TaskSpec("t3", "true")])
    done = [t.name for t in client.list_tasks(uid, state="completed", page_size=1)]
    assert done == [f"jobs/{uid}/tasks/t1", f"jobs/{uid}/tasks/t2"]
    active = [t.name for t in client.list_tasks(uid, state=["ACTIVE"])]
    assert active == [f"jobs/{uid}/tasks/t0", f"jobs/{uid}/tasks/t3"]
    both = [t.name for t in client.list_tasks(uid, state=["active", COMPLETED])]
    assert both == [f"jobs/{uid}/tasks/t{i}" for i in range(4)]


def test_read_task_file_joins_the_stream(client: Client, uid: str) -> None:
    # More than one 64 KiB chunk, and bytes that are not text.
    expected = bytes(range(256)) * 800
    code = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 800)"
    pool_and_job(client, uid, nodes=1)
    client.add_task(uid, "t", shlex.join([PY, "-c", code]))
    job = client.wait_job(uid, timeout=30)
    assert job.task_counts.succeeded == 1
    assert client.read_task_file(uid, "t") == expected
    assert client.read_task_file(uid, "t", offset=70_000) == expected[70_000:]
    assert client.read_task_file(uid, "t", "stderr.txt") == b""
    with pytest.raises(ShoalError) as caught:
        client.read_task_file(uid, "nope")
    assert caught.value.code == StatusCode.NOT_FOUND


def test_wait_job_returns_when_nothing_is_left_to_run(
    client: Client, uid: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    pool_and_job(client, uid, nodes=1, slots=2)
    # Both tasks wait until the first progress report has been seen.
    gate = f"while [ ! -e {go} ]; do sleep 0.02; done"
    client.add_tasks(
        uid,
        [
            TaskSpec("a", shlex.join(["/bin/sh", "-c", f"{gate}; exit 0"])),
            TaskSpec("b", shlex.join(["/bin/sh", "-c", f"{gate}; exit 1"])),
        ],
    )
    seen: list[int] = []

    def progress(counts: job_pb2.TaskCounts) -> None:
        seen.append(counts.completed)
        go.touch()

    job = client.wait_job(uid, timeout=30, on_progress=progress)
    assert (job.task_counts.succeeded, job.task_counts.failed) == (1, 1)
    assert seen[0] == 0 and seen[-1] == 2 and seen == sorted(seen)


def test_wait_job_times_out(client: Client, uid: str) -> None:
    pool_and_job(client, uid)  # no nodes: the task never runs
    client.add_task(uid, "a", "sleep 100")
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait_job(uid, timeout=0.1)
    assert "1 active" in caught.value.message
    assert isinstance(caught.value, TimeoutError)


def test_a_malformed_task_dict_is_refused_before_sending(client: Client, uid: str) -> None:
    pool_and_job(client, uid)
    tasks = [{"id": "a", "command_line": "echo"}, {"id": "b", "command": "echo"}]
    with pytest.raises(ShoalError) as caught:
        client.add_tasks(uid, tasks)
    assert (caught.value.code, caught.value.field) == (StatusCode.INVALID_ARGUMENT, "tasks[1]")
    assert "unknown key 'command'" in caught.value.message
    assert list(client.list_tasks(uid)) == []
