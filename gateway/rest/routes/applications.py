"""Applications: Azure Batch's list and get on Shoal's ApplicationService."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.rest import listing
from gateway.rest.backend import Caller
from gateway.rest.http import Versioned, caller, entity
from gateway.rest.wire import applications as wire
from shoal.v1 import application_pb2

routes = web.RouteTableDef()

APPLICATION = "applications"


async def _with_versions(call: Caller, app: application_pb2.Application) -> dict[str, Any]:
    versions: list[application_pb2.ApplicationVersion] = []
    token = ""
    while True:
        page = await call(call.backend.applications.ListApplicationVersions,
                          application_pb2.ListApplicationVersionsRequest(
                              parent=app.name, page_size=1000, page_token=token))
        versions.extend(page.versions)
        token = page.next_page_token
        if not token:
            return wire.application_json(app, versions)


@routes.get("/applications")
async def list_applications(request: web.Request) -> web.Response:
    call = caller(request)

    async def fetch(size: int, token: str, flt: str) -> tuple[list[dict[str, Any]], str]:
        page = await call(call.backend.applications.ListApplications,
                          application_pb2.ListApplicationsRequest(page_size=size, page_token=token))
        return [await _with_versions(call, a) for a in page.applications], page.next_page_token

    return await listing.list_page(request, fetch, lambda a: a, schema=wire.APPLICATION_FILTER,
                                   metadata=APPLICATION)


@routes.get("/applications/{application}")
async def get_application(request: web.Request) -> web.Response:
    call = caller(request)
    app = await call(call.backend.applications.GetApplication, application_pb2.GetApplicationRequest(
        name=f"applications/{request.match_info['application']}"))
    served = await _with_versions(call, app)
    return entity(request, Versioned.of(served, app.create_time), APPLICATION)
