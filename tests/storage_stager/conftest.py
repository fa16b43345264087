"""Fixtures for the storage-stager's tests: the real service in-process on port 0, on the
local backend or on moto's S3 server over real HTTP (the same tests run on both), and clients
that call it over real gRPC with the service token and an account, as the gateway does."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from services.common import rpc
from services.storage_stager.main import StagerService
from shoal.cluster_config import ClusterConfig, StorageConfig
from shoal.internal.v1 import staging_pb2, staging_pb2_grpc
from shoal.v1 import application_pb2 as app_pb2
from shoal.v1 import application_pb2_grpc as app_grpc
from shoal.v1 import storage_pb2, storage_pb2_grpc, task_pb2
from tests.storage_support import MotoServer, free_port

MIB = 1024 * 1024


class Clock:
    """Wall time plus an offset the test can move, for URL expiry without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def storage_config(kind: str, moto: MotoServer | None) -> StorageConfig:
    if kind == "local":
        return StorageConfig(http_address=f"127.0.0.1:{free_port()}")
    assert moto is not None
    return StorageConfig(
        backend="s3", endpoint_url=moto.endpoint_url, region=moto.region,
        access_key_id=moto.access_key_id, secret_access_key=moto.secret_access_key,
        bucket=f"t-{secrets.token_hex(6)}", prefix="shoal",
    )


