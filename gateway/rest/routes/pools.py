"""Pools and their nodes: Azure Batch's operations on Shoal's PoolService."""

from __future__ import annotations

from aiohttp import web

from gateway.rest import listing
from gateway.rest.errors import autoscale_not_supported
from gateway.rest.http import Versioned, base_url, caller, empty, entity, precondition, read_body
from gateway.rest.wire import pools as wire
from shoal.v1 import pool_pb2

routes = web.RouteTableDef()

POOL = "pools"
NODE = "nodes"
POOL_STATES = {azure: [pool_pb2.Pool.State.Name(s)] for s, azure in wire.POOL_STATES.items()}
NODE_STATES: dict[str, list[str]] = {}
for _state, _azure in wire.NODE_STATES.items():
    NODE_STATES.setdefault(_azure, []).append(pool_pb2.Node.State.Name(_state))


def version(pool: pool_pb2.Pool, base: str) -> Versioned:
    return Versioned.of(wire.pool_json(pool, base), pool.create_time, pool.state_transition_time)


def node_version(node: pool_pb2.Node, base: str) -> Versioned:
    return Versioned.of(wire.node_json(node, base), node.create_time, node.state_transition_time)


async def _get(request: web.Request) -> pool_pb2.Pool:
    call = caller(request)
    name = f"pools/{request.match_info['pool']}"
    pool: pool_pb2.Pool = await call(call.backend.pools.GetPool, pool_pb2.GetPoolRequest(name=name))
    return pool


async def _current(request: web.Request) -> Versioned:
    return version(await _get(request), base_url(request))


@routes.post("/pools")
async def add_pool(request: web.Request) -> web.Response:
    call = caller(request)
    create = wire.create_request(await read_body(request))
    pool = await call(call.backend.pools.CreatePool, create, wire.POOL_FIELDS)
    v = version(pool, base_url(request))
    return empty(201, url=v.json["url"], version=v)


@routes.get("/pools")
async def list_pools(request: web.Request) -> web.Response:
    call = caller(request)
    base = base_url(request)

    async def fetch(size: int, token: str, flt: str) -> tuple[list[pool_pb2.Pool], str]:
        page = await call(call.backend.pools.ListPools,
                          pool_pb2.ListPoolsRequest(page_size=size, page_token=token, filter=flt))
        return list(page.pools), page.next_page_token

    return await listing.list_page(request, fetch, lambda p: version(p, base).body(),
                                   schema=wire.POOL_FILTER, metadata=POOL, states=POOL_STATES)


@routes.get("/pools/{pool}", allow_head=False)
async def get_pool(request: web.Request) -> web.Response:
    return entity(request, await _current(request), POOL)


@routes.head("/pools/{pool}")
async def pool_exists(request: web.Request) -> web.Response:
    v = await _current(request)
    return empty(200, version=v)


@routes.delete("/pools/{pool}")
async def delete_pool(request: web.Request) -> web.Response:
    call = caller(request)
    await precondition(request, lambda: _current(request))
    await call(call.backend.pools.DeletePool,
               pool_pb2.DeletePoolRequest(name=f"pools/{request.match_info['pool']}"))
    return empty(202)


@routes.post("/pools/{pool}/resize")
async def resize_pool(request: web.Request) -> web.Response:
    call = caller(request)
    resize = wire.resize_request(request.match_info["pool"], await read_body(request))
    await precondition(request, lambda: _current(request))
    await call(call.backend.pools.ResizePool, resize, wire.POOL_FIELDS)
    return empty(202)


@routes.post("/pools/{pool}/enableautoscale")
@routes.post("/pools/{pool}/disableautoscale")
@routes.post("/pools/{pool}/evaluateautoscale")
async def autoscale(request: web.Request) -> web.Response:
    await _get(request)  # a pool that does not exist is PoolNotFound, as in Azure
    raise autoscale_not_supported()


@routes.post("/pools/{pool}/removenodes")
async def remove_nodes(request: web.Request) -> web.Response:
    call = caller(request)
    body = await read_body(request)
    ids = body.items("nodeList")
    if not ids:
        body.string("nodeList", required=True)
    await precondition(request, lambda: _current(request))
    await call(call.backend.pools.RemoveNodes, pool_pb2.RemoveNodesRequest(
        parent=f"pools/{request.match_info['pool']}", node_ids=[str(i) for i in ids],
        node_deallocation_option=body.choice("nodeDeallocationOption", wire.DEALLOCATION,
                                             pool_pb2.REQUEUE),
    ), {"node_ids": "nodeList"})
    return empty(202)


@routes.get("/pools/{pool}/nodes")
async def list_nodes(request: web.Request) -> web.Response:
    call = caller(request)
    base = base_url(request)
    parent = f"pools/{request.match_info['pool']}"

    async def fetch(size: int, token: str, flt: str) -> tuple[list[pool_pb2.Node], str]:
        page = await call(call.backend.pools.ListNodes, pool_pb2.ListNodesRequest(
            parent=parent, page_size=size, page_token=token, filter=flt))
        return list(page.nodes), page.next_page_token

    return await listing.list_page(request, fetch, lambda n: node_version(n, base).body(),
                                   schema=wire.NODE_FILTER, metadata=NODE, states=NODE_STATES)


def _node_name(request: web.Request) -> str:
    return f"pools/{request.match_info['pool']}/nodes/{request.match_info['node']}"


@routes.get("/pools/{pool}/nodes/{node}")
async def get_node(request: web.Request) -> web.Response:
    call = caller(request)
    node = await call(call.backend.pools.GetNode, pool_pb2.GetNodeRequest(name=_node_name(request)))
    return entity(request, node_version(node, base_url(request)), NODE)


@routes.post("/pools/{pool}/nodes/{node}/reboot")
async def reboot_node(request: web.Request) -> web.Response:
    call = caller(request)
    await call(call.backend.pools.RebootNode, pool_pb2.RebootNodeRequest(name=_node_name(request)))
    return empty(202)


@routes.post("/pools/{pool}/nodes/{node}/disablescheduling")
async def disable_scheduling(request: web.Request) -> web.Response:
    call = caller(request)
    body = await read_body(request, required=False)
    option = body.choice("nodeDisableSchedulingOption", wire.DEALLOCATION, pool_pb2.REQUEUE)
    await call(call.backend.pools.DisableNodeScheduling, pool_pb2.DisableNodeSchedulingRequest(
        name=_node_name(request), node_disable_scheduling_option=option))
    return empty(200)


@routes.post("/pools/{pool}/nodes/{node}/enablescheduling")
async def enable_scheduling(request: web.Request) -> web.Response:
    call = caller(request)
    await call(call.backend.pools.EnableNodeScheduling,
               pool_pb2.EnableNodeSchedulingRequest(name=_node_name(request)))
    return empty(200)
