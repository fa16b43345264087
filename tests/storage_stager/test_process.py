"""The real process, `python -m services.storage_stager --config FILE`, on both backends: it
serves what the cluster file says, its log counts every signed-URL request (local) and never
shows the storage credentials, and it stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shoal.cluster_config import ClusterConfig
from shoal.internal.v1 import staging_pb2
from shoal.v1 import task_pb2
from tests.storage_support import free_port

from .conftest import Stager, http_get

SECRET = "shoal-test-secret-never-logged-7f3a"


@pytest.fixture
def process_config(config: ClusterConfig, backend_kind: str) -> ClusterConfig:
    cfg = replace(config, storage_stager_address=f"127.0.0.1:{free_port()}")
    if backend_kind == "s3":
        # moto takes any credentials: a recognisable secret shows whether it leaks to the log.
        cfg = replace(cfg, storage=replace(cfg.storage, secret_access_key=SECRET))
    return cfg


@pytest.fixture
def stager_process(process_config: ClusterConfig, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    path = tmp_path / "cluster.json"
    process_config.save(path)
    assert ClusterConfig.load(path) == process_config
    log = tmp_path / "stager.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.storage_stager", "--config",
                                 str(path)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(process_config.storage_stager_address, proc, log)
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_healthy(address: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


async def test_the_process_serves_logs_requests_and_stops(
    stager_process: tuple[subprocess.Popen[bytes], Path], process_config: ClusterConfig,
    backend_kind: str,
) -> None:
    proc, log = stager_process
    async with grpc.aio.insecure_channel(process_config.storage_stager_address) as ch, \
            aiohttp.ClientSession() as http:
        client = Stager(ch, process_config.service_token, "default")
        await client.create_container("inputs")
        await client.upload("inputs", "in.txt", b"input data")
        resp = await client("GrantDownloads", staging_pb2.GrantDownloadsRequest(specs=[
            staging_pb2.DownloadSpec(resource_files=[
                task_pb2.ResourceFile(container="inputs", object_key="in.txt", file_path="in")])]))
        url = resp.grants[0].downloads[0].url
        for _ in range(3):
            assert await http_get(http, url) == (200, b"input data")

    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 15) == 0
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    served = [x for x in lines if x["event"] == "http request"]
    if backend_kind == "local":
        assert [(x["method"], x["status"]) for x in served] == [("GET", 200)] * 3
        assert all(re.fullmatch(r"default/containers/inputs\.[0-9a-f]+/in\.txt", x["key"])
                   for x in served)
    else:
        assert served == []  # S3 served those itself
        assert SECRET not in log.read_text()
    assert any(x["event"] == "serving" and x["backend"] == backend_kind for x in lines)
    assert lines[-1]["event"] == "stopped"
