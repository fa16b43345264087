"""Storage down in the middle of a job, against the real suite: the storage-stager killed and
started again, and the S3 endpoint (moto's server) killed and started again on its port.
Tasks that ran are not failed: their outputs and logs wait on their nodes, `task why` says
so, and once storage is back every output and every log is stored, once. An outage longer
than the cluster's (here shortened) staging_outage_timeout fails the task saying so, and its
log still goes up when storage is back."""

from __future__ import annotations

import secrets
import shlex
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from shoal.client import Client
from shoal.cluster_config import StorageConfig
from shoal.suite import LocalSuite
from shoal.v1 import pool_pb2, task_pb2
from tests.storage_support import MotoServer, free_port
from tests.support import FAST, print_logs, wait_for

TASKS = 24
SCRIPT = ('sleep 0.3; echo "$SHOAL_TASK_ID" > out.txt; echo "said $SHOAL_TASK_ID"')


def suite_with(state: Path, storage: StorageConfig | None = None,
               outage_timeout: float = 300.0) -> LocalSuite:
    return LocalSuite(state, gateway_port=0, pool_manager_port=0, scheduler_port=0,
                      stager_port=0, storage=storage,
                      timing=replace(FAST, staging_outage_timeout=outage_timeout)).start()


def add_job(c: Client, job: str, n: int, nodes: int = 2) -> list[str]:
    c.create_container("out")
    c.create_pool("p", target_nodes=nodes, task_slots_per_node=4)
    wait_for(lambda: sum(x.state == pool_pb2.Node.IDLE for x in c.list_nodes("p")) == nodes,
             f"{nodes} idle nodes")
    c.create_job(job, pool_id="p")
    ids = [f"t{i:02}" for i in range(n)]
    c.add_tasks(job, [{"id": t, "command_line": f"/bin/sh -c {shlex.quote(SCRIPT)}",
                       "output_files": [f"out.txt=out/{job}/{t}.txt"]} for t in ids])
    return ids


def completed(c: Client, job: str) -> int:
    return c.get_job(job).task_counts.completed


def waiting_for_storage(c: Client, job: str) -> str:
    """The state reason of a task whose node waits for storage ("" while none does)."""
    for t in c.list_tasks(job, state="running"):
        tid = t.name.rsplit("/", 1)[1]
        if "STORAGE_UNAVAILABLE" in c.explain_task(job, tid).reasons:
            return c.get_task(job, tid).state_reason
    return ""


def check_all_stored(c: Client, job: str, ids: list[str], logs: Callable[[], list[str]]) -> None:
    """No task failed or ran twice; every output is stored with its content; every task's
    stdout.txt is stored exactly once."""
    done = c.wait_job(job, timeout=120)
    assert (done.task_counts.succeeded, done.task_counts.failed) == (len(ids), 0)
    for t in c.list_tasks(job):
        assert (t.execution_info.retry_count, t.execution_info.requeue_count) == (0, 0), t.name
    assert sorted(o.key for o in c.list_objects("out", prefix=f"{job}/")) == [
        f"{job}/{t}.txt" for t in ids]
    for t in ids:
        assert c.read_object("out", f"{job}/{t}.txt") == f"{t}\n".encode()
    found = wait_for(lambda: (keys := logs()) and len(keys) >= len(ids) and keys,
                     "every task's log stored")
    assert sorted(k.split("/")[-3] for k in found) == ids, "one stdout.txt per task"


def local_logs(suite: LocalSuite) -> Callable[[], list[str]]:
    """The stdout.txt keys in the local store's index."""
    def keys() -> list[str]:
        db = sqlite3.connect(f"file:{suite.config.db_path('storage-stager')}?mode=ro", uri=True)
        try:
            return [k for (k,) in db.execute(
                "SELECT key FROM local_objects WHERE key LIKE '%/logs/%/stdout.txt'")]
        finally:
            db.close()
    return keys


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state"


