"""A stand-in for the node agent (agent/ is written elsewhere), run as a real process by the
local provider in tests. It takes the agent's command line, registers with the pool-manager
over real gRPC, records what it got in its node root, and runs until SIGTERM.

Files it writes in its node root: argv.json (its arguments), pid, registrations.jsonl (one
line per successful RegisterNode), register-error.txt (when registration was refused).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import grpc

from shoal.agent.v1 import agent_pb2, agent_pb2_grpc


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pool-manager", required=True)
    p.add_argument("--node-id", required=True)
    p.add_argument("--node-root", required=True, type=Path)
    p.add_argument("--log-level", required=True)
    args = p.parse_args()
    root: Path = args.node_root
    (root / "argv.json").write_text(json.dumps(sys.argv[1:]))
    (root / "join-token").write_text(os.environ["SHOAL_JOIN_TOKEN"])
    (root / "pid").write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # A safety net: a test that fails before stopping its agents leaves no process for long.
    signal.alarm(300)

    stub = agent_pb2_grpc.NodeRegistryServiceStub(grpc.insecure_channel(args.pool_manager))
    request = agent_pb2.RegisterNodeRequest(
        join_token=os.environ['SHOAL_JOIN_TOKEN'], node_id=args.node_id, hostname=f"host-of-{args.node_id}"
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            resp = stub.RegisterNode(request, timeout=5)
            break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                (root / "register-error.txt").write_text(f"{e.code().name}: {e.details()}")
                return 3
            time.sleep(0.1)  # the pool-manager may still be starting
    with (root / "registrations.jsonl").open("a") as f:
        f.write(json.dumps({
            "pid": os.getpid(),
            "node": resp.node,
            "credential": resp.credential,
            "scheduler_address": resp.scheduler_address,
            "task_slots": resp.task_slots,
            "start_task": resp.start_task.spec.command_line if resp.HasField("start_task")
            else None,
        }) + "\n")
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
