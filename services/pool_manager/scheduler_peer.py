"""The job-scheduler's SchedulerControlService as the pool-manager uses it.

Every call answers whether it got through; a failure (mapped as every peer's is,
`services.common.rpc.peer_error`) is logged once per outage, and the reconcile loop tries
again next round.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import structlog

from services.common.errors import Code, ShoalError
from services.common.rpc import (
    JOB_SCHEDULER,
    SERVICE_TOKEN_HEADER,
    internal_metadata,
    peer_error,
)
from services.pool_manager import convert
from services.pool_manager.model import DeallocationOption, ReportedSession
from shoal.internal.v1 import scheduler_control_pb2 as sc_pb2
from shoal.internal.v1 import scheduler_control_pb2_grpc as sc_grpc

log = structlog.get_logger()


class SchedulerPeer:
    """The job-scheduler's SchedulerControlService as the pool-manager uses it."""

    def __init__(self, channel: grpc.aio.Channel, service_token: str, timeout: float = 5.0) -> None:
        self._stub = sc_grpc.SchedulerControlServiceStub(channel)
        self._token = service_token
        self._timeout = timeout
        self._down = False

    def _failed(self, what: str, err: ShoalError) -> None:
        # Warn once per outage, not twice a second while the scheduler is away.
        level = "debug" if self._down else "warning"
        self._down = True
        getattr(log, level)(f"scheduler call failed: {what}", reason=err.reason, error=err.message)

    def _ok(self) -> None:
        if self._down:
            log.info("scheduler reachable again")
        self._down = False

    async def sessions(self, account: str, pool_id: str) -> dict[str, ReportedSession] | None:
        """The pool's node sessions by node id; None when the scheduler cannot be asked."""
        try:
            resp = await self._stub.ListNodeSessions(
                sc_pb2.ListNodeSessionsRequest(pool_id=pool_id),
                metadata=internal_metadata(self._token, account),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as e:
            err = peer_error(e, JOB_SCHEDULER)
            if err.code == Code.NOT_FOUND:
                return {}
            self._failed("ListNodeSessions", err)
            return None
        self._ok()
        return {s.node_id: convert.session_from_proto(s) for s in resp.sessions}

    async def session_changes(self) -> AsyncIterator[list[tuple[str, str]] | None]:
        """The pools (account, lower-cased id) whose node sessions changed, as they change,
        of every account; None means "any may have changed" (first, and after the
        scheduler's restarts). Ends, or raises grpc.aio.AioRpcError, when the scheduler
        goes away."""
        call = self._stub.WatchNodeSessions(
            sc_pb2.WatchNodeSessionsRequest(), metadata=((SERVICE_TOKEN_HEADER, self._token),))
        try:
            async for m in call:
                yield None if m.resync else [(p.account, p.pool_id) for p in m.pools]
        finally:
            call.cancel()

    async def remove_nodes(
        self, account: str, pool_id: str, node_ids: list[str], option: DeallocationOption
    ) -> bool:
        """True once the scheduler took the nodes out of scheduling."""
        try:
            await self._stub.RemoveNodes(
                sc_pb2.RemoveNodesRequest(
                    pool_id=pool_id, node_ids=node_ids, option=convert.option_to_proto(option)
                ),
                metadata=internal_metadata(self._token, account),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as e:
            err = peer_error(e, JOB_SCHEDULER)
            if err.code == Code.NOT_FOUND:
                return True  # the scheduler never knew them: nothing to take out
            self._failed("RemoveNodes", err)
            return False
        self._ok()
        return True

    async def set_node_scheduling(
        self, account: str, pool_id: str, node_id: str, enabled: bool,
        option: DeallocationOption,
    ) -> bool:
        """True once the scheduler applied the setting (it keeps it across reconnects)."""
        try:
            await self._stub.SetNodeScheduling(
                sc_pb2.SetNodeSchedulingRequest(
                    pool_id=pool_id, node_id=node_id, enabled=enabled,
                    option=convert.option_to_proto(option),
                ),
                metadata=internal_metadata(self._token, account),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as e:
            self._failed("SetNodeScheduling", peer_error(e, JOB_SCHEDULER))
            return False
        self._ok()
        return True
