"""A stand-in for one Shoal service process, for testing LocalSuite and `shoal up` before
(and apart from) the real services: a real grpc.aio server answering the health check on the
address the cluster config gives the service.

    python standin.py SERVICE [--mode MODE] --config PATH

Modes: serve (default), exit (fail at start), hang (never healthy), stubborn (ignores
SIGTERM), spawn (also starts a child process that it leaves behind when stopped; in its own
session with spawn-detached, as the pool-manager starts agents).
Writes `<state_dir>/<service>.pid` (and `<service>.child.pid`) so tests can find the processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

FIELDS = {
    "gateway": "gateway_address",
    "pool-manager": "pool_manager_address",
    "job-scheduler": "job_scheduler_address",
    "storage-stager": "storage_stager_address",
}


async def serve(address: str, healthy: bool, stubborn: bool) -> None:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if server.add_insecure_port(address) == 0:
        sys.exit(f"cannot listen on {address}")
    await server.start()
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if healthy
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    await servicer.set("", status)
    print(json.dumps({"event": "listening", "address": address}), file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if stubborn:
        loop.add_signal_handler(signal.SIGTERM, lambda: None)
    else:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0.5)
    print(json.dumps({"event": "stopped"}), file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("service", choices=sorted(FIELDS))
    parser.add_argument(
        "--mode",
        default="serve",
        choices=["serve", "exit", "hang", "stubborn", "spawn", "spawn-detached"],
    )
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text())
    state_dir = Path(config["state_dir"])
    (state_dir / f"{args.service}.pid").write_text(str(os.getpid()))
    if args.mode == "exit":
        print(f"boom: {args.service} cannot open its database", file=sys.stderr, flush=True)
        sys.exit(3)
    if args.mode.startswith("spawn"):
        # Left behind on purpose: LocalSuite.stop must find it, in the service's process
        # group ("spawn") or in a session of its own like the local provider's agents.
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"],
            start_new_session=args.mode == "spawn-detached",
        )
        (state_dir / f"{args.service}.child.pid").write_text(str(child.pid))
    asyncio.run(
        serve(
            config[FIELDS[args.service]],
            healthy=args.mode != "hang",
            stubborn=args.mode == "stubborn",
        )
    )


if __name__ == "__main__":
    main()
