"""The pool-manager's store on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from services.pool_manager.model import (
    DeallocationOption,
    Node,
    NodeCounts,
    NodeError,
    NodeRowState,
    Pool,
    PoolState,
)
from services.pool_manager.store import Store

from .conftest import must

T0 = 1_700_000_000.0


def pool(account: str = "acct", pool_id: str = "Render", **kw: object) -> Pool:
    base = Pool(account=account, id=pool_id, target_nodes=2, task_slots_per_node=4,
                join_token=f"tok-{account}-{pool_id}", create_time=T0, state_transition_time=T0,
                display_name="Render farm", metadata={"team": "vfx"})
    return replace(base, **kw)  # type: ignore[arg-type]


def node(node_id: str, account: str = "acct", pool_id: str = "Render", **kw: object) -> Node:
    base = Node(account=account, pool_id=pool_id, node_id=node_id, create_time=T0,
                state_transition_time=T0, pid=1234, pid_start_time=99)
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "pool-manager.db")
    yield s
    await s.close()


async def test_pool_round_trip_and_case_insensitive_ids(store: Store) -> None:
    p = must(await store.insert_pool(pool()))
    assert p.pk and p == replace(pool(), pk=p.pk)  # the pk is the store's
    assert await store.get_pool("acct", "render") == p
    assert await store.pool_by_token(p.join_token) == p
    assert not await store.insert_pool(pool(pool_id="RENDER", join_token="other"))
    assert [x.id for x in await store.all_pools()] == ["Render"]


async def test_pools_are_scoped_by_account(store: Store) -> None:
    assert await store.insert_pool(pool("acct"))
    assert await store.insert_pool(pool("other"))  # the same id in another account is fine
    assert await store.get_pool("nobody", "Render") is None
    assert must(await store.get_pool("other", "Render")).account == "other"
    assert [p.account for p in await store.list_pools("acct", None, 10)] == ["acct"]
    assert not await store.resize_pool("nobody", "Render", 5, DeallocationOption.REQUEUE, T0)
    assert must(await store.get_pool("acct", "Render")).target_nodes == 2


async def test_list_pools_pages_by_id_and_filters_by_state(store: Store) -> None:
    for i, pid in enumerate(["b", "C", "a", "d"]):
        assert await store.insert_pool(pool(pool_id=pid, join_token=f"t{i}"))
    await store.mark_pool_deleting("acct", "C", T0 + 1)
    first = await store.list_pools("acct", None, 2)
    assert [p.id for p in first] == ["a", "b"]
    rest = await store.list_pools("acct", first[-1].id.lower(), 2)
    assert [p.id for p in rest] == ["C", "d"]
    assert [p.id for p in await store.list_pools("acct", None, 10, {"DELETING"})] == ["C"]
    deleting = must(await store.get_pool("acct", "c"))
    assert (deleting.state, deleting.state_transition_time) == (PoolState.DELETING, T0 + 1)


async def test_resize_and_delete_follow_the_pool_state(store: Store) -> None:
    await store.insert_pool(pool())
    assert await store.resize_pool("acct", "render", 7, DeallocationOption.TASK_COMPLETION, T0)
    p = must(await store.get_pool("acct", "Render"))
    assert (p.target_nodes, p.resize_option) == (7, DeallocationOption.TASK_COMPLETION)
    assert not await store.delete_pool_if_empty("acct", "Render")  # not deleting
    await store.insert_node(node("node-1"))
    await store.mark_pool_deleting("acct", "Render", T0)
    assert not await store.resize_pool("acct", "Render", 1, DeallocationOption.REQUEUE, T0)
    assert not await store.delete_pool_if_empty("acct", "Render")  # a node is left
    await store.delete_node("acct", "Render", "node-1")
    assert await store.delete_pool_if_empty("acct", "Render")
    assert await store.get_pool("acct", "Render") is None


async def test_removing_nodes_lowers_the_target_as_it_is_now(store: Store) -> None:
    # RemoveNodes read the pool (target 2) before a resize to 7 committed: the removal of
    # one node must give 6, not overwrite the resize with 1.
    stale = pool()
    await store.insert_pool(stale)
    await store.insert_node(node("node-1"))
    assert await store.resize_pool("acct", "render", 7, DeallocationOption.REQUEUE, T0)
    gone = replace(node("node-1"), state=NodeRowState.LEAVING,
                   leave_option=DeallocationOption.TERMINATE)
    await store.remove_nodes(stale, [gone], T0)
    assert must(await store.get_pool("acct", "Render")).target_nodes == 6
    [row] = await store.list_nodes("acct", "Render")
    assert (row.state, row.leave_option) == (NodeRowState.LEAVING, DeallocationOption.TERMINATE)
    await store.resize_pool("acct", "render", 0, DeallocationOption.REQUEUE, T0)
    await store.remove_nodes(stale, [gone], T0)
    assert must(await store.get_pool("acct", "Render")).target_nodes == 0  # never below 0


async def test_node_rows(store: Store) -> None:
    await store.insert_pool(pool())
    await store.insert_pool(pool("other"))
    for n in ("node-b", "node-a"):
        await store.insert_node(node(n))
    await store.insert_node(node("node-x", account="other"))
    assert [n.node_id for n in await store.list_nodes("acct", "render")] == ["node-a", "node-b"]
    assert await store.get_node("other", "Render", "node-a") is None
    assert must(await store.get_node("acct", "Render", "NODE-A")).pid == 1234

    await store.register_node("acct", "Render", "node-a", "host-a", T0 + 3)
    a = must(await store.get_node("acct", "Render", "node-a"))
    assert (a.state, a.hostname, a.state_transition_time) == (NodeRowState.ACTIVE, "host-a", T0 + 3)

    err = NodeError("AGENT_EXITED", "exited with code 1", T0 + 4)
    left = replace(a, state=NodeRowState.LEAVING, errors=(err,), pid=None, pid_start_time=None,
                   leave_option=DeallocationOption.TERMINATE, state_transition_time=T0 + 4)
    await store.update_lifecycle([left])
    assert await store.get_node("acct", "Render", "node-a") == left
    # A leaving node that registers again (its agent restarted) stays leaving.
    await store.register_node("acct", "Render", "node-a", "host-a2", T0 + 5)
    again = must(await store.get_node("acct", "Render", "node-a"))
    assert (again.state, again.hostname) == (NodeRowState.LEAVING, "host-a2")

    assert await store.node_counts("acct", ["render", "missing"]) == {"render": NodeCounts(2, 1)}

    # Only the option the scheduler was told about is marked as told.
    await store.set_notified("acct", "Render", ["node-a"], DeallocationOption.REQUEUE)
    assert not must(await store.get_node("acct", "Render", "node-a")).leave_notified
    await store.set_notified("acct", "Render", ["node-a"], DeallocationOption.TERMINATE)
    assert must(await store.get_node("acct", "Render", "node-a")).leave_notified

    await store.set_process("acct", "Render", "node-b", 555, 777)
    b = must(await store.get_node("acct", "Render", "node-b"))
    assert (b.pid, b.pid_start_time) == (555, 777)


async def test_rows_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pool-manager.db"
    s = await Store.open(path)
    await s.insert_pool(pool())
    await s.insert_node(node("node-1"))
    await s.close()
    s = await Store.open(path)
    try:
        assert must(await s.get_pool("acct", "Render")).metadata == {"team": "vfx"}
        assert [n.node_id for n in await s.all_nodes()] == ["node-1"]
    finally:
        await s.close()
