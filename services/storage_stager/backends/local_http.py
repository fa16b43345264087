"""The local backend's HTTP server: serves the URLs the stager signed, so agents fetch and store
objects with plain HTTP on both backends.

GET (and HEAD) honour `Range: bytes=N-` and `bytes=N-M`; PUT streams the raw body into a blob.
An expired, altered or unsigned URL is 403. One log line per request (method, key, status):
operators and tests count downloads from it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web

from services.common.timeutil import Clock, wall_clock
from services.storage_stager.backends.base import CHUNK, Chunks, OffsetBeyondEnd
from services.storage_stager.backends.local import LocalBackend
from services.storage_stager.backends.signing import PATH_PREFIX
from services.storage_stager.model import StagingTally

log = structlog.get_logger()
RANGE_RE = re.compile(r"bytes=(\d+)-(\d*)")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)


def _forbidden() -> web.Response:
    return _plain(403, "forbidden: the URL is expired, altered or not signed\n")


class LocalHttpServer:
    def __init__(self, backend: LocalBackend, address: str, clock: Clock = wall_clock,
                 tally: StagingTally | None = None) -> None:
        self._backend = backend
        self.tally = tally or StagingTally()
        host, _, port = address.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        # Bodies are streamed (request.content), never read whole: no client_max_size applies.
        app = web.Application(middlewares=[self._access_log])
        app.router.add_get(PATH_PREFIX + "{key:.+}", self._get, allow_head=True)
        app.router.add_put(PATH_PREFIX + "{key:.+}", self._put)
        # Our middleware writes the access log, as structlog lines like everything else.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host or None, self._port)
        await site.start()
        self.port = self._runner.addresses[0][1] if self._runner.addresses else self._port

    @web.middleware
    async def _access_log(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.match_info.get("key", request.path)
        try:
            resp = await handler(request)
        except web.HTTPException as e:  # no such route or method
            self.tally.request(request.method, e.status)
            log.info("http request", method=request.method, key=key, status=e.status)
            raise
        except OSError as e:  # the client went away mid-transfer
            self.tally.request(request.method, 0)
            log.info("http request", method=request.method, key=key, status=0, error=str(e))
            raise
        self.tally.request(request.method, resp.status)
        log.info("http request", method=request.method, key=key, status=resp.status)
        return resp

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _allowed(self, request: web.Request, key: str) -> bool:
        q = request.query
        return self._backend.signer.check(
            request.method, key, q.get("expires", ""), q.get("sig", ""), self._clock()
        )

    async def _get(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        if not self._allowed(request, key):
            return _forbidden()
        ranged = RANGE_RE.fullmatch(request.headers.get("Range", "").strip())
        start = int(ranged.group(1)) if ranged else 0
        try:
            info, chunks = await self._backend.get(key, start)
        except KeyError:
            return _plain(404, "no such object\n")
        except OffsetBeyondEnd as e:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{e.size}"})
        try:
            last = info.size - 1
            if ranged and ranged.group(2):
                last = min(int(ranged.group(2)), last)
            if ranged and (start >= info.size or last < start):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{info.size}"})
            resp = web.StreamResponse(status=206 if ranged else 200)
            resp.content_length = last - start + 1
            resp.content_type = "application/octet-stream"
            resp.headers["ETag"] = f'"{info.etag}"'
            resp.headers["Accept-Ranges"] = "bytes"
            resp.headers["x-shoal-sha256"] = info.sha256
            if ranged:
                resp.headers["Content-Range"] = f"bytes {start}-{last}/{info.size}"
            await resp.prepare(request)
            if request.method != "HEAD":
                await _send(resp, chunks, last - start + 1, self.tally)
            await resp.write_eof()
            return resp
        finally:
            await chunks.aclose()

    async def _put(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        if not self._allowed(request, key):
            return _forbidden()
        try:
            info = await self._backend.put(key, _body(request, self.tally), None)
        except (ValueError, ConnectionError) as e:
            # The client went away or lied about the length: nothing was stored.
            return _plain(400, f"{e or type(e).__name__}\n")
        return web.Response(status=200, headers={"ETag": f'"{info.etag}"'})


async def _send(resp: web.StreamResponse, chunks: Chunks, length: int,
                tally: StagingTally) -> None:
    left = length
    async for chunk in chunks:
        part = chunk[:left]
        await resp.write(part)
        tally.http_sent_bytes += len(part)
        left -= len(part)
        if left <= 0:
            break


async def _body(request: web.Request, tally: StagingTally) -> AsyncIterator[bytes]:
    """The request body; ValueError when it is shorter or longer than its Content-Length, so a
    cut-off upload never replaces the object (there is no checksum to catch it)."""
    received = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        received += len(chunk)
        tally.http_received_bytes += len(chunk)
        yield chunk
    want = request.content_length
    if want is not None and received != want:
        raise ValueError(f"got {received} bytes of a {want}-byte body")
