"""Node operations through the real pool-manager: disable / enable scheduling, reboot, remove
named nodes. Stand-in agent processes started by the local provider register over real gRPC,
the store is a real SQLite file, and the scheduler is a test double served over real gRPC
that keeps the scheduling flag on its sessions as the job-scheduler does. The pure rules
behind them are at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite
import grpc
import pytest
from google.protobuf import empty_pb2

from services.common import rpc
from services.common.errors import ShoalError
from services.pool_manager.main import PoolManagerService
from services.pool_manager.model import (
    DeallocationOption,
    Node,
    NodeFillType,
    NodeRowState,
    NodeState,
    ReportedSession,
    SessionState,
    node_state,
)
from services.pool_manager.node_rules import (
    SchedulingCall,
    check_node_ids,
    reboot,
    scheduling_owed,
    set_scheduling,
)
from services.pool_manager.store import SCHEMA, Store
from shoal.cluster_config import ClusterConfig
from shoal.internal.v1 import scheduler_control_pb2 as sc_pb2
from shoal.v1 import pool_pb2
from tests.support import eventually

from .conftest import (
    Client,
    FakeScheduler,
    make_service,
    pid_alive,
    registered,
    registrations,
    rpc_error,
    serving,
    short,
)

ACCT = "acct-a"
N = pool_pb2.Node
REQUEUE, TERMINATE, TASK_COMPLETION = pool_pb2.REQUEUE, pool_pb2.TERMINATE, pool_pb2.TASK_COMPLETION


class SchedulingScheduler(FakeScheduler):
    """The scheduler double, plus SetNodeScheduling: calls are recorded, and a node's session
    (if it has one) keeps the flag, as the job-scheduler's does."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduling: list[tuple[str, str, str, bool, int]] = []

    def calls(self, pool: str) -> list[tuple[str, bool, int]]:
        """(node, enabled, option) of every SetNodeScheduling call for the pool, in order."""
        return [(n, e, o) for _, p, n, e, o in self.scheduling if p == pool]

    def forget(self) -> None:
        """As a restarted job-scheduler: its sessions know nothing of scheduling."""
        for live in self.sessions.values():
            for s in live.values():
                s.scheduling_disabled = False

    async def SetNodeScheduling(self, request: Any, context: Any) -> Any:
        await self._check(context)
        self.scheduling.append((rpc.account(), request.pool_id, request.node_id,
                                request.enabled, request.option))
        live = self.sessions.get((rpc.account(), request.pool_id), {}).get(request.node_id)
        if live is not None:
            live.scheduling_disabled = not request.enabled
        return empty_pb2.Empty()


@pytest.fixture
async def scheduler(cluster: ClusterConfig) -> AsyncIterator[tuple[SchedulingScheduler, str]]:
    async with serving(SchedulingScheduler(), cluster) as served:
        yield served


async def connected_pool(
    client: Client, config: ClusterConfig, fake: FakeScheduler, pool: str, count: int
) -> list[str]:
    await client.create(pool, target=count)
    ids = await registered(client, config, pool, count)
    for node in ids:
        fake.connect(ACCT, pool, node)
    return ids


async def rounds(service: PoolManagerService, count: int = 3) -> None:
    """Let the reconcile loop run `count` whole rounds (after any under way)."""
    for _ in range(count):
        await service.app.reconcile_once()


async def node(client: Client, pool: str, node_id: str) -> pool_pb2.Node:
    return await client.GetNode(pool_pb2.GetNodeRequest(name=f"pools/{pool}/nodes/{node_id}"))


def disable(pool: str, node_id: str, option: int = 0) -> pool_pb2.DisableNodeSchedulingRequest:
    return pool_pb2.DisableNodeSchedulingRequest(
        name=f"pools/{pool}/nodes/{node_id}", node_disable_scheduling_option=option)  # type: ignore[arg-type]


def enable(pool: str, node_id: str) -> pool_pb2.EnableNodeSchedulingRequest:
    return pool_pb2.EnableNodeSchedulingRequest(name=f"pools/{pool}/nodes/{node_id}")


# --- disable / enable scheduling ------------------------------------------------------------


