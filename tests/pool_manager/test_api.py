"""The pool API over real gRPC: standard methods, validation, accounts and authentication.

Pools here mostly have no nodes; node life is in test_nodes.py.
"""

from __future__ import annotations

from typing import Any, cast

import grpc
import pytest

from services.common import rpc
from shoal.agent.v1 import agent_pb2
from shoal.cluster_config import ClusterConfig
from shoal.v1 import pool_pb2
from tests.support import eventually

from .conftest import Client


async def test_create_get_list_resize_delete(client: Client) -> None:
    created = await client.CreatePool(pool_pb2.CreatePoolRequest(
        pool_id="Render", pool=pool_pb2.Pool(
            display_name="Render farm", target_nodes=0, metadata={"team": "vfx"},
            state=pool_pb2.Pool.DELETING, current_nodes=9,  # output only: ignored
        ),
    ))
    assert created.name == "pools/Render"
    assert (created.state, created.allocation_state) == (pool_pb2.Pool.ACTIVE, pool_pb2.Pool.STEADY)
    assert (created.task_slots_per_node, created.provider, created.current_nodes) == (1, "local", 0)
    assert created.create_time.seconds > 0 and dict(created.metadata) == {"team": "vfx"}

    got = await client.GetPool(pool_pb2.GetPoolRequest(name="pools/render"))  # any case
    assert got == created

    listed = await client.ListPools(pool_pb2.ListPoolsRequest())
    assert [p.name for p in listed.pools] == ["pools/Render"] and listed.next_page_token == ""

    resized = await client.ResizePool(pool_pb2.ResizePoolRequest(name="pools/Render", target_nodes=0))
    assert resized.target_nodes == 0

    await client.DeletePool(pool_pb2.DeletePoolRequest(name="pools/Render"))

    async def gone() -> bool:
        try:
            await client.GetPool(pool_pb2.GetPoolRequest(name="pools/Render"))
        except grpc.aio.AioRpcError as e:
            return e.code() == grpc.StatusCode.NOT_FOUND
        return False

    await eventually(gone, "the empty pool to be deleted")
    assert list((await client.ListPools(pool_pb2.ListPoolsRequest())).pools) == []


