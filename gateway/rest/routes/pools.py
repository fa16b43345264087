"""Pools and their nodes: Azure Batch's operations on Shoal's PoolService."""

from __future__ import annotations

from aiohttp import web

from gateway.rest import conditions, listing
from gateway.rest.errors import autoscale_not_supported
from gateway.rest.http import (
    Resource,
    Versioned,
    base_url,
    caller,
    empty,
    precondition,
    read_body,
)
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
    return Versioned.of(wire.pool_json(pool, base), pool.create_time, pool.state_transition_time,
                        tag=pool.etag, modified=pool.update_time)


def node_version(node: pool_pb2.Node, base: str) -> Versioned:
    return Versioned.of(wire.node_json(node, base), node.create_time, node.state_transition_time)


POOLS = Resource(lambda request: f"pools/{request.match_info['pool']}",
                 lambda c: c.backend.pools.GetPool, pool_pb2.GetPoolRequest, version, POOL)
NODES = Resource(
    lambda request: f"pools/{request.match_info['pool']}/nodes/{request.match_info['node']}",
    lambda c: c.backend.pools.GetNode, pool_pb2.GetNodeRequest, node_version, NODE,
)

routes.post("/pools")(POOLS.create(wire.create_request, lambda c: c.backend.pools.CreatePool,
                                   wire.POOL_FIELDS))
routes.get("/pools/{pool}", allow_head=False)(POOLS.serve)
routes.head("/pools/{pool}")(POOLS.exists)
routes.delete("/pools/{pool}")(POOLS.change(lambda c: c.backend.pools.DeletePool,
                                            pool_pb2.DeletePoolRequest, 202))
routes.get("/pools/{pool}/nodes/{node}")(NODES.serve)
routes.post("/pools/{pool}/nodes/{node}/reboot")(NODES.change(
    lambda c: c.backend.pools.RebootNode, pool_pb2.RebootNodeRequest, 202))
routes.post("/pools/{pool}/nodes/{node}/enablescheduling")(NODES.change(
    lambda c: c.backend.pools.EnableNodeScheduling, pool_pb2.EnableNodeSchedulingRequest, 200))


routes.get("/pools")(listing.lister(
    POOLS, lambda c: c.backend.pools.ListPools,
    lambda _, size, token, flt: pool_pb2.ListPoolsRequest(page_size=size, page_token=token, filter=flt),
    "pools", schema=wire.POOL_FILTER, states=POOL_STATES))


@routes.patch("/pools/{pool}")
async def patch_pool(request: web.Request) -> web.Response:
    return await _update(request, replace=False)


@routes.post("/pools/{pool}/updateproperties")
async def update_pool_properties(request: web.Request) -> web.Response:
    return await _update(request, replace=True)


async def _update(request: web.Request, *, replace: bool) -> web.Response:
    """Pool - Patch and Update Properties on UpdatePool, If-Match checked in the same step as
    the change. Update Properties answers 204, Patch 200, as in Azure."""
    call = caller(request)
    update = wire.update_request(request.match_info["pool"], await read_body(request), replace=replace)
    await precondition(request, lambda: POOLS.current(request), skip=("if-match",))
    update.if_match = request.headers.get("If-Match", "")
    if update.update_mask.paths:
        pool = await call(call.backend.pools.UpdatePool, update, wire.POOL_FIELDS)
    else:
        pool = await POOLS.read(request)  # nothing to change: still a 404 or 412 where due
        conditions.evaluate({"if-match": update.if_match}, pool.etag, None, read=False)
    return empty(204 if replace else 200, version=version(pool, base_url(request)))


@routes.post("/pools/{pool}/resize")
async def resize_pool(request: web.Request) -> web.Response:
    call = caller(request)
    resize = wire.resize_request(request.match_info["pool"], await read_body(request))
    await precondition(request, lambda: POOLS.current(request))
    await call(call.backend.pools.ResizePool, resize, wire.POOL_FIELDS)
    return empty(202)


@routes.post("/pools/{pool}/enableautoscale")
@routes.post("/pools/{pool}/disableautoscale")
@routes.post("/pools/{pool}/evaluateautoscale")
async def autoscale(request: web.Request) -> web.Response:
    await POOLS.read(request)  # a pool that does not exist is PoolNotFound, as in Azure
    raise autoscale_not_supported()


@routes.post("/pools/{pool}/removenodes")
async def remove_nodes(request: web.Request) -> web.Response:
    call = caller(request)
    body = await read_body(request)
    ids = body.items("nodeList")
    if not ids:
        body.string("nodeList", required=True)
    await precondition(request, lambda: POOLS.current(request))
    await call(call.backend.pools.RemoveNodes, pool_pb2.RemoveNodesRequest(
        parent=f"pools/{request.match_info['pool']}", node_ids=[str(i) for i in ids],
        node_deallocation_option=body.choice("nodeDeallocationOption", wire.DEALLOCATION,
                                             pool_pb2.REQUEUE),
    ), {"node_ids": "nodeList"})
    return empty(202)


routes.get("/pools/{pool}/nodes")(listing.lister(
    NODES, lambda c: c.backend.pools.ListNodes,
    lambda request, size, token, flt: pool_pb2.ListNodesRequest(
        parent=f"pools/{request.match_info['pool']}", page_size=size, page_token=token, filter=flt),
    "nodes", schema=wire.NODE_FILTER, states=NODE_STATES))


@routes.post("/pools/{pool}/nodes/{node}/disablescheduling")
async def disable_scheduling(request: web.Request) -> web.Response:
    call = caller(request)
    body = await read_body(request, required=False)
    option = body.choice("nodeDisableSchedulingOption", wire.DEALLOCATION, pool_pb2.REQUEUE)
    await call(call.backend.pools.DisableNodeScheduling, pool_pb2.DisableNodeSchedulingRequest(
        name=NODES.name(request), node_disable_scheduling_option=option))
    return empty(200)