async def test_disable_and_enable_are_sent_to_the_scheduler_and_shown_on_the_node(
    client: Client, config: ClusterConfig, fake_scheduler: SchedulingScheduler,
    service: PoolManagerService,
) -> None:
    a, b = await connected_pool(client, config, fake_scheduler, "p1", 2)

    got = await client.DisableNodeScheduling(disable("p1", a))
    assert (got.name, got.scheduling_state, got.state) == (f"pools/p1/nodes/{a}", N.DISABLED, N.IDLE)
    assert fake_scheduler.calls("p1") == [(a, False, REQUEUE)]  # Azure Batch's default
    states = {short(n.name): n.scheduling_state for n in await client.nodes("p1")}
    assert states == {a: N.DISABLED, b: N.ENABLED}

    # A second disable is applied again with its own option: here, to stop what a first
    # one let run.
    await client.DisableNodeScheduling(disable("p1", a, TASK_COMPLETION))
    await client.DisableNodeScheduling(disable("p1", a, TERMINATE))
    got = await client.EnableNodeScheduling(enable("p1", a))
    assert got.scheduling_state == N.ENABLED
    await client.EnableNodeScheduling(enable("p1", a))  # enabled already: nothing to send
    assert fake_scheduler.calls("p1") == [
        (a, False, REQUEUE), (a, False, TASK_COMPLETION), (a, False, TERMINATE), (a, True, REQUEUE)
    ]
    await rounds(service)
    assert len(fake_scheduler.calls("p1")) == 4  # the scheduler agrees: nothing re-sent
    assert (await node(client, "p1", a)).scheduling_state == N.ENABLED


async def test_a_disable_made_while_the_scheduler_is_down_is_sent_when_it_is_back(
    client: Client, config: ClusterConfig, fake_scheduler: SchedulingScheduler,
    service: PoolManagerService,
) -> None:
    (a,) = await connected_pool(client, config, fake_scheduler, "p1", 1)
    fake_scheduler.available = False
    got = await client.DisableNodeScheduling(disable("p1", a, TERMINATE))
    assert (got.scheduling_state, got.state) == (N.DISABLED, N.UNREACHABLE)
    assert fake_scheduler.calls("p1") == []

    fake_scheduler.available = True
    # Never acknowledged: sent with the user's own option, once.
    await eventually(lambda: fake_scheduler.calls("p1"), "the disable to reach the scheduler")
    await rounds(service)
    assert fake_scheduler.calls("p1") == [(a, False, TERMINATE)]
    assert fake_scheduler.sessions[(ACCT, "p1")][a].scheduling_disabled


async def test_a_scheduler_that_forgot_is_told_again_and_nothing_is_terminated_twice(
    client: Client, config: ClusterConfig, fake_scheduler: SchedulingScheduler,
    service: PoolManagerService,
) -> None:
    a, b, c = await connected_pool(client, config, fake_scheduler, "p1", 3)
    await client.DisableNodeScheduling(disable("p1", a, TERMINATE))
    await client.DisableNodeScheduling(disable("p1", b, TASK_COMPLETION))
    await client.DisableNodeScheduling(disable("p1", c, REQUEUE))
    await client.EnableNodeScheduling(enable("p1", c))
    sent = len(fake_scheduler.calls("p1"))

    fake_scheduler.forget()  # the job-scheduler restarted

    def resent() -> list[tuple[str, bool, int]] | None:
        later = fake_scheduler.calls("p1")[sent:]
        return later if len(later) >= 2 else None

    again = await eventually(resent, "the settings to be sent again")
    # What runs on a node after the scheduler forgot was not running at the disable: it is
    # requeued, never terminated; what a TASK_COMPLETION let run goes on running.
    assert sorted(again) == [(a, False, REQUEUE), (b, False, TASK_COMPLETION)]
    await rounds(service)
    assert len(fake_scheduler.calls("p1")) == sent + 2


async def test_scheduling_state_survives_a_pool_manager_restart(
    config: ClusterConfig, fake_scheduler: SchedulingScheduler
) -> None:
    svc = make_service(config)
    await svc.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as ch:
            client = Client(ch, config.service_token, ACCT)
            a, b = await connected_pool(client, config, fake_scheduler, "p1", 2)
            await client.DisableNodeScheduling(disable("p1", a, TERMINATE))
    finally:
        await svc.stop()
    fake_scheduler.forget()
    svc = make_service(config)
    await svc.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as ch:
            client = Client(ch, config.service_token, ACCT)
            states = {short(n.name): n.scheduling_state for n in await client.nodes("p1")}
            assert states == {a: N.DISABLED, b: N.ENABLED}
            await eventually(lambda: len(fake_scheduler.calls("p1")) == 2,
                             "the disable to be sent again")
            assert fake_scheduler.calls("p1")[1] == (a, False, REQUEUE)
    finally:
        await svc.stop()


