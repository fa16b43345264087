"""Applications: Shoal's protobuf as Azure Batch's JSON, pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.rest import odata
from gateway.rest.wire.common import last_segment
from shoal.v1 import application_pb2

APPLICATION_FILTER: odata.Schema = {"id": odata.STRING, "displayName": odata.STRING}


def application_json(
    app: application_pb2.Application, versions: Iterable[application_pb2.ApplicationVersion]
) -> dict[str, Any]:
    app_id = last_segment(app.name)
    return {
        "id": app_id,
        "displayName": app.display_name or app_id,
        "versions": [last_segment(v.name) for v in versions],
    }
