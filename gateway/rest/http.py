"""Request and response plumbing the REST face's handlers share: the caller of a request, its
JSON body, Azure's response shapes and headers, entity tags and conditional requests."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.rest import conditions, odata
from gateway.rest.backend import Caller
from gateway.rest.errors import RestError
from gateway.rest.wire.common import Body, etag, has_time, http_date, latest

CONTENT_TYPE = "application/json;odata=minimalmetadata"


def caller(request: web.Request) -> Caller:
    found: Caller = request["caller"]
    return found


def base_url(request: web.Request) -> str:
    """The URL the client reached this service at: nextLinks and `url`s point back there."""
    return f"{request.scheme}://{request.host}"


def lower_headers(request: web.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


async def read_body(request: web.Request, *, required: bool = True) -> Body:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise RestError(400, "MissingRequiredProperty", "The request has no body",
                            (("PropertyName", "body"),))
        return Body({})
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise RestError(400, "InvalidRequestBody", f"The request body is not valid JSON: {e}") from None
    return Body.of(value)


@dataclass(frozen=True)
class Versioned:
    """A resource as served, with its entity tag and when it last changed."""

    json: dict[str, Any]
    etag: str
    modified: datetime | None

    @classmethod
    def of(cls, served: dict[str, Any], *times: Timestamp, tag: str = "",
           modified: Timestamp | None = None) -> Versioned:
        """`tag` and `modified` when the service keeps them; else a hash of what is served and
        the latest of `times` the resource records."""
        when = modified if modified is not None and has_time(modified) else latest(*times)
        return cls(served, tag or etag(served), when.ToDatetime(tzinfo=UTC) if has_time(when) else None)

    @property
    def last_modified(self) -> str | None:
        if self.modified is None:
            return None
        ts = Timestamp()
        ts.FromDatetime(self.modified)
        return http_date(ts)

    def body(self) -> dict[str, Any]:
        out = dict(self.json)
        out["eTag"] = self.etag
        if self.modified is not None:
            out["lastModified"] = self.modified.isoformat(timespec="microseconds").replace("+00:00", "Z")
        return out

    def headers(self) -> dict[str, str]:
        out = {"ETag": self.etag}
        if self.last_modified:
            out["Last-Modified"] = self.last_modified
        return out


def json_response(body: Mapping[str, Any], status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    response = web.Response(status=status, body=json.dumps(body).encode(), headers=headers)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


def empty(status: int, *, url: str | None = None, version: Versioned | None = None) -> web.Response:
    """A success without a body: 201 for a create (with where the resource is), 202 for an
    operation that goes on after the answer, 200 or 204 for one that is done."""
    response = web.Response(status=status)
    if url:
        response.headers["Location"] = url
        response.headers["DataServiceId"] = url
    if version is not None:
        response.headers.update(version.headers())
    return response


def entity(request: web.Request, version: Versioned, metadata: str) -> web.Response:
    """A GET of one resource: conditional headers honoured, `$select` applied."""
    if conditions.evaluate(lower_headers(request), version.etag, version.modified, read=True):
        return web.Response(status=conditions.NOT_MODIFIED, headers=version.headers())
    names = odata.parse_select(request.query.get(odata.SELECT))
    body = {"odata.metadata": f"{base_url(request)}/$metadata#{metadata}/@Element", **version.body()}
    return json_response(odata.select(body, names), headers=version.headers())


async def precondition(request: web.Request, read: Callable[[], Awaitable[Versioned]],
                       skip: tuple[str, ...] = ()) -> None:
    """Check a change's conditional headers against the resource as it is now; 412 if one is
    not met. Not atomic with the change that follows: a change by someone else between the
    read and the change is not seen (Shoal keeps no version for these resources to compare in
    the same transaction)."""
    headers = {k: v for k, v in lower_headers(request).items() if k not in skip}
    if conditions.has_conditions(headers):
        current = await read()
        conditions.evaluate(headers, current.etag, current.modified, read=False)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Resource:
    """One kind of resource of the routes: how a request names it, how it is read, and how it
    is served; the handlers that need nothing more come from here."""

    name: Callable[[web.Request], str]
    """The Shoal name of the request's resource (`jobs/j1`)."""
    get: Callable[[Caller], Any]
    """The Get call that reads it (given the caller: `lambda c: c.backend.jobs.GetJob`)."""
    get_request: Callable[..., Any]
    """That call's request type, made with `name=`."""
    version: Callable[[Any, str], Versioned]
    """The resource as served, with its entity tag (given it and the base URL)."""
    metadata: str
    """Its OData entity set, e.g. `jobs`."""

    async def read(self, request: web.Request) -> Any:
        call = caller(request)
        return await call(self.get(call), self.get_request(name=self.name(request)))

    async def current(self, request: web.Request) -> Versioned:
        return self.version(await self.read(request), base_url(request))

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """GET: the resource, conditional headers and $select honoured."""
        return entity(request, await self.current(request), self.metadata)

    async def exists(self, request: web.Request) -> web.StreamResponse:
        """HEAD: 200 with its ETag, or the error of a Get."""
        return empty(200, version=await self.current(request))

    def create(self, parse: Callable[[Body], Any], rpc: Callable[[Caller], Any],
               fields: Mapping[str, str]) -> Handler:
        """POST to the collection: 201 with where the new resource is and its ETag."""

        async def handle(request: web.Request) -> web.StreamResponse:
            call = caller(request)
            made = await call(rpc(call), parse(await read_body(request)), fields)
            v = self.version(made, base_url(request))
            return empty(201, url=v.json["url"], version=v)

        return handle

    def change(self, rpc: Callable[[Caller], Any], request_type: Callable[..., Any], status: int,
               *, answers: bool = False) -> Handler:
        """A change that only names the resource: check the conditions, call `rpc` with
        `request_type(name=...)`, answer `status` (with the new ETag when it `answers` with
        the resource)."""

        async def handle(request: web.Request) -> web.StreamResponse:
            call = caller(request)
            await precondition(request, lambda: self.current(request))
            answer = await call(rpc(call), request_type(name=self.name(request)))
            return empty(status, version=self.version(answer, base_url(request)) if answers else None)

        return handle
