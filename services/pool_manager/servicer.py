"""The pool-manager's grpc.aio servicers: convert the request, await the app, convert back.

Errors are ShoalErrors raised below; `services.common.rpc.ServiceInterceptor` maps them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
from google.protobuf import empty_pb2

from services.common import rpc
from services.common.errors import invalid
from services.common.paging import PageRequest
from services.pool_manager import convert
from services.pool_manager.app import PoolManager
from services.pool_manager.model import DeallocationOption
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.v1 import pool_pb2, pool_pb2_grpc

Ctx: TypeAlias = grpc.aio.ServicerContext


class PoolServicer(pool_pb2_grpc.PoolServiceServicer):
    def __init__(self, app: PoolManager) -> None:
        self._app = app

    async def CreatePool(self, request: pool_pb2.CreatePoolRequest, context: Ctx) -> pool_pb2.Pool:
        new = convert.new_pool(request)
        return convert.pool_to_proto(await self._app.create_pool(rpc.account(), new))

    async def GetPool(self, request: pool_pb2.GetPoolRequest, context: Ctx) -> pool_pb2.Pool:
        view = await self._app.get_pool(rpc.account(), convert.pool_id(request.name))
        return convert.pool_to_proto(view)

    async def ListPools(
        self, request: pool_pb2.ListPoolsRequest, context: Ctx
    ) -> pool_pb2.ListPoolsResponse:
        want = PageRequest.of(request.page_size, request.page_token)
        views, token = await self._app.list_pools(rpc.account(), want, request.filter)
        return pool_pb2.ListPoolsResponse(
            pools=[convert.pool_to_proto(v) for v in views], next_page_token=token
        )

    async def ResizePool(self, request: pool_pb2.ResizePoolRequest, context: Ctx) -> pool_pb2.Pool:
        pool_id = convert.pool_id(request.name)
        option = convert.option_from_proto(request.node_deallocation_option)
        view = await self._app.resize_pool(rpc.account(), pool_id, request.target_nodes, option)
        return convert.pool_to_proto(view)

    async def UpdatePool(self, request: pool_pb2.UpdatePoolRequest, context: Ctx) -> pool_pb2.Pool:
        pool_id = convert.pool_id(request.name)
        changes = convert.pool_changes(request)
        view = await self._app.update_pool(rpc.account(), pool_id, changes, request.if_match)
        return convert.pool_to_proto(view)

    async def DeletePool(self, request: pool_pb2.DeletePoolRequest, context: Ctx) -> empty_pb2.Empty:
        await self._app.delete_pool(rpc.account(), convert.pool_id(request.name))
        return empty_pb2.Empty()

    async def ListNodes(
        self, request: pool_pb2.ListNodesRequest, context: Ctx
    ) -> pool_pb2.ListNodesResponse:
        pool_id = convert.pool_id(request.parent, "parent")
        want = PageRequest.of(request.page_size, request.page_token)
        # Taken first: the page reflects every change up to it (maybe more).
        rev = await self._app.revision(rpc.account())
        views, token = await self._app.list_nodes(rpc.account(), pool_id, want, request.filter)
        return pool_pb2.ListNodesResponse(
            nodes=[convert.node_to_proto(v) for v in views], next_page_token=token, revision=rev
        )

    async def GetNode(self, request: pool_pb2.GetNodeRequest, context: Ctx) -> pool_pb2.Node:
        pool_id, node_id = convert.node_ids(request.name)
        rev = await self._app.revision(rpc.account())
        node = convert.node_to_proto(await self._app.get_node(rpc.account(), pool_id, node_id))
        node.revision = rev
        return node

    async def WatchNodes(
        self, request: pool_pb2.WatchNodesRequest, context: Ctx
    ) -> AsyncIterator[pool_pb2.WatchNodesResponse]:
        pool_id = convert.pool_id(request.parent, "parent")
        if request.from_revision < 0:
            raise invalid("from_revision", "must not be negative")
        async for changes, revision in self._app.watch_nodes(
            rpc.account(), pool_id, request.from_revision
        ):
            yield convert.node_events(changes, revision)

    async def DisableNodeScheduling(
        self, request: pool_pb2.DisableNodeSchedulingRequest, context: Ctx
    ) -> pool_pb2.Node:
        pool_id, node_id = convert.node_ids(request.name)
        option = convert.option_from_proto(
            request.node_disable_scheduling_option, "node_disable_scheduling_option")
        view = await self._app.nodes.set_scheduling(rpc.account(), pool_id, node_id, False, option)
        return convert.node_to_proto(view)

    async def EnableNodeScheduling(
        self, request: pool_pb2.EnableNodeSchedulingRequest, context: Ctx
    ) -> pool_pb2.Node:
        pool_id, node_id = convert.node_ids(request.name)
        view = await self._app.nodes.set_scheduling(
            rpc.account(), pool_id, node_id, True, DeallocationOption.REQUEUE)
        return convert.node_to_proto(view)

    async def RebootNode(self, request: pool_pb2.RebootNodeRequest, context: Ctx) -> pool_pb2.Node:
        pool_id, node_id = convert.node_ids(request.name)
        return convert.node_to_proto(await self._app.nodes.reboot(rpc.account(), pool_id, node_id))

    async def RemoveNodes(self, request: pool_pb2.RemoveNodesRequest, context: Ctx) -> pool_pb2.Pool:
        pool_id = convert.pool_id(request.parent, "parent")
        option = convert.option_from_proto(request.node_deallocation_option)
        view = await self._app.nodes.remove(rpc.account(), pool_id, list(request.node_ids), option)
        return convert.pool_to_proto(view)


class NodeRegistryServicer(agent_pb2_grpc.NodeRegistryServiceServicer):
    """Open to agents without the service token: the join token is their credential."""

    def __init__(self, app: PoolManager) -> None:
        self._app = app

    async def RegisterNode(
        self, request: agent_pb2.RegisterNodeRequest, context: Ctx
    ) -> agent_pb2.RegisterNodeResponse:
        reg = await self._app.register_node(request.join_token, request.node_id, request.hostname)
        return agent_pb2.RegisterNodeResponse(
            node=reg.node_name,
            credential=reg.credential,
            scheduler_address=reg.scheduler_address,
            task_slots=reg.task_slots,
            application_packages=reg.packages,
            setup_failure=reg.setup_failure,
            start_task=reg.start_task,
        )
