"""The pool-manager as the scheduler sees it: what a job needs to know of its pool."""

from __future__ import annotations

from typing import NamedTuple

import grpc

from services.common.rpc import POOL_MANAGER, internal_metadata, peer_error
from shoal.v1 import pool_pb2, pool_pb2_grpc

TIMEOUT = 10.0


class PoolInfo(NamedTuple):
    id: str
    """As the pool's owner spells it."""
    pack: bool
    """Its node fill type is PACK (else SPREAD)."""
    slots_per_node: int
    deleting: bool


class PoolPeer:
    def __init__(self, channel: grpc.aio.Channel, service_token: str) -> None:
        self._stub = pool_pb2_grpc.PoolServiceStub(channel)
        self._token = service_token

    async def __call__(self, account: str, pool_id: str) -> PoolInfo:
        """The pool; ShoalError NOT_FOUND (POOL_NOT_FOUND) when the account has none of that
        id, UNAVAILABLE (POOL_MANAGER_UNAVAILABLE) when the pool-manager cannot say."""
        try:
            p = await self._stub.GetPool(
                pool_pb2.GetPoolRequest(name=f"pools/{pool_id}"),
                metadata=internal_metadata(self._token, account), timeout=TIMEOUT)
        except grpc.aio.AioRpcError as e:
            raise peer_error(e, POOL_MANAGER, "cannot check the pool") from None
        return PoolInfo(p.name.split("/")[1], p.node_fill_type == pool_pb2.PACK,
                        p.task_slots_per_node, p.state == pool_pb2.Pool.DELETING)
