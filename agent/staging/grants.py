"""Waiting for the scheduler's StagingGrants.

An attempt that needs URLs asks through `request()`: the StagingRequest goes to the session
(which sends it with the next batch and resends it after every reconnect until granted) and
the attempt waits, bounded, for the matching grant that `deliver()` hands over when it
arrives. A grant nobody waits for (a duplicate, an attempt already ended) is ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent.session import StagingKey, staging_key
from agent.staging import (
    OUTPUT_FILE_UPLOAD_FAILED,
    RESOURCE_FILE_DOWNLOAD_FAILED,
    SERVER_ERROR,
    StagingFailure,
)
from shoal.agent.v1 import agent_pb2

GRANT_TIMEOUT = 600.0
"""Seconds an attempt waits for a grant (reconnects included) before it fails."""


def failure_code(kind: int) -> str:
    return OUTPUT_FILE_UPLOAD_FAILED if kind == agent_pb2.UPLOADS else RESOURCE_FILE_DOWNLOAD_FAILED


class GrantBroker:
    def __init__(
        self,
        send: Callable[[agent_pb2.StagingRequest], None],
        withdraw: Callable[[StagingKey], None],
        *,
        timeout: float = GRANT_TIMEOUT,
    ) -> None:
        """`send` queues a request for sending (and resending); `withdraw(key)` stops that
        once the wait is over, granted or not."""
        self._send = send
        self._withdraw = withdraw
        self.timeout = timeout
        self._waiting: dict[StagingKey, asyncio.Future[agent_pb2.StagingGrant]] = {}

    async def request(
        self, req: agent_pb2.StagingRequest, within: float | None = None
    ) -> agent_pb2.StagingGrant:
        """The grant for `req`. Raises StagingFailure (transient: the scheduler may be away)
        when none comes `within` seconds (default: the broker's timeout)."""
        timeout = self.timeout if within is None else within
        key = staging_key(req)
        if key in self._waiting:
            raise ValueError(f"attempt {req.attempt_id!r} already waits for this grant")
        fut: asyncio.Future[agent_pb2.StagingGrant] = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        try:
            self._send(req)
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            what = "uploads" if req.kind == agent_pb2.UPLOADS else "downloads"
            raise StagingFailure(
                SERVER_ERROR, failure_code(req.kind),
                f"no staging grant for the attempt's {what} within {timeout:.1f} s",
                transient=True,
            ) from None
        finally:
            del self._waiting[key]
            self._withdraw(key)

    def deliver(self, grant: agent_pb2.StagingGrant) -> bool:
        """Hand a grant to its waiting attempt; False when nobody waits for it."""
        fut = self._waiting.get(staging_key(grant))
        if fut is None or fut.done():
            return False
        fut.set_result(grant)
        return True

    @property
    def waiting(self) -> list[StagingKey]:
        return list(self._waiting)
