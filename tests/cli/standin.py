"""A stand-in for one Shoal service process: a real grpc.aio server answering the health check
on the address the cluster config gives the service, and nothing else.

Why a stand-in here: everything LocalSuite and `shoal up` do with well-behaved services is
tested against the real services (test_suite.py, test_up.py). This exists only for the failure
modes a real service cannot be made to show on purpose: a service that exits while starting,
one that never reports healthy, and one that ignores SIGTERM. (A service leaving a detached
child behind needs no stand-in: the real pool-manager's agents run in sessions of their own.)

    python standin.py SERVICE [--mode MODE] --config PATH

Modes: serve (default), exit (fail at start), hang (never healthy), stubborn (ignores SIGTERM).
Writes `<state_dir>/<service>.pid` so tests can find the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
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
        choices=["serve", "exit", "hang", "stubborn"],
    )
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text())
    state_dir = Path(config["state_dir"])
    (state_dir / f"{args.service}.pid").write_text(str(os.getpid()))
    if args.mode == "exit":
        print(f"boom: {args.service} cannot open its database", file=sys.stderr, flush=True)
        sys.exit(3)
    asyncio.run(
        serve(
            config[FIELDS[args.service]],
            healthy=args.mode != "hang",
            stubborn=args.mode == "stubborn",
        )
    )


if __name__ == "__main__":
    main()
