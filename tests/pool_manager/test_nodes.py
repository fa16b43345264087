"""Node life through the real service: stand-in agent processes started by the local provider
register over real gRPC; the scheduler is a test double served over real gRPC."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import grpc
import pytest
from structlog.testing import capture_logs

from services.common import credentials, rpc
from services.pool_manager.store import Store
from shoal.agent.v1 import agent_pb2
from shoal.cluster_config import ClusterConfig
from shoal.v1 import pool_pb2
from tests.support import eventually

from .conftest import (
    Client,
    FakeScheduler,
    make_service,
    node_root,
    pid_alive,
    registrations,
    short,
)

ACCT = "acct-a"
N = pool_pb2.Node


async def registered(client: Client, config: ClusterConfig, pool: str, count: int) -> list[str]:
    """Wait until the pool has `count` nodes whose agents all registered; their ids."""

    async def check() -> list[str] | None:
        ids = [short(n.name) for n in await client.nodes(pool)]
        if len(ids) == count and all(registrations(config, ACCT, pool, i) for i in ids):
            return ids
        return None

    return await eventually(check, f"{count} registered nodes in pool {pool}")


def agent_pid(config: ClusterConfig, pool: str, node: str) -> int:
    return registrations(config, ACCT, pool, node)[-1]["pid"]


async def pool_of(client: Client, pool: str) -> pool_pb2.Pool:
    return await client.GetPool(pool_pb2.GetPoolRequest(name=f"pools/{pool}"))


async def test_pool_grows_to_target_and_nodes_show_live_state(
    client: Client, config: ClusterConfig, fake_scheduler: FakeScheduler
) -> None:
    await client.create("p1", target=2, slots=3)
    ids = sorted(await registered(client, config, "p1", 2))

    for node in ids:
        reg = registrations(config, ACCT, "p1", node)[0]
        assert reg["node"] == f"pools/p1/nodes/{node}"
        assert (reg["task_slots"], reg["scheduler_address"]) == (3, config.job_scheduler_address)
        ident = credentials.verify(config, "p1", node, reg["credential"])
        assert ident == credentials.NodeIdentity(ACCT, "p1", node, 3)
        argv = json.loads((node_root(config, ACCT, "p1", node) / "argv.json").read_text())
        assert argv[argv.index("--node-id") + 1] == node
        assert argv[argv.index("--log-level") + 1] == config.log_level
        assert (Path(config.state_dir) / "logs" / f"agent-{ACCT}-p1-{node}.log").exists()

    # Registered but not yet connected to the scheduler.
    nodes = await client.nodes("p1")
    assert [(short(n.name), n.state, n.hostname) for n in nodes] == [
        (i, N.STARTING, f"host-of-{i}") for i in ids
    ]
    pool = await pool_of(client, "p1")
    assert (pool.current_nodes, pool.allocation_state) == (2, pool_pb2.Pool.STEADY)

    fake_scheduler.connect(ACCT, "p1", ids[0], running_tasks=2, slots=3)
    fake_scheduler.connect(ACCT, "p1", ids[1], running_tasks=0, slots=3)
    busy, idle = await client.nodes("p1")
    assert (busy.state, busy.running_tasks, busy.running_task_slots) == (N.RUNNING, 2, 2)
    assert (busy.total_task_slots, busy.completed_tasks, busy.hostname) == (3, 7, f"live-{ids[0]}")
    assert busy.last_heartbeat_time.seconds == 1_700_000_000
    assert idle.state == N.IDLE

    running = await client.nodes("p1", filter="state = RUNNING")
    assert [short(n.name) for n in running] == [ids[0]]
    first = await client.ListNodes(pool_pb2.ListNodesRequest(parent="pools/p1", page_size=1))
    second = await client.ListNodes(pool_pb2.ListNodesRequest(
        parent="pools/p1", page_size=1, page_token=first.next_page_token))
    assert [short(n.name) for n in [*first.nodes, *second.nodes]] == ids
    assert second.next_page_token == ""
    got = await client.GetNode(pool_pb2.GetNodeRequest(name=f"pools/p1/nodes/{ids[1]}"))
    assert got.state == N.IDLE

    # Registering again is idempotent; a good token does not open another pool's nodes.
    token = (node_root(config, ACCT, "p1", ids[0]) / "join-token").read_text()
    again = await client.registry.RegisterNode(
        agent_pb2.RegisterNodeRequest(join_token=token, node_id=ids[0], hostname="h"), timeout=10)
    assert again.credential == registrations(config, ACCT, "p1", ids[0])[0]["credential"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.registry.RegisterNode(
            agent_pb2.RegisterNodeRequest(join_token=token, node_id="node-00000000"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert rpc.error_info(err.value)[0] == "NODE_NOT_FOUND"


async def test_resize_down_removes_idle_nodes_first_and_waits_for_busy_ones(
    client: Client, config: ClusterConfig, fake_scheduler: FakeScheduler
) -> None:
    await client.create("p1", target=3)
    a, b, c = await registered(client, config, "p1", 3)
    fake_scheduler.connect(ACCT, "p1", a, running_tasks=2)
    fake_scheduler.connect(ACCT, "p1", b, running_tasks=0)
    fake_scheduler.connect(ACCT, "p1", c, running_tasks=1)
    pids = {n: agent_pid(config, "p1", n) for n in (a, b, c)}

    resized = await client.ResizePool(pool_pb2.ResizePoolRequest(
        name="pools/p1", target_nodes=1, node_deallocation_option=pool_pb2.TASK_COMPLETION))
    assert resized.target_nodes == 1

    async def idle_one_gone() -> list[pool_pb2.Node] | None:
        nodes = await client.nodes("p1")
        return nodes if b not in [short(n.name) for n in nodes] else None

    nodes = await eventually(idle_one_gone, "the idle node to be removed")
    assert fake_scheduler.removed_nodes("p1") == {
        b: pool_pb2.TASK_COMPLETION, c: pool_pb2.TASK_COMPLETION
    }
    assert {short(n.name): n.state for n in nodes} == {a: N.RUNNING, c: N.LEAVING}
    assert not pid_alive(pids[b]) and not node_root(config, ACCT, "p1", b).exists()
    assert pid_alive(pids[c])  # its task is still running
    assert (await pool_of(client, "p1")).allocation_state == pool_pb2.Pool.RESIZING

    fake_scheduler.connect(ACCT, "p1", c, running_tasks=0)  # its task finished

    async def steady() -> bool:
        pool = await pool_of(client, "p1")
        return pool.allocation_state == pool_pb2.Pool.STEADY and pool.current_nodes == 1

    await eventually(steady, "the pool to settle at one node")
    assert [short(n.name) for n in await client.nodes("p1")] == [a]
    assert not pid_alive(pids[c]) and pid_alive(pids[a])


async def test_a_killed_agent_is_replaced_and_its_tasks_requeued(
    client: Client, config: ClusterConfig, fake_scheduler: FakeScheduler
) -> None:
    await client.create("p1", target=1)
    (old,) = await registered(client, config, "p1", 1)
    fake_scheduler.connect(ACCT, "p1", old, running_tasks=1)

    with capture_logs() as logs:
        os.kill(agent_pid(config, "p1", old), signal.SIGKILL)

        async def replaced() -> list[str] | None:
            ids = await registered(client, config, "p1", 1)
            return ids if ids != [old] else None

        (new,) = await eventually(replaced, "a replacement node")

    assert new != old
    assert fake_scheduler.removed_nodes("p1") == {old: pool_pb2.REQUEUE}
    assert not node_root(config, ACCT, "p1", old).exists()
    exited = [e for e in logs if e.get("error") == "AGENT_EXITED"]
    assert [e["node"] for e in exited] == [old]
    pool = await pool_of(client, "p1")
    assert (pool.current_nodes, pool.allocation_state) == (1, pool_pb2.Pool.STEADY)


async def test_nodes_are_listed_from_records_while_the_scheduler_is_down(
    client: Client, config: ClusterConfig, fake_scheduler: FakeScheduler
) -> None:
    await client.create("p1", target=1)
    (node,) = await registered(client, config, "p1", 1)
    fake_scheduler.connect(ACCT, "p1", node)
    assert [n.state for n in await client.nodes("p1")] == [N.IDLE]
    fake_scheduler.available = False
    assert [n.state for n in await client.nodes("p1")] == [N.UNREACHABLE]
    got = await client.GetNode(pool_pb2.GetNodeRequest(name=f"pools/p1/nodes/{node}"))
    assert (got.state, got.hostname) == (N.UNREACHABLE, f"host-of-{node}")


async def test_delete_pool_requeues_then_removes_everything(
    client: Client, config: ClusterConfig, fake_scheduler: FakeScheduler
) -> None:
    await client.create("p1", target=1)
    (node,) = await registered(client, config, "p1", 1)
    pid = agent_pid(config, "p1", node)
    fake_scheduler.connect(ACCT, "p1", node, running_tasks=1)

    await client.DeletePool(pool_pb2.DeletePoolRequest(name="pools/p1"))
    await client.DeletePool(pool_pb2.DeletePoolRequest(name="pools/p1"))  # again: fine
    pool = await pool_of(client, "p1")
    assert pool.state == pool_pb2.Pool.DELETING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p1", target_nodes=3))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc.error_info(err.value)[0] == "POOL_BEING_DELETED"

    async def told() -> bool:
        return fake_scheduler.removed_nodes("p1") == {node: pool_pb2.REQUEUE}

    await eventually(told, "RemoveNodes(REQUEUE) for the pool's node")
    assert [n.state for n in await client.nodes("p1")] == [N.LEAVING]
    fake_scheduler.connect(ACCT, "p1", node, running_tasks=0)  # requeued by the scheduler

    async def gone() -> bool:
        listed = await client.ListPools(pool_pb2.ListPoolsRequest())
        return not listed.pools

    await eventually(gone, "the pool to be deleted")
    assert not pid_alive(pid)
    assert not (Path(config.state_dir) / "nodes" / ACCT / "p1").exists()
    await client.create("p1")  # the id is free again


async def _node_pids(config: ClusterConfig) -> dict[str, int | None]:
    store = await Store.open(config.db_path("pool-manager"))
    try:
        return {n.node_id: n.pid for n in await store.all_nodes()}
    finally:
        await store.close()


async def test_a_restart_keeps_pools_and_nodes_and_restarts_their_agents(
    config: ClusterConfig,
) -> None:
    svc = make_service(config)
    await svc.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as ch:
            client = Client(ch, config.service_token, ACCT)
            await client.create("p1", target=2)
            ids = await registered(client, config, "p1", 2)
            old_pids = {n: agent_pid(config, "p1", n) for n in ids}
    finally:
        await svc.stop()
    assert not any(pid_alive(p) for p in old_pids.values())

    svc = make_service(config)
    await svc.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as ch:
            client = Client(ch, config.service_token, ACCT)
            assert (await pool_of(client, "p1")).target_nodes == 2

            async def re_registered() -> bool:
                return all(len(registrations(config, ACCT, "p1", n)) == 2 for n in ids)

            await eventually(re_registered, "both agents restarted under their old node ids")
            assert sorted(short(n.name) for n in await client.nodes("p1")) == sorted(ids)
            assert all(agent_pid(config, "p1", n) != old_pids[n] for n in ids)
    finally:
        await svc.stop()


async def test_after_a_crash_running_agents_are_adopted_and_watched(
    config: ClusterConfig, fake_scheduler: FakeScheduler
) -> None:
    svc = make_service(config)
    await svc.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as ch:
            client = Client(ch, config.service_token, ACCT)
            await client.create("p1", target=2)
            keep, kill = await registered(client, config, "p1", 2)
            pids = {n: agent_pid(config, "p1", n) for n in (keep, kill)}
    finally:
        await svc.stop(stop_nodes=False)  # as if the pool-manager had crashed
    try:
        await _adopt_and_watch(config, fake_scheduler, keep, kill, pids)
    finally:
        for pid in pids.values():  # never leave orphans behind, even when the test fails
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


async def _adopt_and_watch(
    config: ClusterConfig, fake_scheduler: FakeScheduler, keep: str, kill: str,
    pids: dict[str, int],
) -> None:
    assert all(pid_alive(p) for p in pids.values())
    svc = make_service(config)
    await svc.start()
    try:
        assert await _node_pids(config) == pids  # adopted, not started again
        async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as ch:
            client = Client(ch, config.service_token, ACCT)
            os.kill(pids[kill], signal.SIGKILL)

            async def replaced() -> list[str] | None:
                ids = await registered(client, config, "p1", 2)
                return ids if kill not in ids else None

            ids = await eventually(replaced, "the adopted agent's death to be noticed")
            assert keep in ids
            assert fake_scheduler.removed_nodes("p1") == {kill: pool_pb2.REQUEUE}
    finally:
        await svc.stop()
    assert not pid_alive(pids[keep])  # a clean stop stops adopted agents too