async def test_list_pools_pages_and_filters(client: Client) -> None:
    for pid in ["e", "B", "a", "D", "c"]:
        await client.create(pid)
    names: list[str] = []
    token = ""
    for _ in range(10):
        page = await client.ListPools(pool_pb2.ListPoolsRequest(page_size=2, page_token=token))
        assert len(page.pools) <= 2
        names += [p.name for p in page.pools]
        token = page.next_page_token
        if not token:
            break
    assert names == ["pools/a", "pools/B", "pools/c", "pools/D", "pools/e"]

    active = await client.ListPools(pool_pb2.ListPoolsRequest(filter="state = ACTIVE"))
    assert len(active.pools) == 5
    deleting = await client.ListPools(pool_pb2.ListPoolsRequest(filter="state = DELETING"))
    assert list(deleting.pools) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.ListPools(pool_pb2.ListPoolsRequest(filter="state = ON_FIRE"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc.error_info(err.value) == ("INVALID_ARGUMENT", "filter")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.ListPools(pool_pb2.ListPoolsRequest(page_token="not-ours"))
    assert rpc.error_info(err.value) == ("INVALID_ARGUMENT", "page_token")


def _create(pool_id: str = "p1", **pool: Any) -> pool_pb2.CreatePoolRequest:
    return pool_pb2.CreatePoolRequest(pool_id=pool_id, pool=pool_pb2.Pool(**pool))


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_create("a/b"), "pool_id"),
        (_create(".."), "pool_id"),
        (_create("a\x00b"), "pool_id"),
        (_create("x" * 65), "pool_id"),
        (_create(""), "pool_id"),
        (_create(target_nodes=-1), "pool.target_nodes"),
        (_create(target_nodes=1001), "pool.target_nodes"),
        (_create(task_slots_per_node=-3), "pool.task_slots_per_node"),
        (_create(task_slots_per_node=257), "pool.task_slots_per_node"),
        (_create(provider="static"), "pool.provider"),
        (_create(display_name="n" * 1025), "pool.display_name"),
    ],
)
async def test_bad_create_requests_are_refused_naming_the_field(
    client: Client, request_: pool_pb2.CreatePoolRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.CreatePool(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()
    assert rpc.error_info(err.value) == ("INVALID_ARGUMENT", field)
    assert list((await client.ListPools(pool_pb2.ListPoolsRequest())).pools) == []


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("GetPool", pool_pb2.GetPoolRequest(name="pools/a/b"), "name"),
        ("GetPool", pool_pb2.GetPoolRequest(name="pools/.."), "name"),
        ("GetPool", pool_pb2.GetPoolRequest(name=""), "name"),
        ("ResizePool", pool_pb2.ResizePoolRequest(name="pools/p1", target_nodes=-1), "target_nodes"),
        ("ResizePool", pool_pb2.ResizePoolRequest(name="pools/p1", target_nodes=2000), "target_nodes"),
        ("ResizePool", pool_pb2.ResizePoolRequest(name="pools/p1", node_deallocation_option=cast(Any, 42)),
         "node_deallocation_option"),
        ("ListNodes", pool_pb2.ListNodesRequest(parent="pools/p1/x"), "parent"),
        ("ListNodes", pool_pb2.ListNodesRequest(parent="pools/p1", page_size=-1), "page_size"),
        ("ListNodes", pool_pb2.ListNodesRequest(parent="pools/p1", filter="state = GONE"), "filter"),
        ("GetNode", pool_pb2.GetNodeRequest(name="pools/p1/nodes/a\x00"), "name"),
    ],
)
async def test_bad_names_and_values_are_refused(
    client: Client, method: str, request_: object, field: str
) -> None:
    await client.create("p1")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(client, method)(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc.error_info(err.value) == ("INVALID_ARGUMENT", field)
    assert (await client.GetPool(pool_pb2.GetPoolRequest(name="pools/p1"))).target_nodes == 0


async def test_ids_are_unique_per_account_ignoring_case(client: Client, other_client: Client) -> None:
    await client.create("Render")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.create("RENDER")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert rpc.error_info(err.value)[0] == "POOL_ALREADY_EXISTS"
    assert (await other_client.create("render")).name == "pools/render"


async def test_another_accounts_pool_is_not_found(client: Client, other_client: Client) -> None:
    await client.create("mine")
    calls = [
        ("GetPool", pool_pb2.GetPoolRequest(name="pools/mine")),
        ("ResizePool", pool_pb2.ResizePoolRequest(name="pools/mine", target_nodes=1)),
        ("DeletePool", pool_pb2.DeletePoolRequest(name="pools/mine")),
        ("ListNodes", pool_pb2.ListNodesRequest(parent="pools/mine")),
        ("GetNode", pool_pb2.GetNodeRequest(name="pools/mine/nodes/node-1")),
    ]
    for method, request in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await getattr(other_client, method)(request)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, method
        assert rpc.error_info(err.value)[0] == "POOL_NOT_FOUND", method
    assert list((await other_client.ListPools(pool_pb2.ListPoolsRequest())).pools) == []
    mine = await client.GetPool(pool_pb2.GetPoolRequest(name="pools/mine"))
    assert (mine.state, mine.target_nodes) == (pool_pb2.Pool.ACTIVE, 0)


async def test_unknown_node_is_not_found(client: Client) -> None:
    await client.create("p1")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.GetNode(pool_pb2.GetNodeRequest(name="pools/p1/nodes/node-12345678"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert rpc.error_info(err.value)[0] == "NODE_NOT_FOUND"


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("x-shoal-account", "acct-a"),),
        (("x-shoal-service-token", "wrong"), ("x-shoal-account", "acct-a")),
        "no-account",
    ],
)
async def test_calls_without_the_service_token_and_an_account_are_refused(
    client: Client, config: ClusterConfig, metadata: object
) -> None:
    if metadata == "no-account":
        metadata = (("x-shoal-service-token", config.service_token),)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.pools.CreatePool(_create("p1"), metadata=metadata, timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert list((await client.ListPools(pool_pb2.ListPoolsRequest())).pools) == []


async def test_register_node_refuses_a_bad_join_token(client: Client) -> None:
    # No service token: agents authenticate with their join token alone.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.registry.RegisterNode(
            agent_pb2.RegisterNodeRequest(join_token="guess", node_id="node-1"), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert rpc.error_info(err.value)[0] == "INVALID_JOIN_TOKEN"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.registry.RegisterNode(
            agent_pb2.RegisterNodeRequest(join_token="guess", node_id="../etc"), timeout=10
        )
    assert rpc.error_info(err.value) == ("INVALID_ARGUMENT", "node_id")
