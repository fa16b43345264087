"""Races between a write in flight and a delete, on both backends: container and application
ids are reused, and what an earlier incarnation was still writing must never show up in the
new one (nor answer as if it had been stored). Also concurrent writers of one key and of one
application's default version."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import grpc
import pytest

from services.storage_stager.main import StagerService
from shoal.agent.v1 import agent_pb2
from shoal.internal.v1 import staging_pb2
from shoal.v1 import application_pb2 as app_pb2
from shoal.v1 import storage_pb2, task_pb2
from tests.storage_support import MotoServer
from tests.support import eventually

from .conftest import MIB, Stager, http_get, http_put
from .test_applications import make_zip
from .test_staging import grant_downloads, grant_uploads

NOT_FOUND = grpc.StatusCode.NOT_FOUND
ZIP = app_pb2.ApplicationVersion.ZIP


class Feed:
    """A client stream the test writes into while the call is open."""

    def __init__(self) -> None:
        self._q: asyncio.Queue[object] = asyncio.Queue()

    def send(self, *msgs: object) -> None:
        for m in msgs:
            self._q.put_nowait(m)

    def end(self) -> None:
        self._q.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[object]:
        while (m := await self._q.get()) is not None:
            yield m


def put_started(service: StagerService, moto: MotoServer | None) -> Callable[[], bool]:
    """Whether the backend is writing an upload: the local backend's temporary blob exists,
    or S3 has been asked to start a multipart upload (the first 8 MiB part is on its way)."""
    if moto is None:
        tmp = service.config.storage.root(service.config.state_dir) / "tmp"
        return lambda: tmp.exists() and any(tmp.iterdir())
    bucket = service.config.storage.bucket
    return lambda: moto.requests("POST", f"/{bucket}/") > 0


async def backend_keys(service: StagerService, prefix: str) -> list[str]:
    """Every key the backend holds under `prefix`, whatever the stager's records say."""
    return [o.key for o in await service.backend.list(prefix, "", 100)]


async def test_upload_in_flight_when_its_container_is_deleted(
    client: Stager, service: StagerService, moto: MotoServer | None
) -> None:
    await client.create_container("data")
    data = os.urandom(10 * MIB)
    feed = Feed()
    header = storage_pb2.UploadObjectHeader(container="containers/data", key="late.bin")
    feed.send(storage_pb2.UploadObjectRequest(header=header),
              *(storage_pb2.UploadObjectRequest(data=data[i * MIB:(i + 1) * MIB])
                for i in range(9)))
    up = asyncio.ensure_future(client.storage.UploadObject(aiter(feed), metadata=client.md,
                                                           timeout=60))
    await eventually(put_started(service, moto), "the upload to reach the backend")

    await client("DeleteContainer", storage_pb2.DeleteContainerRequest(name="containers/data"))
    await client.create_container("data")
    feed.send(storage_pb2.UploadObjectRequest(data=data[9 * MIB:]),
              storage_pb2.UploadObjectRequest(sha256=hashlib.sha256(data).hexdigest()))
    feed.end()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await up
    assert err.value.code() == NOT_FOUND and "container" in (err.value.details() or "")
    assert await client.keys("data") == []
    # Nor is it left behind where nobody could see or delete it.
    assert await backend_keys(service, "acct-a/containers/") == []


async def test_put_through_a_grant_after_its_container_is_deleted(
    client: Stager, http: aiohttp.ClientSession
) -> None:
    await client.create_container("out")
    await client.upload("out", "r.txt", b"old")
    spec = staging_pb2.UploadSpec(
        job_uid="7", job_id="j", task_id="t", attempt_id="a1",
        output_files=[task_pb2.OutputFile(file_pattern="r.txt", container="out")],
        uploads=[agent_pb2.UploadWanted(container="out", key="r.txt")])
    (put,) = await grant_uploads(client, spec)
    (get,) = await grant_downloads(client, staging_pb2.DownloadSpec(resource_files=[
        task_pb2.ResourceFile(container="out", object_key="r.txt", file_path="r.txt")]))

    await client("DeleteContainer", storage_pb2.DeleteContainerRequest(name="containers/out"))
    await client.create_container("out")
    await client.upload("out", "r.txt", b"new")
    # URLs stay valid for their own (deleted) container; they cannot reach the new one.
    assert (await http_get(http, get.downloads[0].url))[0] == 404
    assert await http_put(http, put.urls[0], b"late output") == 200
    assert await client.keys("out") == ["r.txt"]
    _, body, _ = await client.download("out", "r.txt")
    assert body == b"new"
    await client("DeleteObject", storage_pb2.DeleteObjectRequest(container="containers/out",
                                                                 key="r.txt"))
    assert await client.keys("out") == []


