"""A client of the storage-stager's internal StagingService, for the job-scheduler (attempt
grants, stored logs) and the pool-manager (node setup grants).

Callers only relay: they know which attempt or node needs what; the stager knows storage and
signs. Bytes never pass through them on the task path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc
import structlog

from services.common.errors import Code, ShoalError
from services.common.rpc import STORAGE_STAGER, internal_metadata, peer_error
from shoal.internal.v1 import staging_pb2, staging_pb2_grpc
from shoal.v1 import task_pb2

log = structlog.get_logger()

GRANT_TIMEOUT = 30.0
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Backoff while the stager is unavailable (a restart): ~16 s before the call fails, for
callers that do not try again themselves."""
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
CONNECT_WAIT = 2.0
"""Seconds a call that is not retried waits for a stager that is not connected (one that is
restarting is back within this of its return: the channel's reconnect backoff is at most
2 s)."""


class StagingUnavailable(ShoalError):
    """A grant or a log deletion the stager did not serve — it could not be reached, or it
    refused the call; the message says how. UNAVAILABLE with reason STORAGE_UNAVAILABLE:
    whoever relays can only try again later."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.UNAVAILABLE, STORAGE_STAGER.unavailable, message)


class StagingClient:
    def __init__(self, channel: grpc.aio.Channel, service_token: str, *,
                 connect_wait: float = CONNECT_WAIT) -> None:
        self._channel = channel
        self._stub = staging_pb2_grpc.StagingServiceStub(channel)
        self._token = service_token
        self._connect_wait = connect_wait

    async def _call(self, method, request, account: str, *,  # type: ignore[no-untyped-def]
                    retry: bool = True):
        """`retry`: with backoff while the stager is unavailable (~16 s). Without, a stager
        that is not connected is waited for briefly (CONNECT_WAIT) and the call made once:
        for callers that try again themselves — an agent waiting out a storage outage asks
        again through the scheduler, and hears at once what is down."""
        md = internal_metadata(self._token, account)
        if not retry:
            await self._connected()
        for delay in (*RETRY_DELAYS, None) if retry else (None,):
            try:
                return await method(request, metadata=md, timeout=GRANT_TIMEOUT)
            except grpc.aio.AioRpcError as e:
                if e.code() not in RETRYABLE or delay is None:
                    # Nothing the stager says is the relaying caller's to pass on.
                    raise StagingUnavailable(
                        peer_error(e, STORAGE_STAGER, relay=()).message) from None
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _connected(self) -> None:
        if self._channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
            return
        try:
            await asyncio.wait_for(self._channel.channel_ready(), self._connect_wait)
        except TimeoutError:
            raise StagingUnavailable(
                f"the {STORAGE_STAGER.name} is unavailable (not reachable for "
                f"{self._connect_wait:g}s)") from None

    async def grant_downloads(
        self, account: str, specs: Sequence[staging_pb2.DownloadSpec], *, retry: bool = True
    ) -> list[staging_pb2.DownloadGrant]:
        resp = await self._call(
            self._stub.GrantDownloads, staging_pb2.GrantDownloadsRequest(specs=specs), account,
            retry=retry)
        return list(resp.grants)

    async def grant_uploads(
        self, account: str, specs: Sequence[staging_pb2.UploadSpec], *, retry: bool = True
    ) -> list[staging_pb2.UploadGrant]:
        resp = await self._call(
            self._stub.GrantUploads, staging_pb2.GrantUploadsRequest(specs=specs), account,
            retry=retry)
        return list(resp.grants)

    async def read_log(
        self, account: str, req: staging_pb2.ReadTaskLogRequest
    ) -> AsyncIterator[task_pb2.TaskFileChunk]:
        """Chunks of an uploaded log. ShoalError(NOT_FOUND, LOG_NOT_FOUND) when the agent
        uploaded none; failures as `peer_error` maps them (UNAVAILABLE, STORAGE_UNAVAILABLE)."""
        call = self._stub.ReadTaskLog(
            req, metadata=internal_metadata(self._token, account), timeout=GRANT_TIMEOUT * 4)
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as e:
            raise peer_error(e, STORAGE_STAGER, "the task's logs cannot be read from storage now"
                             ) from None
        finally:
            call.cancel()

    async def delete_job_logs(self, account: str, job_id: str, job_pk: int) -> None:
        await self._call(self._stub.DeleteJobLogs,
                         staging_pb2.DeleteJobLogsRequest(job_id=job_id, job_uid=str(job_pk)),
                         account)
