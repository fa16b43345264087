"""The object store down under a running storage-stager (moto's server killed, then started
again on its port with what it had stored): calls answer UNAVAILABLE with reason
STORAGE_UNAVAILABLE naming the endpoint — not INTERNAL — and work again once it is back."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from services.storage_stager.main import StagerService
from shoal.cluster_config import ClusterConfig, StorageConfig
from shoal.internal.v1 import staging_pb2
from shoal.v1 import storage_pb2, task_pb2
from tests.storage_stager.conftest import Stager
from tests.storage_support import MotoServer


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path / "moto.log", durable=True)
    yield server
    server.stop()


@pytest.fixture
async def stager(tmp_path: Path, moto: MotoServer) -> AsyncIterator[Stager]:
    config = ClusterConfig.new(tmp_path / "state", storage_stager_address="127.0.0.1:0",
                               storage=StorageConfig(
                                   backend="s3", endpoint_url=moto.endpoint_url,
                                   region=moto.region, access_key_id=moto.access_key_id,
                                   secret_access_key=moto.secret_access_key,
                                   bucket=f"t-{secrets.token_hex(6)}"))
    svc = StagerService(config)
    await svc.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as ch:
        yield Stager(ch, config.service_token, "acct")
    await svc.stop()


async def test_the_object_store_down_is_unavailable_and_then_back(
    stager: Stager, moto: MotoServer
) -> None:
    await stager.create_container("inputs")
    await stager.upload("inputs", "a.txt", b"alpha")
    spec = staging_pb2.DownloadSpec(resource_files=[task_pb2.ResourceFile(
        container="inputs", object_key="a.txt", file_path="a.txt")])
    moto.kill()
    failed = await stager.fails("GrantDownloads", staging_pb2.GrantDownloadsRequest(specs=[spec]))
    assert (failed.code, failed.reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")
    assert f"S3 at {moto.endpoint_url} cannot be reached" in failed.details
    listing = await stager.fails("ListObjects", storage_pb2.ListObjectsRequest(
        container="containers/inputs"))
    assert listing.code == grpc.StatusCode.UNAVAILABLE
    moto.restart()
    resp = await stager("GrantDownloads", staging_pb2.GrantDownloadsRequest(specs=[spec]))
    (grant,) = resp.grants
    assert not grant.HasField("failure") and grant.downloads[0].size == 5
