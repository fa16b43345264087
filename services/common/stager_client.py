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
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)
"""Backoff while the stager answers UNAVAILABLE (its object store down): ~4 s, then the
caller hears STORAGE_UNAVAILABLE (an agent waits and asks again, with its own backoff)."""
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class StagingUnavailable(ShoalError):
    """A grant or a log deletion the stager did not serve — it could not be reached, or it
    refused the call; the message says how. UNAVAILABLE with reason STORAGE_UNAVAILABLE:
    whoever relays can only try again later."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.UNAVAILABLE, STORAGE_STAGER.unavailable, message)


class StagingClient:
    def __init__(self, channel: grpc.aio.Channel, service_token: str, *,
                 grant_wait: float = GRANT_TIMEOUT) -> None:
        """`grant_wait`: seconds a grant waits for a stager that is down (tests shorten it)."""
        self._stub = staging_pb2_grpc.StagingServiceStub(channel)
        self._token = service_token
        self._grant_wait = grant_wait

    async def _call(self, method, request, account: str, *,  # type: ignore[no-untyped-def]
                    wait: bool = False):
        """`wait`: while the stager is down (a restart), wait for it, up to `grant_wait`,
        instead of failing at once — a grant then follows within a reconnect (≤ 2 s) of its
        return, where backing off would notice it late."""
        md = internal_metadata(self._token, account)
        for delay in (*RETRY_DELAYS, None):
            try:
                return await method(request, metadata=md, wait_for_ready=wait,
                                    timeout=self._grant_wait if wait else GRANT_TIMEOUT)
            except grpc.aio.AioRpcError as e:
                waited = wait and e.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                if e.code() not in RETRYABLE or delay is None or waited:
                    # Nothing the stager says is the relaying caller's to pass on.
                    raise StagingUnavailable(
                        peer_error(e, STORAGE_STAGER, relay=()).message) from None
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def grant_downloads(
        self, account: str, specs: Sequence[staging_pb2.DownloadSpec]
    ) -> list[staging_pb2.DownloadGrant]:
        resp = await self._call(
            self._stub.GrantDownloads, staging_pb2.GrantDownloadsRequest(specs=specs), account,
            wait=True)
        return list(resp.grants)

    async def grant_uploads(
        self, account: str, specs: Sequence[staging_pb2.UploadSpec]
    ) -> list[staging_pb2.UploadGrant]:
        resp = await self._call(
            self._stub.GrantUploads, staging_pb2.GrantUploadsRequest(specs=specs), account,
            wait=True)
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
