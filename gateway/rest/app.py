"""The REST face's HTTP server: every request is given a request id, authenticated with Azure
Batch's Shared Key, checked for an api-version, routed, and answered in Azure's shapes — an
error of any kind as Azure's error body."""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from gateway.auth import Authenticator
from gateway.rest import shared_key
from gateway.rest.backend import DEFAULT_TIMEOUT, Backend, Caller
from gateway.rest.errors import RestError, error_body, invalid_query
from gateway.rest.http import base_url, json_response, lower_headers
from gateway.rest.routes import applications, jobs, pools, tasks
from shoal.cluster_config import RestConfig

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BACKEND = web.AppKey("backend", Backend)
AUTH = web.AppKey("auth", Authenticator)
MAX_BODY = 4 * 1024 * 1024
"""Bytes of a request body; Azure's own limit for an add-collection body is 1 MB."""
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.\d+\.\d+)?")


@web.middleware
async def envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request ids, client-request-id, and every failure as Azure's error body."""
    request_id = str(uuid.uuid4())
    # Bound for this request only: a keep-alive connection serves its requests in one task.
    with structlog.contextvars.bound_contextvars(rpc=f"REST {request.method}", request_id=request_id):
        response = await _answer(request, handler, request_id)
    response.headers["request-id"] = request_id
    response.headers["DataServiceVersion"] = "3.0"
    client_id = request.headers.get("client-request-id")
    if client_id and request.headers.get("return-client-request-id", "").lower() == "true":
        response.headers["client-request-id"] = client_id
    return response


async def _answer(request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
    try:
        return await handler(request)
    except RestError as e:
        return _error(request, e, request_id)
    except web.HTTPException as e:
        return _error(request, _http_error(request, e), request_id)
    except Exception:  # noqa: BLE001 - the one place every REST failure is answered
        log.exception("REST request crashed", path=request.path)
        return _error(request, RestError(500, "InternalError",
                                         "internal error; see the gateway's log"), request_id)


def _http_error(request: web.Request, e: web.HTTPException) -> RestError:
    if e.status == 405:
        return RestError(405, "UnsupportedHttpVerb",
                         f"Shoal does not serve {request.method} on {request.path}")
    if e.status == 413:
        return RestError(413, "RequestBodyTooLarge",
                         f"The request body is larger than {MAX_BODY} bytes")
    if e.status == 404:
        return RestError(400, "InvalidUri",
                         f"{request.path} is not a resource Shoal's Batch REST API serves; see "
                         "the README's 'Azure Batch REST API' for what it covers")
    return RestError(e.status, "InvalidRequest", e.reason)


def _error(request: web.Request, e: RestError, request_id: str) -> web.Response:
    if e.status >= 500:
        log.warning("REST request failed", status=e.status, code=e.code, error=e.message)
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    body = error_body(e, base_url(request), request_id, now)
    if request.method == "HEAD":
        return web.Response(status=e.status)
    return json_response(body, e.status)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Shared Key, then the api-version; the handler acts for the account the key is of."""
    headers = lower_headers(request)
    query = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)
    account_name, signature = shared_key.parse_authorization(headers.get("authorization", ""))
    shared_key.request_time(headers, datetime.now(UTC))
    found = await request.app[AUTH].key_of(account_name)
    if found is None or not shared_key.verify(
        found[1], signature, account_name, request.method, headers, request.rel_url.raw_path, query
    ):
        raise shared_key.mismatch(account_name)
    account = found[0]
    md5 = headers.get("content-md5")
    if md5:
        # Only the headers are signed; a client that sends Content-MD5 has its body checked too.
        body = await request.read()
        if base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
            raise RestError(400, "Md5Mismatch", "The body does not match its Content-MD5",
                            (("HeaderName", "Content-MD5"),))
    version = request.query.get("api-version")
    if not version:
        raise RestError(400, "MissingRequiredQueryParameter",
                        "The query parameter api-version is required",
                        (("QueryParameterName", "api-version"),))
    if not _API_VERSION.fullmatch(version):
        raise invalid_query("api-version", version, "must be a Batch API version such as 2025-06-01")
    backend = request.app[BACKEND]
    request["caller"] = Caller(backend, account, _timeout(request))
    with structlog.contextvars.bound_contextvars(account=account):
        async with backend.admitted(account):
            return await handler(request)


def _timeout(request: web.Request) -> float:
    raw = request.query.get("timeOut")
    if raw is None:
        return DEFAULT_TIMEOUT
    if not raw.isdigit() or int(raw) == 0:
        raise invalid_query("timeOut", raw, "must be a number of seconds, 1 or more")
    # Azure uses the default for anything longer than it.
    return min(float(raw), DEFAULT_TIMEOUT)


def make_app(backend: Backend, auth: Authenticator) -> web.Application:
    app = web.Application(middlewares=[envelope, authenticate], client_max_size=MAX_BODY)
    app[BACKEND] = backend
    app[AUTH] = auth
    for module in (pools, jobs, tasks, applications):
        app.add_routes(module.routes)
    return app


def tls_context(config: RestConfig) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    return context


async def start(config: RestConfig, backend: Backend, auth: Authenticator) -> web.AppRunner | None:
    """Serve the REST face as `config` says; None when it is turned off."""
    if not config.address:
        return None
    host, _, port = config.address.rpartition(":")
    runner = web.AppRunner(make_app(backend, auth), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=tls_context(config))
    await site.start()
    log.info("REST face listening", address=config.address, endpoint=config.endpoint)
    return runner
