"""Azure Batch's List calls over Shoal's: `maxresults`, `$filter`, `$select` and
`odata.nextLink`, whose `$skiptoken` carries Shoal's page token.

The service filters what it can (states, `Filter.states`); the rest of a `$filter` is applied
here to each item as served. So a page never runs past what was asked, each read of the
service asks for no more items than the page still lacks; a page that the filter leaves short
after `MAX_READS` reads is answered as it is, with its nextLink (OData lets a page be short).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from aiohttp import web

from gateway.rest import odata
from gateway.rest.backend import Caller
from gateway.rest.http import Handler, Resource, base_url, caller, json_response

T = TypeVar("T")

SKIPTOKEN = "$skiptoken"
MAX_READS = 20
"""Reads of the service one page may take when the filter drops most of what they return."""

Fetch = Callable[[int, str, str], Awaitable[tuple[list[T], str]]]
"""(page size, Shoal page token, Shoal filter) -> (items, next page token)."""


def service_fetch(call: Caller, rpc: Any, make: Callable[[int, str, str], Any], field: str) -> Fetch[Any]:
    """A Fetch of a Shoal List call: `make(page size, page token, filter)` is its request,
    `field` the repeated field of its answer."""

    async def fetch(size: int, token: str, flt: str) -> tuple[list[Any], str]:
        page = await call(rpc, make(size, token, flt))
        return list(getattr(page, field)), page.next_page_token

    return fetch


def lister(resource: Resource, rpc: Callable[[Caller], Any],
           make: Callable[[web.Request, int, str, str], Any], field: str, *,
           schema: odata.Schema, states: Mapping[str, Iterable[str]] | None = None) -> Handler:
    """A List handler over a Shoal List call: `make(request, page size, page token, filter)`
    is its request, `field` the repeated field of its answer, each item served as `resource`
    serves it."""

    async def handle(request: web.Request) -> web.StreamResponse:
        call = caller(request)
        base = base_url(request)
        fetch = service_fetch(call, rpc(call), lambda size, token, flt: make(request, size, token, flt), field)
        return await list_page(request, fetch, lambda item: resource.version(item, base).body(),
                               schema=schema, metadata=resource.metadata, states=states)

    return handle


def shoal_filter(
    flt: odata.Filter | None, states: Mapping[str, Iterable[str]] | None
) -> str | None:
    """The filter the service can apply: the Shoal states (`states` maps Azure's state names
    to Shoal's) the `$filter` admits. "" for all; None when it admits none."""
    if flt is None or states is None:
        return ""
    every = frozenset(states)
    admitted = flt.states("state", every)
    if admitted == every:
        return ""
    wanted = sorted({s for azure in admitted for s in states[azure]})
    return " OR ".join(f"state = {s}" for s in wanted) if wanted else None


async def list_page(
    request: web.Request,
    fetch: Fetch[T],
    to_json: Callable[[T], dict[str, Any]],
    *,
    schema: odata.Schema,
    metadata: str,
    states: Mapping[str, Iterable[str]] | None = None,
) -> web.Response:
    query = request.query
    size = odata.parse_maxresults(query.get(odata.MAXRESULTS))
    flt = odata.parse_filter(query.get(odata.FILTER), schema)
    names = odata.parse_select(query.get(odata.SELECT))
    pushed = shoal_filter(flt, states)
    token = query.get(SKIPTOKEN, "")
    found: list[dict[str, Any]] = []
    reads = 0
    while pushed is not None:
        items, token = await fetch(size - len(found), token, pushed)
        reads += 1
        for item in items:
            served = to_json(item)
            if flt is None or flt(served):
                found.append(served)
        if not token or len(found) >= size or reads >= MAX_READS:
            break
    if pushed is None:
        token = ""
    base = base_url(request)
    body: dict[str, Any] = {
        "odata.metadata": f"{base}/$metadata#{metadata}",
        "value": [odata.select(item, names) for item in found],
    }
    if token:
        body["odata.nextLink"] = next_link(request, token)
    return json_response(body)


def next_link(request: web.Request, token: str) -> str:
    """This request's URL for the page after `token`: the same options, a new $skiptoken."""
    params = [(k, v) for k, v in request.query.items() if k not in (SKIPTOKEN, "timeOut")]
    params.append((SKIPTOKEN, token))
    return f"{base_url(request)}{request.rel_url.raw_path}?{urlencode(params, quote_via=quote)}"