@pytest.fixture(params=["local", "s3"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def moto(backend_kind: str, request: pytest.FixtureRequest) -> MotoServer | None:
    """moto's server when the test runs on S3 (started once per session, on first use)."""
    return request.getfixturevalue("moto_s3") if backend_kind == "s3" else None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config(tmp_path: Path, backend_kind: str, moto: MotoServer | None) -> ClusterConfig:
    return ClusterConfig.new(tmp_path / "state", storage_stager_address="127.0.0.1:0",
                             storage=storage_config(backend_kind, moto))


@pytest.fixture
async def service(config: ClusterConfig, clock: Clock) -> AsyncIterator[StagerService]:
    svc = StagerService(config, clock=clock)
    await svc.start()
    yield svc
    await svc.stop()


@pytest.fixture
async def channel(service: StagerService) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as ch:
        yield ch


@dataclass
class Failed:
    code: grpc.StatusCode
    reason: str
    field: str | None
    details: str


class Stager:
    """Calls the stager as the gateway (public services) or the scheduler (staging) would."""

    def __init__(self, channel: grpc.aio.Channel, token: str, account: str) -> None:
        self.account = account
        self.md = rpc.internal_metadata(token, account)
        self.storage = storage_pb2_grpc.StorageServiceStub(channel)
        self.apps = app_grpc.ApplicationServiceStub(channel)
        self.staging = staging_pb2_grpc.StagingServiceStub(channel)

    async def __call__(self, method: str, request: object) -> Any:
        """A unary call's response, or a server stream's messages as a list."""
        for stub in (self.storage, self.apps, self.staging):
            if hasattr(stub, method):
                call = getattr(stub, method)(request, metadata=self.md, timeout=30)
                if isinstance(call, grpc.aio.UnaryStreamCall):
                    return [m async for m in call]
                return await call
        raise AttributeError(method)

    async def fails(self, method: str, request: object) -> Failed:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await self(method, request)
        reason, field = rpc.error_info(err.value)
        return Failed(err.value.code(), reason, field, err.value.details() or "")

    async def create_container(self, cid: str) -> storage_pb2.Container:
        req = storage_pb2.CreateContainerRequest(container_id=cid)
        return await self.storage.CreateContainer(req, metadata=self.md, timeout=30)

    async def upload(self, container: str, key: str, data: bytes, *, chunk: int = MIB,
                     sha256: str | None = None) -> storage_pb2.Object:
        sha = hashlib.sha256(data).hexdigest() if sha256 is None else sha256
        header = storage_pb2.UploadObjectHeader(container=f"containers/{container}", key=key)
        msgs = [storage_pb2.UploadObjectRequest(header=header)]
        msgs += [storage_pb2.UploadObjectRequest(data=data[i:i + chunk])
                 for i in range(0, len(data), chunk)]
        msgs.append(storage_pb2.UploadObjectRequest(sha256=sha))
        return await self.storage.UploadObject(_stream(msgs), metadata=self.md, timeout=60)

    async def upload_fails(self, container: str, key: str, data: bytes, **kw: object) -> Failed:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await self.upload(container, key, data, **kw)  # type: ignore[arg-type]
        reason, field = rpc.error_info(err.value)
        return Failed(err.value.code(), reason, field, err.value.details() or "")

    async def download(self, container: str, key: str, offset: int = 0
                       ) -> tuple[storage_pb2.Object, bytes, list[int]]:
        """The object's metadata, its bytes from `offset`, and the size of each data message."""
        req = storage_pb2.DownloadObjectRequest(container=f"containers/{container}", key=key,
                                                offset=offset)
        first: storage_pb2.Object | None = None
        parts: list[bytes] = []
        async for msg in self.storage.DownloadObject(req, metadata=self.md, timeout=60):
            if first is None:
                first = msg.object
                assert not msg.data
            else:
                parts.append(msg.data)
        assert first is not None
        return first, b"".join(parts), [len(p) for p in parts]

    async def keys(self, container: str, prefix: str = "", page_size: int = 0) -> list[str]:
        out: list[str] = []
        token = ""
        for _ in range(100):
            page = await self.storage.ListObjects(storage_pb2.ListObjectsRequest(
                container=f"containers/{container}", prefix=prefix, page_size=page_size,
                page_token=token), metadata=self.md, timeout=30)
            if page_size:
                assert len(page.objects) <= page_size
            out += [o.key for o in page.objects]
            token = page.next_page_token
            if not token:
                return out
        raise AssertionError("paging did not end")

    async def create_app(self, app_id: str, display_name: str = "") -> app_pb2.Application:
        req = app_pb2.CreateApplicationRequest(
            application_id=app_id, application=app_pb2.Application(display_name=display_name))
        return await self.apps.CreateApplication(req, metadata=self.md, timeout=30)

    async def upload_version(self, app_id: str, version: str, data: bytes,
                             fmt: int = app_pb2.ApplicationVersion.ZIP,
                             sha256: str | None = None) -> app_pb2.ApplicationVersion:
        sha = hashlib.sha256(data).hexdigest() if sha256 is None else sha256
        header = app_pb2.UploadApplicationVersionHeader(
            parent=f"applications/{app_id}", version_id=version, format=fmt)  # type: ignore[arg-type]
        msgs = [app_pb2.UploadApplicationVersionRequest(header=header)]
        msgs += [app_pb2.UploadApplicationVersionRequest(data=data[i:i + MIB])
                 for i in range(0, len(data), MIB)]
        msgs.append(app_pb2.UploadApplicationVersionRequest(sha256=sha))
        return await self.apps.UploadApplicationVersion(_stream(msgs), metadata=self.md,
                                                        timeout=60)

    async def version_fails(self, *args: object, **kw: object) -> Failed:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await self.upload_version(*args, **kw)  # type: ignore[arg-type]
        reason, field = rpc.error_info(err.value)
        return Failed(err.value.code(), reason, field, err.value.details() or "")

    async def read_log(self, job_uid: str, job: str, task: str, attempt: str, file: str,
                       offset: int = 0) -> list[task_pb2.TaskFileChunk]:
        req = staging_pb2.ReadTaskLogRequest(job_uid=job_uid, job_id=job, task_id=task,
                                             attempt_id=attempt, file=file, offset=offset)
        return [c async for c in self.staging.ReadTaskLog(req, metadata=self.md, timeout=30)]


async def _stream(msgs: Iterable[object]) -> AsyncIterator[object]:
    for m in msgs:
        yield m


@pytest.fixture
def client(channel: grpc.aio.Channel, config: ClusterConfig) -> Stager:
    return Stager(channel, config.service_token, "acct-a")


@pytest.fixture
def other(channel: grpc.aio.Channel, config: ClusterConfig) -> Stager:
    return Stager(channel, config.service_token, "acct-b")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client, as agents use for both backends."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


async def http_get(http: aiohttp.ClientSession, url: str,
                   headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with http.get(url, headers=headers) as r:
        return r.status, await r.read()


async def http_put(http: aiohttp.ClientSession, url: str, data: bytes) -> int:
    # S3 presigned PUTs need Content-Length (aiohttp sets it for bytes) and a raw body type.
    async with http.put(url, data=data,
                        headers={"Content-Type": "application/octet-stream"}) as r:
        await r.read()
        return r.status
