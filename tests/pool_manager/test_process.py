"""The pool-manager as its real process: `python -m services.pool_manager --config FILE`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
from pathlib import Path

import grpc

from shoal.cluster_config import ClusterConfig
from shoal.v1 import pool_pb2
from tests.support import eventually

from .conftest import Client


async def _start(config_file: Path, log: Path) -> tuple[asyncio.subprocess.Process, int]:
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.pool_manager", "--config", str(config_file),
            stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err,
        )

    def serving() -> int | None:
        if proc.returncode is not None:
            raise AssertionError(f"pool-manager exited: {log.read_text()}")
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event.get("event") == "serving":
                return event["port"]
        return None

    return proc, await eventually(serving, "the pool-manager to serve")


async def _stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 60)


async def test_serves_logs_json_stops_on_sigterm_and_keeps_pools(
    tmp_path: Path, config: ClusterConfig
) -> None:
    config = dataclasses.replace(config, pool_manager_address="127.0.0.1:0")
    config_file = tmp_path / "cluster.json"
    config.save(config_file)

    log = tmp_path / "first.log"
    proc, port = await _start(config_file, log)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            client = Client(ch, config.service_token, "acct-a")
            await client.create("kept", target=0)
    finally:
        code = await _stop(proc)
    assert code == 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(e["service"] == "pool-manager" for e in events)
    created = [e for e in events if e["event"] == "pool created"]
    assert [(e["account"], e["pool"], e["rpc"]) for e in created] == [("acct-a", "kept", "CreatePool")]
    assert events[-1]["event"] == "stopped"

    proc, port = await _start(config_file, tmp_path / "second.log")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            client = Client(ch, config.service_token, "acct-a")
            pools = await client.ListPools(pool_pb2.ListPoolsRequest())
            assert [p.name for p in pools.pools] == ["pools/kept"]
    finally:
        assert await _stop(proc) == 0