async def test_node_operations_refuse_what_they_cannot_do(
    client: Client, other_client: Client, config: ClusterConfig,
    fake_scheduler: SchedulingScheduler,
) -> None:
    a, b = await connected_pool(client, config, fake_scheduler, "p1", 2)
    for n in (a, b):  # busy, so a node told to leave stays leaving
        fake_scheduler.connect(ACCT, "p1", n, running_tasks=1)

    e = await rpc_error(client.DisableNodeScheduling(disable("p1", "node-nope")))
    assert (e.code(), rpc.error_info(e)[0]) == (grpc.StatusCode.NOT_FOUND, "NODE_NOT_FOUND")
    assert "pools/p1/nodes/node-nope" in (e.details() or "")
    e = await rpc_error(client.RebootNode(pool_pb2.RebootNodeRequest(name="pools/nope/nodes/x")))
    assert (e.code(), rpc.error_info(e)[0]) == (grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND")
    e = await rpc_error(other_client.EnableNodeScheduling(enable("p1", a)))  # another account
    assert e.code() == grpc.StatusCode.NOT_FOUND
    e = await rpc_error(client.EnableNodeScheduling(
        pool_pb2.EnableNodeSchedulingRequest(name=f"pools/p1/{a}")))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in (e.details() or "")
    e = await rpc_error(client.DisableNodeScheduling(disable("p1", a, 9)))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (e.details() or "").startswith("node_disable_scheduling_option:")
    assert fake_scheduler.calls("p1") == []

    # A node being removed takes no more operations.
    await client.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p1", target_nodes=1))

    async def one_leaving() -> str | None:
        leaving = [short(n.name) for n in await client.nodes("p1") if n.state == N.LEAVING]
        return leaving[0] if leaving else None

    gone = await eventually(one_leaving, "a node to be leaving")
    for call in (client.DisableNodeScheduling(disable("p1", gone)),
                 client.RebootNode(pool_pb2.RebootNodeRequest(name=f"pools/p1/nodes/{gone}"))):
        e = await rpc_error(call)
        assert (e.code(), rpc.error_info(e)[0]) == (grpc.StatusCode.FAILED_PRECONDITION, "NODE_LEAVING")


# --- reboot ---------------------------------------------------------------------------------


async def test_reboot_restarts_the_agent_under_the_same_id_and_root(
    client: Client, config: ClusterConfig, fake_scheduler: SchedulingScheduler,
    service: PoolManagerService,
) -> None:
    (a,) = await connected_pool(client, config, fake_scheduler, "p1", 1)
    first = registrations(config, ACCT, "p1", a)[0]
    assert (await node(client, "p1", a)).state == N.IDLE

    got = await client.RebootNode(pool_pb2.RebootNodeRequest(name=f"pools/p1/nodes/{a}"))
    assert got.state == N.STARTING
    # The scheduler noticed the old agent's stream end; the new one has not connected yet.
    fake_scheduler.connect(ACCT, "p1", a, state=sc_pb2.NodeSession.UNREACHABLE)

    await eventually(lambda: len(registrations(config, ACCT, "p1", a)) == 2,
                     "the agent to register again")
    second = registrations(config, ACCT, "p1", a)[1]
    assert second["node"] == first["node"] == f"pools/p1/nodes/{a}"
    assert second["pid"] != first["pid"] and not pid_alive(first["pid"])
    # Registered, not yet connected: still starting, not shown as an unreachable node.
    assert (await node(client, "p1", a)).state == N.STARTING

    fake_scheduler.connect(ACCT, "p1", a)
    assert (await node(client, "p1", a)).state == N.IDLE
    await rounds(service)
    # The pool-manager did not take the restart for a crash: same node, nothing removed.
    assert [short(n.name) for n in await client.nodes("p1")] == [a]
    assert fake_scheduler.removed == []
    assert len(registrations(config, ACCT, "p1", a)) == 2


async def test_a_node_removed_during_its_reboot_stays_stopped_and_goes(
    client: Client, config: ClusterConfig, fake_scheduler: SchedulingScheduler
) -> None:
    a, b = await connected_pool(client, config, fake_scheduler, "p1", 2)
    pid = registrations(config, ACCT, "p1", a)[0]["pid"]
    await client.RebootNode(pool_pb2.RebootNodeRequest(name=f"pools/p1/nodes/{a}"))
    await client.RemoveNodes(pool_pb2.RemoveNodesRequest(parent="pools/p1", node_ids=[a]))

    async def gone() -> bool:
        return [short(n.name) for n in await client.nodes("p1")] == [b]

    await eventually(gone, "the rebooting node to be removed")
    assert not pid_alive(pid)
    # Either it was stopped before its reboot restarted it, or its new agent was stopped.
    regs = registrations(config, ACCT, "p1", a)
    assert all(not pid_alive(r["pid"]) for r in regs)


# --- remove nodes ---------------------------------------------------------------------------


async def test_remove_nodes_removes_exactly_those_and_lowers_the_target(
    client: Client, config: ClusterConfig, fake_scheduler: SchedulingScheduler,
    service: PoolManagerService,
) -> None:
    a, b, c = await connected_pool(client, config, fake_scheduler, "p1", 3)
    pids = {n: registrations(config, ACCT, "p1", n)[0]["pid"] for n in (a, b, c)}

    pool = await client.RemoveNodes(pool_pb2.RemoveNodesRequest(
        parent="pools/p1", node_ids=[a, c.upper(), c], node_deallocation_option=TERMINATE))
    assert pool.target_nodes == 1

    async def settled() -> bool:
        p = await client.GetPool(pool_pb2.GetPoolRequest(name="pools/p1"))
        return p.allocation_state == pool_pb2.Pool.STEADY and p.current_nodes == 1

    await eventually(settled, "the pool to settle at one node")
    assert [short(n.name) for n in await client.nodes("p1")] == [b]
    assert fake_scheduler.removed_nodes("p1") == {a: TERMINATE, c: TERMINATE}
    assert pid_alive(pids[b]) and not pid_alive(pids[a]) and not pid_alive(pids[c])
    await rounds(service)
    assert [short(n.name) for n in await client.nodes("p1")] == [b]  # no replacement


async def test_a_round_under_way_while_a_node_is_stopped_does_not_take_it_for_a_crash(
    client: Client, config: ClusterConfig, fake_scheduler: SchedulingScheduler,
) -> None:
    # Rounds read every pool's rows first, then ask the scheduler pool by pool: a slow answer
    # for "p0" (a disabled node makes every round ask) keeps each round open while the nodes
    # of "p1" are stopped. Such a round must not see their agents as ended by a crash
    # (that sent a second RemoveNodes with REQUEUE and forgot a node twice).
    (slow,) = await connected_pool(client, config, fake_scheduler, "p0", 1)
    await client.DisableNodeScheduling(disable("p0", slow))
    fake_scheduler.session_delay["p0"] = 0.3
    a, b, c = await connected_pool(client, config, fake_scheduler, "p1", 3)
    await client.RemoveNodes(pool_pb2.RemoveNodesRequest(
        parent="pools/p1", node_ids=[a, c], node_deallocation_option=TERMINATE))

    async def settled() -> bool:
        return [short(n.name) for n in await client.nodes("p1")] == [b]

    await eventually(settled, "the two nodes to go")
    for _ in range(3):  # rounds that would still see stale rows
        fake_scheduler.session_calls = 0
        await eventually(lambda: fake_scheduler.session_calls >= 2, "another round")
    calls = [(sorted(nodes), opt) for _, p, nodes, opt in fake_scheduler.removed if p == "p1"]
    assert calls == [(sorted([a, c]), TERMINATE)]


async def test_remove_nodes_with_an_unknown_id_changes_nothing(
    client: Client, config: ClusterConfig, fake_scheduler: SchedulingScheduler,
    service: PoolManagerService,
) -> None:
    a, b = await connected_pool(client, config, fake_scheduler, "p1", 2)
    e = await rpc_error(client.RemoveNodes(
        pool_pb2.RemoveNodesRequest(parent="pools/p1", node_ids=[a, "node-nope"])))
    assert (e.code(), rpc.error_info(e)[0]) == (grpc.StatusCode.NOT_FOUND, "NODE_NOT_FOUND")
    assert "node-nope" in (e.details() or "")
    for ids, field in (([], "node_ids"), ([f"n{i}" for i in range(101)], "node_ids"),
                       ([a, "bad.id"], "node_ids[1]")):
        e = await rpc_error(client.RemoveNodes(
            pool_pb2.RemoveNodesRequest(parent="pools/p1", node_ids=ids)))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (e.details() or "").startswith(f"{field}:")
    await rounds(service)
    pool = await client.GetPool(pool_pb2.GetPoolRequest(name="pools/p1"))
    assert (pool.target_nodes, pool.current_nodes) == (2, 2)
    assert {n.state for n in await client.nodes("p1")} == {N.IDLE}
    assert fake_scheduler.removed == []


async def test_removing_a_node_that_is_leaving_already_lowers_the_target_once(
    client: Client, config: ClusterConfig, fake_scheduler: SchedulingScheduler
) -> None:
    a, b, c = await connected_pool(client, config, fake_scheduler, "p1", 3)
    fake_scheduler.connect(ACCT, "p1", a, running_tasks=1)  # so it stays, leaving
    first = await client.RemoveNodes(pool_pb2.RemoveNodesRequest(
        parent="pools/p1", node_ids=[a], node_deallocation_option=TASK_COMPLETION))
    again = await client.RemoveNodes(pool_pb2.RemoveNodesRequest(parent="pools/p1", node_ids=[a]))
    assert (first.target_nodes, again.target_nodes) == (2, 2)
    await eventually(lambda: fake_scheduler.removed_nodes("p1") == {a: TASK_COMPLETION},
                     "the removal to reach the scheduler")
    states = {short(n.name): n.state for n in await client.nodes("p1")}
    assert states == {a: N.LEAVING, b: N.IDLE, c: N.IDLE}


# --- the pool's node fill type (read by the scheduler for pack / spread) --------------------


async def test_a_pool_keeps_its_node_fill_type(client: Client) -> None:
    made = await client.CreatePool(pool_pb2.CreatePoolRequest(
        pool_id="packed", pool=pool_pb2.Pool(target_nodes=0, node_fill_type=pool_pb2.PACK)))
    assert made.node_fill_type == pool_pb2.PACK
    got = await client.GetPool(pool_pb2.GetPoolRequest(name="pools/packed"))
    assert got.node_fill_type == pool_pb2.PACK
    plain = await client.create("plain")
    assert plain.node_fill_type == pool_pb2.SPREAD  # Azure Batch's default
    e = await rpc_error(client.CreatePool(pool_pb2.CreatePoolRequest(
        pool_id="odd", pool=pool_pb2.Pool(node_fill_type=7))))  # type: ignore[arg-type]
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (e.details() or "").startswith("pool.node_fill_type:")


# --- store ----------------------------------------------------------------------------------


async def test_a_database_of_the_previous_version_gets_the_new_columns(tmp_path: Path) -> None:
    old_schema = "\n".join(
        line for line in SCHEMA.splitlines()
        if not line.strip().startswith(("scheduling", "restart_time", "node_fill_type", "pk ",
                                        "revision", "update_time"))
    )
    path = tmp_path / "pm.db"
    async with aiosqlite.connect(path) as db:
        await db.executescript(old_schema)
        await db.execute(
            "INSERT INTO pools VALUES ('acct','p1','p1','',1,1,'local','ACTIVE','{}',1.0,1.0,"
            "'jt_x','REQUEUE','[]',NULL)")
        await db.execute(
            "INSERT INTO nodes (account, pool_lower, pool_id, node_id, node_lower, state,"
            " create_time, state_transition_time, leave_option)"
            " VALUES ('acct','p1','p1','node-1','node-1','ACTIVE',1.0,1.0,'REQUEUE')")
        await db.commit()
    store = await Store.open(path)
    try:
        pool = await store.get_pool("acct", "p1")
        assert pool is not None and pool.node_fill_type is NodeFillType.SPREAD
        got = await store.get_node("acct", "p1", "node-1")
        assert got is not None
        assert (got.scheduling_enabled, got.scheduling_notified, got.restart_time) == (True, True, None)
        assert await store.set_scheduling(set_scheduling(got, False, DeallocationOption.TERMINATE))
        again = await store.get_node("acct", "p1", "node-1")
        assert again is not None and not again.scheduling_enabled
        assert again.scheduling_option is DeallocationOption.TERMINATE
    finally:
        await store.close()


# --- pure rules -----------------------------------------------------------------------------


T0 = 1_700_000_000.0


def row(node_id: str = "n1") -> Node:
    return Node(account="acct", pool_id="p1", node_id=node_id, create_time=T0,
                state_transition_time=T0, state=NodeRowState.ACTIVE)


def live(
    node_id: str = "n1", disabled: bool = False, state: SessionState = SessionState.CONNECTED
) -> ReportedSession:
    return ReportedSession(node_id, state, last_heartbeat_time=T0 + 1, scheduling_disabled=disabled)


def test_owed_settings_are_the_unacknowledged_and_the_forgotten() -> None:
    disabled = set_scheduling(row("d"), False, DeallocationOption.TERMINATE)
    acked = set_scheduling(row("k"), False, DeallocationOption.TASK_COMPLETION)
    acked = replace(acked, scheduling_notified=True)
    plain = row("e")
    leaving = replace(disabled, node_id="l", state=NodeRowState.LEAVING)
    nodes = [disabled, acked, plain, leaving]

    # The scheduler cannot be asked: only what was never acknowledged is tried.
    assert scheduling_owed(nodes, None) == [
        SchedulingCall("d", False, DeallocationOption.TERMINATE, False)]
    # It forgot the acknowledged disable (its session shows none): sent again, safely.
    sessions = {"d": live("d"), "k": live("k"), "e": live("e")}
    assert scheduling_owed(nodes, sessions) == [
        SchedulingCall("d", False, DeallocationOption.TERMINATE, False),
        SchedulingCall("k", False, DeallocationOption.TASK_COMPLETION, True)]
    # In agreement, or no session yet: nothing.
    agreed = {"k": live("k", disabled=True), "e": live("e")}
    assert scheduling_owed([acked, plain], agreed) == []
    assert scheduling_owed([acked], {}) == []
    # An enabled node whose session is still disabled (an enable that was lost) is enabled.
    assert scheduling_owed([plain], {"e": live("e", disabled=True)}) == [
        SchedulingCall("e", True, DeallocationOption.REQUEUE, True)]
    terminated = replace(disabled, scheduling_notified=True)
    assert scheduling_owed([terminated], {"d": live("d")})[0].option is DeallocationOption.REQUEUE


def test_enabling_an_enabled_node_changes_nothing_and_every_disable_is_owed() -> None:
    plain = row()
    assert set_scheduling(plain, True, DeallocationOption.REQUEUE) is plain
    off = set_scheduling(plain, False, DeallocationOption.REQUEUE)
    assert (off.scheduling_enabled, off.scheduling_notified) == (False, False)
    acked = replace(off, scheduling_notified=True)
    assert not set_scheduling(acked, False, DeallocationOption.REQUEUE).scheduling_notified


def test_a_rebooted_node_is_starting_until_its_new_agent_connects() -> None:
    rebooted = reboot(row(), T0 + 10)
    assert rebooted.state is NodeRowState.STARTING and rebooted.errors == ()
    old = live(state=SessionState.UNREACHABLE)  # last heard at T0 + 1, before the reboot
    assert node_state(rebooted, live(), True) is NodeState.STARTING  # not registered yet
    registered = replace(rebooted, state=NodeRowState.ACTIVE)
    assert node_state(registered, old, True) is NodeState.STARTING
    assert node_state(registered, live(), True) is NodeState.IDLE
    later = ReportedSession("n1", SessionState.UNREACHABLE, last_heartbeat_time=T0 + 20)
    assert node_state(registered, later, True) is NodeState.UNREACHABLE
    assert node_state(row(), old, True) is NodeState.UNREACHABLE  # never rebooted


def test_remove_ids_are_checked_and_taken_once() -> None:
    assert check_node_ids(["a", "B", "b", "a"]) == ["a", "B"]
    with pytest.raises(ShoalError) as err:
        check_node_ids([])
    assert err.value.field == "node_ids"
    with pytest.raises(ShoalError) as err:
        check_node_ids(["ok", "no/slash"])
    assert err.value.field == "node_ids[1]"

