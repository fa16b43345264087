"""A task's stdout and stderr: the last lines of it, and following it while the task runs,
from the SDK and the CLI against the real suite (real agents, real task processes)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from shoal import Client, ShoalError, StatusCode
from shoal.suite import LocalSuite
from tests.support import PY, wait_for

TEN_LINES = "".join(f"line {i}\n" for i in range(10)).encode()


def _py(code: str) -> str:
    return shlex.join([PY, "-c", code])


def _gated(gate: Path) -> str:
    """Prints 'first', waits for `gate` to exist, prints 'second' and ends."""
    return _py(
        "import os, sys, time\n"
        "print('first', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)\n"
        "print('second', flush=True)\n"
        "print('to stderr', file=sys.stderr, flush=True)\n"
    )


@pytest.fixture
def client(shared_suite: LocalSuite, uid: str) -> Client:
    c = shared_suite.client(timeout=15)
    c.create_pool(uid, target_nodes=1, task_slots_per_node=2)
    c.create_job(uid, pool_id=uid)
    return c


def test_follow_streams_what_the_task_writes_as_it_writes_it(client: Client, uid: str,
                                                             tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    # Followed before it is even added: the stream waits for the task to start.
    client.add_task(uid, "t", _gated(gate))
    pieces = client.follow_task_file(uid, "t", timeout=60)
    assert next(pieces) == b"first\n"  # the task is still running: it waits for the gate
    gate.touch()
    assert b"".join(pieces) == b"second\n"  # and the stream ends with the attempt
    task = client.get_task(uid, "t")
    assert task.state == task.COMPLETED and task.execution_info.exit_code == 0


def test_follow_of_a_finished_task_gives_its_file_and_ends(client: Client, uid: str) -> None:
    client.add_task(uid, "t", _py(f"print({TEN_LINES.decode()!r}, end='')"))
    client.wait_job(uid, timeout=30)
    assert b"".join(client.follow_task_file(uid, "t", timeout=30)) == TEN_LINES
    assert b"".join(client.follow_task_file(uid, "t", tail=2, timeout=30)) == b"line 8\nline 9\n"


def test_tail_gives_the_last_lines_of_a_running_or_finished_task(
    client: Client, uid: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    big = "x" * 70_000  # the lines before the tail are more than the first 64 KiB window
    code = ("import os, time\nprint('x' * 70_000)\n" + "".join(f"print('line {i}')\n" for i in range(10))
            + f"import sys; sys.stdout.flush()\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)\n")
    client.add_task(uid, "t", _py(code))
    # While it runs: read from the node, from its end.
    def started() -> bool:
        try:
            return client.read_task_file(uid, "t", tail=3) == b"line 7\nline 8\nline 9\n"
        except ShoalError as e:
            if e.reason != "TASK_NOT_STARTED":
                raise
            return False

    wait_for(started, "the running task's last three lines", timeout=30)
    gate.touch()
    client.wait_job(uid, timeout=30)
    assert client.read_task_file(uid, "t", tail=1) == b"line 9\n"
    assert client.read_task_file(uid, "t", tail=11) == (big + "\n").encode() + TEN_LINES
    assert client.read_task_file(uid, "t", tail=500) == client.read_task_file(uid, "t")


def test_bad_tail_and_follow_requests_are_refused_naming_the_field(client: Client,
                                                                    uid: str) -> None:
    client.add_task(uid, "t", "/bin/true")
    client.wait_job(uid, timeout=30)
    for kwargs, field in (({"tail": 5, "offset": 3}, "offset"), ({"tail": 100_001}, "tail_lines")):
        with pytest.raises(ShoalError) as caught:
            client.read_task_file(uid, "t", **kwargs)  # type: ignore[arg-type]
        assert caught.value.code == StatusCode.INVALID_ARGUMENT
        assert field in str(caught.value)
    with pytest.raises(ShoalError) as caught:
        next(iter(client.follow_task_file(uid, "nope", timeout=10)))
    assert caught.value.code == StatusCode.NOT_FOUND
    # A task that ended without running is not waited for.
    client.create_pool(f"{uid}-empty", target_nodes=0)
    client.create_job(f"{uid}-x", pool_id=f"{uid}-empty")
    client.add_task(f"{uid}-x", "never", "/bin/true")
    client.terminate_job(f"{uid}-x")
    client.wait_job(f"{uid}-x", timeout=30)
    with pytest.raises(ShoalError) as caught:
        next(iter(client.follow_task_file(f"{uid}-x", "never", timeout=10)))
    assert (caught.value.code, caught.value.reason) == (StatusCode.FAILED_PRECONDITION,
                                                        "TASK_NOT_STARTED")


def test_the_cli_follows_and_tails(shared_suite: LocalSuite, client: Client, uid: str,
                                   tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    client.add_task(uid, "t", _gated(gate))
    base = [sys.executable, "-m", "shoal.cli.main", "--endpoint", shared_suite.endpoint,
            "--key", shared_suite.client_config.key, "task", "logs", uid, "t"]
    with subprocess.Popen([*base, "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as follow:
        assert follow.stdout is not None
        assert follow.stdout.readline() == b"first\n"
        gate.touch()
        out, err = follow.communicate(timeout=60)
    assert (follow.returncode, out, err) == (0, b"second\n", b"")
    tail = subprocess.run([*base, "--stderr", "--tail", "1"], capture_output=True, timeout=60)
    assert (tail.returncode, tail.stdout) == (0, b"to stderr\n")
    bad = subprocess.run([*base, "--tail", "0"], capture_output=True, timeout=60)
    assert bad.returncode == 2 and b"--tail" in bad.stderr
