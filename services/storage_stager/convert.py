"""Protobuf <-> model for the stager, resource names, and the shape of upload streams."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from services.common.errors import invalid
from services.common.ids import parse_name
from services.common.storage_names import check_container_id, check_version_id
from services.common.timeutil import to_timestamp
from services.storage_stager import model
from shoal.agent.v1 import agent_pb2
from shoal.internal.v1 import staging_pb2
from shoal.v1 import application_pb2, storage_pb2, task_pb2

MAX_DATA = 1024 * 1024
SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
Fmt = application_pb2.ApplicationVersion.Format
_FORMATS = {Fmt.ZIP: model.ArchiveFormat.ZIP, Fmt.TAR_GZ: model.ArchiveFormat.TAR_GZ}
_FORMATS_BACK = {v: k for k, v in _FORMATS.items()}
_CATEGORIES = {
    model.Category.USER_ERROR: task_pb2.FailureInfo.USER_ERROR,
    model.Category.SERVER_ERROR: task_pb2.FailureInfo.SERVER_ERROR,
}


# Names


def container_id(name: str, field: str) -> str:
    pattern = "containers/{container}"
    if not name:
        raise invalid(field, f"is required (a name like {pattern!r})")
    head, _, cid = name.partition("/")
    if head != "containers" or not cid or "/" in cid:
        raise invalid(field, f"{name[:80]!r} is not a name like {pattern!r}")
    return check_container_id(cid, field)


def application_id(name: str, field: str = "name") -> str:
    return parse_name(name, "applications/{application}", field)[0]


def version_ids(name: str, field: str = "name") -> tuple[str, str]:
    pattern = "applications/{application}/versions/{version}"
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "applications" or parts[2] != "versions":
        raise invalid(field, f"{name[:80]!r} is not a name like {pattern!r}"
                      if name else f"is required (a name like {pattern!r})")
    app = parse_name("/".join(parts[:2]), "applications/{application}", field)[0]
    return app, check_version_id(parts[3], field)


def archive_format(value: int, field: str = "header.format") -> model.ArchiveFormat:
    fmt = _FORMATS.get(value)  # type: ignore[call-overload]
    if fmt is None:
        raise invalid(field, "is required: ZIP or TAR_GZ")
    return fmt


# Upload streams


DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0


class UploadStream:
    """An upload client stream: the header in the first message, then data, then the SHA-256
    in the last one. `data()` yields the bytes; `sha256()` is valid once they are exhausted."""

    def __init__(self, requests: AsyncIterator[Any]) -> None:
        self._requests = requests
        self._first: Any = None
        self._sha = ""

    async def header(self) -> Any:
        first = await anext(self._requests, None)
        if first is None or not first.HasField("header"):
            raise invalid("header", "is required in the first message of an upload")
        self._first = first
        return first.header

    async def data(self) -> AsyncIterator[bytes]:
        msg = self._first
        while msg is not None:
            if self._sha and msg.data:
                raise invalid("sha256", "must come in the last message, after all the data")
            if msg is not self._first and msg.HasField("header"):
                raise invalid("header", "must be in the first message only")
            if len(msg.data) > MAX_DATA:
                raise invalid("data", f"at most {MAX_DATA} bytes per message, got {len(msg.data)}")
            if msg.sha256:
                self._sha = msg.sha256
            if msg.data:
                yield msg.data
            msg = await anext(self._requests, None)

    async def drain(self, max_bytes: int = DRAIN_BYTES, max_seconds: float = DRAIN_SECONDS) -> None:
        """Read (and drop) what the caller is still sending before refusing the upload. A
        gRPC client still writing when the status arrives may see INTERNAL instead of it
        (grpc/grpc#36066); bounded, so a refused huge upload is not read to its end."""
        async def read() -> None:
            seen = 0
            async for msg in self._requests:
                seen += len(msg.data)
                if seen >= max_bytes:
                    return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(read(), max_seconds)

    def sha256(self) -> str:
        if not self._sha:
            raise invalid("sha256", "is required in the last message: the SHA-256 of the bytes")
        if SHA256_RE.fullmatch(self._sha) is None:
            raise invalid("sha256", f"{self._sha[:80]!r} is not 64 hex digits")
        return self._sha.lower()


# Model -> proto


def container_to_proto(c: model.Container) -> storage_pb2.Container:
    return storage_pb2.Container(name=f"containers/{c.id}", create_time=to_timestamp(c.create_time))


def object_to_proto(o: model.StoredObject) -> storage_pb2.Object:
    return storage_pb2.Object(
        container=f"containers/{o.container}", key=o.key, size=o.size, sha256=o.sha256,
        etag=o.etag, update_time=to_timestamp(o.update_time),
    )


def application_to_proto(a: model.Application) -> application_pb2.Application:
    return application_pb2.Application(
        name=f"applications/{a.id}", display_name=a.display_name,
        default_version=a.default_version, create_time=to_timestamp(a.create_time),
    )


def version_to_proto(v: model.AppVersion) -> application_pb2.ApplicationVersion:
    return application_pb2.ApplicationVersion(
        name=f"applications/{v.app_id}/versions/{v.version}", format=_FORMATS_BACK[v.format],
        size=v.size, sha256=v.sha256, create_time=to_timestamp(v.create_time),
    )


# Staging


def download_spec(s: staging_pb2.DownloadSpec) -> model.DownloadSpec:
    return model.DownloadSpec(
        resource_files=tuple(
            model.ResourceFile(r.container, r.object_key, r.blob_prefix, r.http_url, r.file_path,
                               r.file_mode)
            for r in s.resource_files
        ),
        packages=tuple(
            model.PackageRef(p.application_id, p.version) for p in s.application_packages
        ),
    )


def upload_spec(s: staging_pb2.UploadSpec) -> model.UploadSpec:
    return model.UploadSpec(
        job_uid=s.job_uid, job_id=s.job_id, task_id=s.task_id, attempt_id=s.attempt_id,
        output_files=tuple(
            model.OutputFile(o.file_pattern, o.container, o.path) for o in s.output_files
        ),
        uploads=tuple((u.container, u.key) for u in s.uploads),
    )


def _failure(f: model.Failure) -> task_pb2.FailureInfo:
    return task_pb2.FailureInfo(category=_CATEGORIES[f.category], code=f.code, message=f.message)


def _download(d: model.Download) -> agent_pb2.Download:
    return agent_pb2.Download(url=d.url, file_path=d.file_path, file_mode=d.file_mode,
                              cache_key=d.cache_key, size=d.size, sha256=d.sha256)


def download_grant_to_proto(g: model.DownloadGrant) -> staging_pb2.DownloadGrant:
    if g.failure is not None:
        return staging_pb2.DownloadGrant(failure=_failure(g.failure))
    return staging_pb2.DownloadGrant(
        downloads=[_download(d) for d in g.downloads],
        packages=[
            agent_pb2.PackageGrant(
                application_id=p.application_id, version=p.version,
                format=_FORMATS_BACK[p.format], archive=_download(p.archive),
                is_default=p.is_default,
            )
            for p in g.packages
        ],
    )


def upload_grant_to_proto(g: model.UploadGrant) -> staging_pb2.UploadGrant:
    if g.failure is not None:
        return staging_pb2.UploadGrant(failure=_failure(g.failure))
    return staging_pb2.UploadGrant(urls=list(g.urls))