async def test_version_upload_in_flight_when_its_application_is_deleted(
    client: Stager, service: StagerService
) -> None:
    await client.create_app("tool")
    archive = make_zip({"run.sh": b"#!/bin/sh\n" + os.urandom(2 * MIB)})
    feed = Feed()
    header = app_pb2.UploadApplicationVersionHeader(parent="applications/tool",
                                                    version_id="1.0", format=ZIP)
    feed.send(app_pb2.UploadApplicationVersionRequest(header=header),
              app_pb2.UploadApplicationVersionRequest(data=archive[:MIB]))
    up = asyncio.ensure_future(client.apps.UploadApplicationVersion(
        aiter(feed), metadata=client.md, timeout=60))
    spool = Path(service.config.state_dir) / "stager-tmp"
    await eventually(lambda: any(spool.glob("upload-*")), "the version upload to be received")

    await client("DeleteApplication", app_pb2.DeleteApplicationRequest(name="applications/tool"))
    await client.create_app("tool")
    feed.send(*(app_pb2.UploadApplicationVersionRequest(data=archive[i:i + MIB])
                for i in range(MIB, len(archive), MIB)),
              app_pb2.UploadApplicationVersionRequest(sha256=hashlib.sha256(archive).hexdigest()))
    feed.end()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await up
    assert err.value.code() == NOT_FOUND and "application" in (err.value.details() or "")
    listed = await client("ListApplicationVersions",
                          app_pb2.ListApplicationVersionsRequest(parent="applications/tool"))
    assert list(listed.versions) == []
    assert await backend_keys(service, "acct-a/apps/") == []
    # The id is usable as ever: the same version uploads into the new application.
    v = await client.upload_version("tool", "1.0", archive)
    assert v.name == "applications/tool/versions/1.0"


@pytest.mark.parametrize("backend_kind", ["s3"], indirect=True)
async def test_concurrent_multipart_uploads_keep_the_checksum_with_the_bytes(
    client: Stager,
) -> None:
    await client.create_container("data")
    for _ in range(5):
        a, b = os.urandom(9 * MIB), os.urandom(9 * MIB)
        await asyncio.gather(client.upload("data", "k.bin", a), client.upload("data", "k.bin", b))
        obj, body, _ = await client.download("data", "k.bin")
        assert body in (a, b)
        assert obj.sha256 == hashlib.sha256(body).hexdigest()


async def test_default_version_never_names_a_deleted_version(client: Stager) -> None:
    archive = make_zip({"run.sh": b"#!/bin/sh\n"})
    for i in range(10):
        app = f"tool{i}"
        await client.create_app(app)
        await client.upload_version(app, "1", archive)
        await client.upload_version(app, "2", archive)
        await asyncio.gather(
            client("UpdateApplication", app_pb2.UpdateApplicationRequest(
                name=f"applications/{app}", default_version="1")),
            client("DeleteApplicationVersion", app_pb2.DeleteApplicationVersionRequest(
                name=f"applications/{app}/versions/1")),
            client("UpdateApplication", app_pb2.UpdateApplicationRequest(
                name=f"applications/{app}", display_name=f"Tool {i}")),
            return_exceptions=True,
        )
        got = await client("GetApplication",
                           app_pb2.GetApplicationRequest(name=f"applications/{app}"))
        assert got.default_version == ""  # version 1 is gone, whichever call went first
        assert got.display_name == f"Tool {i}"  # and no call undid another's change
