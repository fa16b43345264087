"""The dashboard's HTTP server (aiohttp): the login, the pages, the JSON API and its live
streams (Server-Sent Events), and the headers that keep them to themselves.

Routes:
    GET  /login, POST /login (form field `key`), POST /logout
    GET  /, /pools/{pool}, /jobs/{job}, /jobs/{job}/tasks/{task}   the page (static HTML + JS)
    GET  /static/{file}                                            its script and style
    GET  /api/whoami | pools | pools/{pool} | jobs | jobs/{job}
         /api/jobs/{job}/tasks?state=&result=&node=&exit_code=&page_token=&page_size=
         /api/jobs/{job}/tasks/{task} | .../why
    GET  /api/jobs/{job}/events, /api/pools/{pool}/events          live (SSE)
         /api/jobs/{job}/tasks/{task}/log?file=stdout.txt&tail=N   a log as it is written (SSE)
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from gateway.auth import Authenticator
from gateway.dashboard import live
from gateway.dashboard.backend import LOG_TAIL, ApiError, Backend, TaskQuery
from gateway.dashboard.sessions import Session, Sessions
from gateway.dashboard.shared import SharedAnswers
from services.common.errors import ShoalError

log = structlog.get_logger()

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "shoal_session"
PING = 15.0
"""Seconds between keep-alive comments on an idle stream: a closed page is noticed by then."""
MAX_STREAMS = 32
"""Live streams one session may hold open (a page holds one to three)."""
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: with it browsers send `Origin: null` on our own form posts.
    "Referrer-Policy": "same-origin",
}
PAGES = ("/", "/pools/{pool}", "/jobs/{job}", "/jobs/{job}/tasks/{task}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = Callable[[Session, web.Request], Coroutine[Any, Any, Any]]


class Dashboard:
    def __init__(self, backend: Backend, auth: Authenticator, sessions: Sessions,
                 registry: CollectorRegistry | None = None) -> None:
        self.backend = backend
        self._auth = auth
        self.sessions = sessions
        self.feeds = live.Feeds()
        """Live views shared by the pages of an account that follow the same job or pool."""
        self._answers = SharedAnswers()
        """Reads shared by the pages of an account that ask the same within a second."""
        self._runner: web.AppRunner | None = None
        self.port = 0
        registry = registry if registry is not None else CollectorRegistry()
        self._streams = Gauge("shoal_dashboard_streams", "Live dashboard streams open (job "
                              "progress, node maps, logs).", registry=registry)
        sessions_gauge = Gauge("shoal_dashboard_sessions", "Signed-in dashboard sessions.",
                               registry=registry)
        sessions_gauge.set_function(lambda: len(self.sessions))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._signed_in])
        r = app.router
        r.add_get("/login", self._login_page)
        r.add_post("/login", self._login)
        r.add_post("/logout", self._logout)
        for page in PAGES:
            r.add_get(page, self._page)
        r.add_static("/static/", STATIC, append_version=False)
        r.add_get("/api/whoami", self._api(self._whoami))
        r.add_get("/api/pools", self._api(self._shared(lambda s, q: self.backend.pools(s.key))))
        r.add_get("/api/pools/{pool}", self._api(
            lambda s, q: self.backend.pool(s.key, q.match_info["pool"])))
        r.add_get("/api/jobs", self._api(self._shared(
            lambda s, q: self.backend.jobs(s.key, q.query.get("page_token", "")))))
        r.add_get("/api/jobs/{job}", self._api(
            lambda s, q: self.backend.job(s.key, q.match_info["job"])))
        r.add_get("/api/jobs/{job}/tasks", self._api(self._shared(self._tasks)))
        r.add_get("/api/jobs/{job}/tasks/{task}", self._api(
            lambda s, q: self.backend.task(s.key, q.match_info["job"], q.match_info["task"])))
        r.add_get("/api/jobs/{job}/tasks/{task}/why", self._api(
            lambda s, q: self.backend.why(s.key, q.match_info["job"], q.match_info["task"])))
        r.add_get("/api/jobs/{job}/events", self._stream(self._job_events))
        r.add_get("/api/pools/{pool}/events", self._stream(self._node_events))
        r.add_get("/api/jobs/{job}/tasks/{task}/log", self._stream(self._log))
        return app

    async def start(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        # A closed page cancels its handler at once, and with it the gRPC stream it follows.
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, host.strip("[]") or None, int(port)).start()
        self.port = self._runner.addresses[0][1] if self._runner.addresses else int(port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- middleware -------------------------------------------------------------------------

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            e.headers.update(HEADERS)
            raise
        resp.headers.update(HEADERS)
        if request.path.startswith("/api/") or request.path == "/login":
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @web.middleware
    async def _signed_in(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Everything but the login and the static files needs a session; a page without one
        goes to the login, an API call gets 401."""
        path = request.path
        if path == "/login" or path.startswith("/static/"):
            return await handler(request)
        if request.method == "POST" and not _same_origin(request):
            return _error(403, "cross-site request refused", "FORBIDDEN")
        session = self.sessions.get(request.cookies.get(COOKIE, ""))
        if session is None:
            if path.startswith("/api/") or request.method != "GET":
                return _error(401, "not signed in", "UNAUTHENTICATED")
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
        request["session"] = session
        return await handler(request)

    # -- login ------------------------------------------------------------------------------

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "login.html")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        if not _same_origin(request):
            return _error(403, "cross-site request refused", "FORBIDDEN")
        form = await request.post()
        key = str(form.get("key", "")).strip()
        try:
            account = await self._auth.account_for({"authorization": f"Bearer {key}"})
        except ShoalError:
            log.info("dashboard login refused")
            raise web.HTTPSeeOther("/login?failed=1") from None
        session = self.sessions.open(account, key)
        log.info("dashboard login", account=account)
        target = str(request.query.get("next", "/"))
        if not target.startswith("/") or target.startswith("//"):
            target = "/"  # only places on this site
        resp = web.HTTPSeeOther(target)
        resp.set_cookie(COOKIE, session.token, httponly=True, samesite="Strict", path="/")
        raise resp

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.close(request["session"].token)
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    # -- the JSON API -----------------------------------------------------------------------

    def _api(self, answer: Answer) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                return web.json_response(await answer(request["session"], request))
            except ApiError as e:
                if e.status == 401:  # the key stopped working: so does the session
                    self.sessions.close(request["session"].token)
                return _error(e.status, e.message, e.reason)

        return handle

    def _shared(self, answer: Answer) -> Answer:
        """The same read by pages of one account within a second: one call (shared.py)."""
        async def shared(s: Session, request: web.Request) -> Any:
            return await self._answers.get((s.account, request.path_qs),
                                           lambda: answer(s, request))

        return shared

    async def _whoami(self, s: Session, request: web.Request) -> dict[str, Any]:
        return {"account": s.account}

    async def _tasks(self, s: Session, request: web.Request) -> dict[str, Any]:
        q = request.query
        try:
            size = int(q.get("page_size", "50"))
        except ValueError:
            raise ApiError(400, "page_size must be a number", "INVALID_ARGUMENT") from None
        return await self.backend.tasks(s.key, request.match_info["job"], TaskQuery.of(q),
                                        q.get("page_token", ""), size)

    # -- live streams -----------------------------------------------------------------------

    async def _job_events(self, s: Session, request: web.Request) -> AsyncIterator[tuple[str, Any]]:
        job_id = request.match_info["job"]
        async for item in self._follow(s, "job", job_id, self.backend.job_message(s.key, job_id),
                                       lambda: live.job_progress(self.backend, s.key, job_id)):
            yield item

    async def _node_events(self, s: Session, request: web.Request) -> AsyncIterator[tuple[str, Any]]:
        pool_id = request.match_info["pool"]
        async for item in self._follow(s, "pool", pool_id, self.backend.pool_message(s.key, pool_id),
                                       lambda: live.node_map(self.backend, s.key, pool_id)):
            yield item

    async def _follow(
        self, s: Session, kind: str, name: str, check: Awaitable[Any],
        source: Callable[[], AsyncIterator[tuple[str, Any]]],
    ) -> AsyncIterator[tuple[str, Any]]:
        """The account's shared feed of `kind` `name`, once the session's own call with its
        own key (`check`) has read what it follows: a page joins only what it may see."""
        await check
        async for item in self.feeds.follow((s.account, kind, name.lower()), source):
            yield item

    def _log(self, s: Session, request: web.Request) -> AsyncIterator[tuple[str, Any]]:
        q = request.query
        try:
            tail = max(0, min(int(q.get("tail", str(LOG_TAIL))), 100_000))
        except ValueError:
            tail = LOG_TAIL
        return _log_events(self.backend.follow_log(
            s.key, request.match_info["job"], request.match_info["task"],
            q.get("file", "stdout.txt"), tail))

    def _stream(
        self, events: Callable[[Session, web.Request], AsyncIterator[tuple[str, Any]]]
    ) -> Handler:
        """An SSE response carrying `events` ((name, JSON data) pairs), `end` when they end,
        or `failed` (status, error, reason) when their source fails: not `error`, which is
        EventSource's own name for a lost connection."""

        async def handle(request: web.Request) -> web.StreamResponse:
            session: Session = request["session"]
            if session.streams >= MAX_STREAMS:
                return _error(429, f"at most {MAX_STREAMS} live views at once", "TOO_MANY_STREAMS")
            resp = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-store",
                "X-Accel-Buffering": "no"})
            await resp.prepare(request)
            session.streams += 1
            self._streams.inc()
            try:
                await _pump(resp, events(session, request))
            except ApiError as e:
                if e.status == 401:
                    self.sessions.close(session.token)
                await _send(resp, "failed", {"status": e.status, "error": e.message,
                                            "reason": e.reason})
            except (ConnectionResetError, asyncio.CancelledError):
                pass  # the page went away
            finally:
                session.streams -= 1
                self._streams.dec()
            return resp

        return handle


