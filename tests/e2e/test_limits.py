"""Quotas and limits through the public endpoint, on the real suite with small limits in its
cluster file: each refusal is RESOURCE_EXHAUSTED with a reason naming the limit, the limit and
the current use in the ErrorInfo's metadata, and nothing changed; an account at its limit does
not hold up another; idle connections are closed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.accounts import create_account
from shoal import Client, ShoalError
from shoal.cluster_config import Limits
from shoal.suite import LocalSuite
from shoal.v1 import job_pb2, job_pb2_grpc, storage_pb2, storage_pb2_grpc
from tests.rest.raw import Raw
from tests.support import print_logs, start_suite, wait_for

LIMITS = Limits(pools_per_account=2, nodes_per_account=1, nodes_per_pool=1,
                active_tasks_per_account=5, calls_per_account=2, streams_per_account=1,
                idle_connection_seconds=3.0)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuite]:
    s = start_suite(tmp_path_factory.mktemp("limits"), limits=LIMITS)
    try:
        yield s
    finally:
        print_logs(s)
        s.stop()


def refused(call: Callable[[], Any], reason: str) -> ShoalError:
    try:
        call()
    except ShoalError as e:
        assert (e.code.name, e.reason) == ("RESOURCE_EXHAUSTED", reason), repr(e)
        return e
    raise AssertionError(f"not refused: expected {reason}")


def account(suite: LocalSuite, name: str) -> tuple[str, Client]:
    key = create_account(suite.config.db_path("gateway"), name, suite.config.secret)
    return key, Client(suite.endpoint, key)


def test_pool_and_node_quotas(limited: LocalSuite) -> None:
    _, c = account(limited, "pools")
    c.create_pool("p1", target_nodes=0)
    e = refused(lambda: c.resize_pool("p1", target_nodes=2), "POOL_NODE_QUOTA_EXCEEDED")
    assert e.metadata["limit"] == "1" and e.metadata["setting"] == "limits.nodes_per_pool"
    assert c.get_pool("p1").target_nodes == 0
    c.resize_pool("p1", target_nodes=1)
    e = refused(lambda: c.create_pool("p2", target_nodes=1), "NODE_QUOTA_EXCEEDED")
    assert (e.metadata["limit"], e.metadata["current"], e.metadata["requested"]) == ("1", "1", "1")
    assert [p.name for p in c.list_pools()] == ["pools/p1"]
    c.create_pool("p2", target_nodes=0)
    refused(lambda: c.resize_pool("p2", target_nodes=1), "NODE_QUOTA_EXCEEDED")
    e = refused(lambda: c.create_pool("p3", target_nodes=0), "POOL_QUOTA_EXCEEDED")
    assert (e.metadata["limit"], e.metadata["current"]) == ("2", "2")
    assert "limits.pools_per_account" in e.message
    assert sorted(p.name for p in c.list_pools()) == ["pools/p1", "pools/p2"]
    # Shrinking is always allowed, and frees the quota for another pool.
    c.resize_pool("p1", target_nodes=0)
    c.resize_pool("p2", target_nodes=1)
    assert c.get_pool("p2").target_nodes == 1
    c.resize_pool("p2", target_nodes=0)


def test_the_cli_prints_a_refusal_as_one_line(limited: LocalSuite) -> None:
    key, c = account(limited, "cli")
    c.create_pool("a", target_nodes=0)
    c.create_pool("b", target_nodes=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    out = subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", "--endpoint", limited.endpoint, "--key", key,
         "pool", "create", "c", "--nodes", "0"],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "POOL_QUOTA_EXCEEDED" in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_task_quota_counts_unfinished_tasks_of_all_jobs(limited: LocalSuite) -> None:
    _, c = account(limited, "tasks")
    c.create_pool("idle", target_nodes=0)  # no nodes: tasks stay active
    c.create_job("j1", pool_id="idle")
    c.create_job("j2", pool_id="idle")
    c.add_tasks("j1", [{"id": f"t{i}", "command_line": "true"} for i in range(3)])
    e = refused(lambda: c.add_tasks("j2", [{"id": f"u{i}", "command_line": "true"}
                                           for i in range(3)]), "TASK_QUOTA_EXCEEDED")
    assert (e.metadata["limit"], e.metadata["current"], e.metadata["requested"]) == ("5", "3", "3")
    assert list(c.list_tasks("j2")) == []
    c.add_task("j2", "u0", "true")
    c.add_task("j2", "u1", "true")
    refused(lambda: c.add_task("j1", "t9", "true"), "TASK_QUOTA_EXCEEDED")
    assert len(list(c.list_tasks("j1"))) == 3
    # A deleted task, and a deleted job's tasks, no longer count.
    c.delete_task("j2", "u1")
    c.add_task("j1", "t3", "true")
    c.delete_job("j1")
    wait_for(lambda: not [j for j in c.list_jobs() if j.name == "jobs/j1"], "j1 deleted", 30)
    c.add_tasks("j2", [{"id": f"v{i}", "command_line": "true"} for i in range(4)])
    # The quota is the account's: another account adds its own.
    _, other = account(limited, "tasks2")
    other.create_pool("idle", target_nodes=0)
    other.create_job("j", pool_id="idle")
    other.add_tasks("j", [{"id": f"t{i}", "command_line": "true"} for i in range(5)])


def _stopped(suite: LocalSuite, service: str) -> Any:
    class Stopped:
        def __enter__(self) -> None:
            os.kill(suite.pid(service) or 0, signal.SIGSTOP)

        def __exit__(self, *exc: object) -> None:
            os.kill(suite.pid(service) or 0, signal.SIGCONT)

    return Stopped()


def test_an_account_at_its_call_limit_does_not_block_another(limited: LocalSuite) -> None:
    key, a = account(limited, "busy")
    key_b, b = account(limited, "calm")
    a.create_pool("p", target_nodes=0)
    a.create_job("j", pool_id="p")
    b.create_pool("p", target_nodes=0)
    md = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(limited.endpoint) as ch:
        jobs = job_pb2_grpc.JobServiceStub(ch)
        # The job-scheduler stopped: the account's calls to it are held at the gateway, in
        # progress, until it runs again. (The gateway's connection to it stays open: the
        # gateway watches its health on it, so it is never idle.)
        a.get_job("j")
        with _stopped(limited, "job-scheduler"):
            def hold() -> Any:
                return jobs.GetJob.future(job_pb2.GetJobRequest(name="jobs/j"), metadata=md,
                                          timeout=60)

            held = [hold(), hold()]
            deadline = time.monotonic() + 15  # well within the gateway's keepalive (20 s)
            while True:
                # A held call that came in while a probe held a place was refused: again.
                held = [hold() if f.done() and f.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                        else f for f in held]
                e = _refusal(lambda: a.get_pool("p"))
                if e is not None and not any(f.done() for f in held):
                    break
                assert time.monotonic() < deadline, f"no refusal; held: {held}"
                time.sleep(0.05)
            assert e.reason == "TOO_MANY_CONCURRENT_CALLS", repr(e)
            assert (e.metadata["limit"], e.metadata["current"]) == ("2", "2")
            # Another account's calls are served meanwhile.
            assert b.get_pool("p").name == "pools/p"
            # The REST face counts against the same limit: no way around it.
            answer = _rest(limited, "busy", key).send("GET", "/pools/p")
            assert (answer.status, answer.code) == (503, "ServerBusy"), answer.body
            assert "limits.calls_per_account" in answer.json["message"]["value"]
            assert {"key": "ShoalReason", "value": "TOO_MANY_CONCURRENT_CALLS"} in \
                answer.json["values"]
            assert _rest(limited, "calm", key_b).send("GET", "/pools/p").status == 200
            assert not any(f.done() for f in held)
        assert all(f.result(timeout=60).name == "jobs/j" for f in held)
    # The held calls ended: their places are free again.
    assert a.get_pool("p").name == "pools/p" and a.get_job("j").name == "jobs/j"
    assert _rest(limited, "busy", key).send("GET", "/pools/p").json["id"] == "p"


def _rest(suite: LocalSuite, name: str, key: str) -> Raw:
    return Raw(suite.rest_endpoint, name, key)


def _refusal(call: Callable[[], Any]) -> ShoalError | None:
    try:
        call()
    except ShoalError as e:
        return e
    return None


def test_streams_have_their_own_limit(limited: LocalSuite) -> None:
    key, a = account(limited, "streams")
    a.create_container("box")
    md = (("authorization", f"Bearer {key}"),)
    release = threading.Event()

    def held_upload() -> Iterator[storage_pb2.UploadObjectRequest]:
        yield storage_pb2.UploadObjectRequest(
            header=storage_pb2.UploadObjectHeader(container="containers/box", key="held"))
        release.wait(120)

    with grpc.insecure_channel(limited.endpoint) as ch:
        storage = storage_pb2_grpc.StorageServiceStub(ch)
        # An upload left open: the account's one stream.
        open_upload = storage.UploadObject.future(held_upload(), metadata=md, timeout=60)
        try:
            # The gateway answers with the account once it has admitted the stream: from
            # then on it holds the account's one place (before, a second upload could take
            # the place first, and this one be the upload refused).
            assert dict(open_upload.initial_metadata())["x-shoal-account"] == "streams"
            e = wait_for(lambda: _refusal(lambda: a.upload_object("box", "k", b"x")),
                         "a second stream refused", 30)
            assert e.reason == "TOO_MANY_CONCURRENT_STREAMS", repr(e)
            assert e.metadata["setting"] == "limits.streams_per_account"
            # Unary calls are counted apart, so they still go through.
            assert a.get_container("box").name == "containers/box"
            assert _refusal(lambda: a.get_object("box", "k")).reason == "OBJECT_NOT_FOUND"
        finally:
            release.set()
            open_upload.cancel()
    wait_for(lambda: _refusal(lambda: a.upload_object("box", "k", b"x")) is None,
             "an upload once the stream ended", 30)
    assert a.get_object("box", "k").size == 1


def test_idle_connections_are_closed(limited: LocalSuite) -> None:
    key, a = account(limited, "idle")
    a.create_pool("p", target_nodes=0)
    with grpc.insecure_channel(limited.endpoint) as ch:
        jobs = job_pb2_grpc.JobServiceStub(ch)
        jobs.ListJobs(job_pb2.ListJobsRequest(), metadata=(("authorization", f"Bearer {key}"),),
                      timeout=30)
        states: list[grpc.ChannelConnectivity] = []
        ch.subscribe(states.append, try_to_connect=False)
        try:
            wait_for(lambda: states and states[-1] == grpc.ChannelConnectivity.READY,
                     "the connection ready", 10)
            # Nothing in progress: after limits.idle_connection_seconds the gateway closes it
            # (GOAWAY), and the channel goes idle until its next call.
            wait_for(lambda: states[-1] == grpc.ChannelConnectivity.IDLE,
                     "the idle connection closed", 30)
        finally:
            ch.unsubscribe(states.append)
