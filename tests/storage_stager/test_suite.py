"""The stager inside the real suite (`LocalSuite`, four processes), on both backends: objects
go in and out through the gateway, and a staging URL works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from shoal.cluster_config import StorageConfig
from shoal.internal.v1 import staging_pb2
from shoal.suite import LocalSuite
from shoal.v1 import storage_pb2, storage_pb2_grpc, task_pb2
from tests.storage_support import MotoServer
from tests.support import FAST, print_logs

from .conftest import Stager, http_get, storage_config


@pytest.fixture
def suite_with_storage(tmp_path: Path, backend_kind: str, moto: MotoServer | None
                       ) -> Iterator[LocalSuite]:
    # None: the suite's default, the local backend on a free port.
    storage: StorageConfig | None = None if backend_kind == "local" else storage_config("s3", moto)
    s = LocalSuite(tmp_path / "state", gateway_port=0, pool_manager_port=0, scheduler_port=0,
                   stager_port=0, metrics_port=0, dashboard_port=0, timing=FAST,
                   storage=storage)
    s.start()
    try:
        yield s
    finally:
        s.stop()
        print_logs(s)


async def test_objects_through_the_gateway_and_a_staging_url(
    suite_with_storage: LocalSuite, backend_kind: str
) -> None:
    s = suite_with_storage
    assert s.config.storage.backend == backend_kind
    if backend_kind == "local":
        assert not s.config.storage.http_address.endswith(":0")
    md = (("authorization", f"Bearer {s.client_config.key}"),)
    async with grpc.aio.insecure_channel(s.endpoint) as gw, \
            grpc.aio.insecure_channel(s.config.storage_stager_address) as internal, \
            aiohttp.ClientSession() as http:
        storage = storage_pb2_grpc.StorageServiceStub(gw)
        await storage.CreateContainer(storage_pb2.CreateContainerRequest(container_id="inputs"),
                                      metadata=md, timeout=30)

        async def upload() -> object:
            yield storage_pb2.UploadObjectRequest(header=storage_pb2.UploadObjectHeader(
                container="containers/inputs", key="hello.txt"))
            yield storage_pb2.UploadObjectRequest(data=b"hello, ")
            yield storage_pb2.UploadObjectRequest(data=b"world")
            yield storage_pb2.UploadObjectRequest(
                sha256="09ca7e4eaa6e8ae9c7d261167129184883644d07dfba7cbfbc4c8a2e08360d5b")

        obj = await storage.UploadObject(upload(), metadata=md, timeout=30)
        assert (obj.key, obj.size) == ("hello.txt", 12)
        got = [m async for m in storage.DownloadObject(storage_pb2.DownloadObjectRequest(
            container="containers/inputs", key="hello.txt"), metadata=md, timeout=30)]
        assert b"".join(m.data for m in got) == b"hello, world"

        stager = Stager(internal, s.config.service_token, s.client_config.account)
        resp = await stager("GrantDownloads", staging_pb2.GrantDownloadsRequest(specs=[
            staging_pb2.DownloadSpec(resource_files=[task_pb2.ResourceFile(
                container="inputs", object_key="hello.txt", file_path="h.txt")])]))
        assert await http_get(http, resp.grants[0].downloads[0].url) == (200, b"hello, world")