async def _pump(resp: web.StreamResponse, events: AsyncIterator[tuple[str, Any]]) -> None:
    """Write each event as it comes, and a comment when nothing came for PING seconds."""
    it = aiter(events)
    nxt: asyncio.Future[tuple[str, Any]] = asyncio.ensure_future(anext(it))
    try:
        while True:
            done, _ = await asyncio.wait({nxt}, timeout=PING)
            if not done:
                await resp.write(b": ping\n\n")
                continue
            try:
                name, data = nxt.result()
            except StopAsyncIteration:
                await _send(resp, "end", {})
                return
            await _send(resp, name, data)
            nxt = asyncio.ensure_future(anext(it))
    finally:
        nxt.cancel()
        await asyncio.gather(nxt, return_exceptions=True)
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


async def _send(resp: web.StreamResponse, name: str, data: Any) -> None:
    await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())


async def _log_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, Any]]:
    """A log's bytes as text events; a character split between two chunks is kept whole."""
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    async for data in chunks:
        text = decode(data)
        if text:
            yield "log", text
    rest = decode(b"", final=True)
    if rest:
        yield "log", rest


def _error(status: int, message: str, reason: str) -> web.Response:
    return web.json_response({"error": message, "reason": reason}, status=status)


def _same_origin(request: web.Request) -> bool:
    """A POST comes from our own pages: browsers send Origin on cross-site form posts."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"