def test_the_storage_stager_down_mid_job_fails_nothing_and_loses_nothing(state: Path) -> None:
    suite = suite_with(state)
    try:
        c = suite.client()
        ids = add_job(c, "j", TASKS)
        wait_for(lambda: completed(c, "j") >= 4, "4 tasks completed")
        suite.kill("storage-stager")
        reason = wait_for(lambda: waiting_for_storage(c, "j"), "a task waiting for storage")
        assert reason.startswith("its output files wait for storage (unavailable since ")
        assert completed(c, "j") < TASKS
        suite.restart("storage-stager")
        check_all_stored(c, "j", ids, local_logs(suite))
    finally:
        suite.stop()
        print_logs(suite)


def test_the_s3_endpoint_down_mid_job_fails_nothing_and_loses_nothing(tmp_path: Path) -> None:
    moto = MotoServer(tmp_path / "moto.log", durable=True)
    bucket = f"shoal-e2e-{secrets.token_hex(4)}"
    storage = StorageConfig(backend="s3", endpoint_url=moto.endpoint_url, region=moto.region,
                            access_key_id=moto.access_key_id,
                            secret_access_key=moto.secret_access_key, bucket=bucket,
                            prefix="cluster/")
    s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=moto.region,
                      aws_access_key_id="k", aws_secret_access_key="s",
                      config=Config(s3={"addressing_style": "path"}))

    def logs() -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="cluster/")
        return [o["Key"] for p in pages for o in p.get("Contents", [])
                if "/logs/" in o["Key"] and o["Key"].endswith("/stdout.txt")]

    suite = suite_with(tmp_path / "state", storage)
    try:
        c = suite.client()
        ids = add_job(c, "j", TASKS)
        wait_for(lambda: completed(c, "j") >= 4, "4 tasks completed")
        moto.kill()
        wait_for(lambda: waiting_for_storage(c, "j"), "a task waiting for storage")
        assert completed(c, "j") < TASKS
        moto.restart()
        check_all_stored(c, "j", ids, logs)
    finally:
        suite.stop()
        moto.stop()
        print_logs(suite)


def test_an_outage_longer_than_the_bound_fails_the_task_saying_so(state: Path) -> None:
    suite = suite_with(state, StorageConfig(http_address=f"127.0.0.1:{free_port()}"),
                       outage_timeout=4.0)
    try:
        c = suite.client()
        c.create_container("out")
        c.create_pool("p", target_nodes=1, task_slots_per_node=2)
        c.create_job("j", pool_id="p")
        slow = 'echo "said $SHOAL_TASK_ID"; sleep 1; echo r > out.txt'
        c.add_tasks("j", [{"id": t, "command_line": f"/bin/sh -c {shlex.quote(slow)}",
                           "output_files": [f"out.txt=out/{t}.txt"]} for t in ("a", "b")])
        wait_for(lambda: len(list(c.list_tasks("j", state="running"))) == 2, "both running")
        suite.kill("storage-stager")
        assert c.wait_job("j", timeout=120).task_counts.failed == 2
        for t in c.list_tasks("j"):
            info = t.execution_info
            assert info.result == task_pb2.TaskExecutionInfo.FAILURE and info.exit_code == 0
            f = info.failure_info
            assert (f.code, f.category) == ("OUTPUT_FILE_UPLOAD_FAILED",
                                            task_pb2.FailureInfo.SERVER_ERROR)
            assert "storage was unavailable for" in f.message
            assert "staging_outage_timeout is 4 s" in f.message
            assert "storage-stager" in f.message, "the last error says what was down"
        suite.restart("storage-stager")
        # The logs were not lost with the outputs: they go up once storage is back.
        keys = wait_for(lambda: len(k := local_logs(suite)()) == 2 and k, "both logs stored")
        assert sorted(k.split("/")[-3] for k in keys) == ["a", "b"]
    finally:
        suite.stop()
        print_logs(suite)
