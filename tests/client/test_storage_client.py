"""The Python client's storage and application calls against the real suite, on the local
store and on S3 (moto's server): streams in both directions, checksums, offsets, paging, and
what a failed transfer leaves behind."""

from __future__ import annotations

import hashlib
import io
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from shoal import Client, ShoalError, StatusCode
from shoal.cluster_config import StorageConfig
from shoal.suite import LocalSuite
from shoal.v1 import storage_pb2, storage_pb2_grpc
from tests.support import print_logs, start_suite

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["local", "s3"])
def shared_suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalSuite]:
    """One suite per backend: the client must not care which one stores its bytes."""
    storage = None
    if request.param == "s3":
        moto = request.getfixturevalue("moto_s3")
        storage = StorageConfig(
            backend="s3",
            endpoint_url=moto.endpoint_url,
            region=moto.region,
            access_key_id=moto.access_key_id,
            secret_access_key=moto.secret_access_key,
            bucket=f"t-client-{secrets.token_hex(4)}",
        )
    s = start_suite(tmp_path_factory.mktemp(f"client-{request.param}") / "state", storage)
    try:
        yield s
    finally:
        s.stop()
        print_logs(s)


@pytest.fixture
def client(shared_suite: LocalSuite) -> Iterator[Client]:
    with shared_suite.client(timeout=20) as c:
        yield c


@pytest.fixture
def cid(request: pytest.FixtureRequest, client: Client) -> str:
    """A fresh container of the test's own."""
    name = f"c-{hashlib.sha1(request.node.name.encode()).hexdigest()[:12]}"
    client.create_container(name)
    return name


def test_uploads_from_a_path_bytes_and_a_file_object(
    client: Client, cid: str, tmp_path: Path
) -> None:
    data = secrets.token_bytes(2 * MiB + 17)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    seen: list[tuple[int, int | None]] = []
    o = client.upload_object(cid, "from/path", path, on_progress=lambda d, t: seen.append((d, t)))
    assert (o.key, o.size, o.sha256) == ("from/path", len(data), hashlib.sha256(data).hexdigest())
    assert o.container == f"containers/{cid}"
    # One call per 1 MiB message, growing to the whole size.
    assert seen == [(MiB, len(data)), (2 * MiB, len(data)), (len(data), len(data))]

    client.upload_object(cid, "from/bytes", data)
    with open(path, "rb") as f:
        client.upload_object(cid, "from/file", f)
    seen.clear()
    client.upload_object(
        cid, "from/stream", io.BytesIO(data), on_progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1] == (len(data), None)  # a stream of unknown length
    for key in ("from/path", "from/bytes", "from/file", "from/stream"):
        assert client.get_object(cid, key).sha256 == hashlib.sha256(data).hexdigest()
        assert client.read_object(cid, key) == data


def test_empty_objects_and_replacing_one(client: Client, cid: str, tmp_path: Path) -> None:
    o = client.upload_object(cid, "empty", b"")
    assert o.size == 0 and o.sha256 == hashlib.sha256(b"").hexdigest()
    assert client.read_object(cid, "empty") == b""
    client.download_object(cid, "empty", tmp_path / "e")
    assert (tmp_path / "e").read_bytes() == b""
    first = client.upload_object(cid, "k", b"one")
    second = client.upload_object(cid, "k", b"two!")
    assert second.etag != first.etag
    assert client.read_object(cid, "k") == b"two!"


def test_download_writes_through_a_temporary_file_and_checks_it(
    client: Client, cid: str, tmp_path: Path
) -> None:
    data = secrets.token_bytes(3 * MiB + 5)
    client.upload_object(cid, "d/x", data)
    seen: list[tuple[int, int | None]] = []
    target = tmp_path / "new" / "dir" / "x"
    o = client.download_object(cid, "d/x", target, on_progress=lambda d, t: seen.append((d, t)))
    assert target.read_bytes() == data and o.size == len(data)
    assert seen[-1] == (len(data), len(data))
    # From an offset: the rest of the object.
    client.download_object(cid, "d/x", tmp_path / "tail", offset=MiB + 1)
    assert (tmp_path / "tail").read_bytes() == data[MiB + 1 :]
    assert client.read_object(cid, "d/x", offset=len(data)) == b""

    # A failed download leaves the file that was there, and no partial file.
    before = b"keep me"
    (tmp_path / "kept").write_bytes(before)
    with pytest.raises(ShoalError) as caught:
        client.download_object(cid, "d/missing", tmp_path / "kept")
    assert caught.value.code == StatusCode.NOT_FOUND
    with pytest.raises(ShoalError) as caught:
        client.download_object(cid, "d/x", tmp_path / "kept", offset=len(data) + 1)
    assert caught.value.code == StatusCode.INVALID_ARGUMENT
    assert (tmp_path / "kept").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "new", "tail"]
    assert [p.name for p in (tmp_path / "new" / "dir").iterdir()] == ["x"]


