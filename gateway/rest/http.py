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


async def precondition(request: web.Request, read: Callable[[], Awaitable[Versioned]]) -> None:
    """Check a change's conditional headers against the resource as it is now; 412 if one is
    not met. Not atomic with the change that follows: a change by someone else between the
    read and the change is not seen (Shoal keeps no version for these resources to compare in
    the same transaction)."""
    headers = lower_headers(request)
    if conditions.has_conditions(headers):
        current = await read()
        conditions.evaluate(headers, current.etag, current.modified, read=False)