def test_a_source_failing_mid_stream_raises_its_error_and_stores_nothing(
    client: Client, cid: str
) -> None:
    client.upload_object(cid, "kept", b"original")

    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            if self.sent >= 2 * MiB:
                raise OSError("disk went away")
            self.sent += n
            return b"x" * n

    with pytest.raises(OSError, match="disk went away"):
        client.upload_object(cid, "kept", Failing())  # type: ignore[arg-type]
    assert client.read_object(cid, "kept") == b"original"
    with pytest.raises(OSError, match="disk went away"):
        client.upload_object(cid, "new", Failing())  # type: ignore[arg-type]
    with pytest.raises(ShoalError) as caught:
        client.get_object(cid, "new")
    assert caught.value.code == StatusCode.NOT_FOUND


def test_the_server_stores_nothing_whose_checksum_does_not_match(
    shared_suite: LocalSuite, client: Client, cid: str
) -> None:
    # The wire contract the client relies on, spoken directly through the gateway.
    def wrong() -> Iterator[storage_pb2.UploadObjectRequest]:
        header = storage_pb2.UploadObjectHeader(container=f"containers/{cid}", key="bad")
        yield storage_pb2.UploadObjectRequest(header=header)
        yield storage_pb2.UploadObjectRequest(data=b"hello")
        yield storage_pb2.UploadObjectRequest(sha256=hashlib.sha256(b"hellO").hexdigest())

    key = shared_suite.client_config.key
    with grpc.insecure_channel(shared_suite.endpoint) as channel:
        stub = storage_pb2_grpc.StorageServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.UploadObject(wrong(), metadata=(("authorization", f"Bearer {key}"),), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ShoalError) as missing:
        client.get_object(cid, "bad")
    assert missing.value.code == StatusCode.NOT_FOUND


def test_listing_pages_through_objects_by_prefix(client: Client, cid: str) -> None:
    keys = [f"p/{i:02d}" for i in range(7)] + ["p0", "q/1"]
    for k in keys:
        client.upload_object(cid, k, k.encode())
    assert [o.key for o in client.list_objects(cid, page_size=2)] == sorted(keys)
    assert [o.key for o in client.list_objects(cid, "p/", page_size=3)] == keys[:7]
    assert [o.key for o in client.list_objects(cid, "nothing")] == []
    names = [c.name for c in client.list_containers(page_size=1)]
    assert f"containers/{cid}" in names and names == sorted(names)
    client.delete_object(cid, "p0")
    assert "p0" not in [o.key for o in client.list_objects(cid)]
    client.delete_container(cid)
    with pytest.raises(ShoalError) as caught:
        client.get_container(cid)
    assert caught.value.code == StatusCode.NOT_FOUND


def test_applications_and_versions(client: Client, tmp_path: Path) -> None:
    app = "tool-" + secrets.token_hex(4)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bin/run", "echo hi\n")
    archive = buf.getvalue()

    # Bytes say nothing about their format: refused before any call.
    with pytest.raises(ShoalError) as caught:
        client.upload_application_version(app, "1", archive)
    assert (caught.value.code, caught.value.field) == (StatusCode.INVALID_ARGUMENT, "format")

    created = client.create_application(app, display_name="Tool")
    assert (created.name, created.display_name) == (f"applications/{app}", "Tool")
    v1 = client.upload_application_version(app, "1", archive, format="zip")
    assert (v1.size, v1.sha256) == (len(archive), hashlib.sha256(archive).hexdigest())
    path = tmp_path / "tool.ZIP"
    path.write_bytes(archive)
    client.upload_application_version(app, "2", path)
    assert [v.name for v in client.list_application_versions(app, page_size=1)] == [
        f"applications/{app}/versions/1",
        f"applications/{app}/versions/2",
    ]
    assert client.set_default_version(app, "2").default_version == "2"
    updated = client.update_application(app, display_name="Renamed")
    assert (updated.display_name, updated.default_version) == ("Renamed", "2")
    assert client.get_application(app).display_name == "Renamed"
    assert app in [a.name.rsplit("/", 1)[-1] for a in client.list_applications()]
    client.delete_application_version(app, "1")
    assert [v.name for v in client.list_application_versions(app)] == [
        f"applications/{app}/versions/2"
    ]
    client.delete_application(app)
    with pytest.raises(ShoalError) as caught:
        client.get_application(app)
    assert caught.value.code == StatusCode.NOT_FOUND
