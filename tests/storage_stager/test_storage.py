"""StorageService over real gRPC, on the local backend and on S3 (moto): containers, objects,
streaming in and out, checksums, paging, accounts and bad input."""

from __future__ import annotations

import hashlib
import os

import grpc

from services.common import rpc
from services.storage_stager.main import StagerService
from shoal.cluster_config import ClusterConfig
from shoal.v1 import storage_pb2
from tests.storage_support import MotoServer

from .conftest import MIB, Stager

NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def test_containers_create_get_list_page_delete(client: Stager) -> None:
    for cid in ["delta", "alpha", "echo", "charlie", "bravo"]:
        made = await client.create_container(cid)
        assert made.name == f"containers/{cid}" and made.create_time.seconds > 0
    got = await client("GetContainer", storage_pb2.GetContainerRequest(name="containers/echo"))
    assert got.name == "containers/echo"

    names: list[str] = []
    token = ""
    for _ in range(10):
        page = await client("ListContainers",
                            storage_pb2.ListContainersRequest(page_size=2, page_token=token))
        assert len(page.containers) <= 2
        names += [c.name.split("/")[1] for c in page.containers]
        token = page.next_page_token
        if not token:
            break
    assert names == ["alpha", "bravo", "charlie", "delta", "echo"]

    dup = await client.fails("CreateContainer", storage_pb2.CreateContainerRequest(container_id="echo"))
    assert (dup.code, dup.reason) == (grpc.StatusCode.ALREADY_EXISTS, "CONTAINER_ALREADY_EXISTS")

    await client("DeleteContainer", storage_pb2.DeleteContainerRequest(name="containers/echo"))
    gone = await client.fails("GetContainer", storage_pb2.GetContainerRequest(name="containers/echo"))
    assert (gone.code, gone.reason) == (NOT_FOUND, "CONTAINER_NOT_FOUND")
    again = await client.fails("DeleteContainer",
                               storage_pb2.DeleteContainerRequest(name="containers/echo"))
    assert again.reason == "CONTAINER_NOT_FOUND"


async def test_deleting_a_container_deletes_its_objects(client: Stager) -> None:
    await client.create_container("data")
    await client.create_container("keep")
    for k in ["a.txt", "dir/b.txt", "dir/sub/c.txt"]:
        await client.upload("data", k, k.encode())
    await client.upload("keep", "a.txt", b"kept")
    await client("DeleteContainer", storage_pb2.DeleteContainerRequest(name="containers/data"))
    await client.create_container("data")  # same id again: starts empty
    assert await client.keys("data") == []
    _, body, _ = await client.download("keep", "a.txt")
    assert body == b"kept"


async def test_objects_crud_prefix_listing_and_paging(client: Stager) -> None:
    await client.create_container("inputs")
    keys = ["b.txt", "a.txt", "dir/x.bin", "dir/sub/y.bin", "dir2/z", "dir/w.bin", "é/ü.txt"]
    for k in keys:
        obj = await client.upload("inputs", k, f"content of {k}".encode())
        assert (obj.container, obj.key) == ("containers/inputs", k)
        assert obj.sha256 == hashlib.sha256(f"content of {k}".encode()).hexdigest()
        assert obj.size == len(f"content of {k}".encode()) and obj.etag

    assert await client.keys("inputs") == sorted(keys)
    assert await client.keys("inputs", page_size=2) == sorted(keys)
    assert await client.keys("inputs", prefix="dir/") == ["dir/sub/y.bin", "dir/w.bin", "dir/x.bin"]
    assert await client.keys("inputs", prefix="dir/", page_size=1) == [
        "dir/sub/y.bin", "dir/w.bin", "dir/x.bin"]
    assert await client.keys("inputs", prefix="dir") == [
        "dir/sub/y.bin", "dir/w.bin", "dir/x.bin", "dir2/z"]
    assert await client.keys("inputs", prefix="nothing/") == []

    got = await client("GetObject", storage_pb2.GetObjectRequest(container="containers/inputs",
                                                                 key="dir/x.bin"))
    assert got.size == len(b"content of dir/x.bin") and got.update_time.seconds > 0
    assert got.sha256 == hashlib.sha256(b"content of dir/x.bin").hexdigest()

    replaced = await client.upload("inputs", "dir/x.bin", b"new content")
    assert replaced.etag != got.etag and replaced.size == len(b"new content")
    _, body, _ = await client.download("inputs", "dir/x.bin")
    assert body == b"new content"

    await client("DeleteObject", storage_pb2.DeleteObjectRequest(container="containers/inputs",
                                                                 key="dir/x.bin"))
    missing = await client.fails("GetObject", storage_pb2.GetObjectRequest(
        container="containers/inputs", key="dir/x.bin"))
    assert (missing.code, missing.reason) == (NOT_FOUND, "OBJECT_NOT_FOUND")
    again = await client.fails("DeleteObject", storage_pb2.DeleteObjectRequest(
        container="containers/inputs", key="dir/x.bin"))
    assert again.reason == "OBJECT_NOT_FOUND"
    assert "dir/x.bin" not in await client.keys("inputs")


async def stored_key(service: StagerService, prefix: str) -> str:
    """The backend key of the one object under `prefix` (which names no container uid)."""
    (info,) = await service.backend.list(prefix, "", 2)
    return info.key


async def test_multi_mib_upload_streamed_in_chunks(
    client: Stager, backend_kind: str, moto: MotoServer | None, config: ClusterConfig,
    service: StagerService,
) -> None:
    """17 MiB in 256 KiB messages: more than two 8 MiB parts on S3 (a multipart upload)."""
    data = os.urandom(17 * MIB + 123)
    await client.create_container("big")
    obj = await client.upload("big", "blob.bin", data, chunk=256 * 1024)
    assert obj.size == len(data) and obj.sha256 == hashlib.sha256(data).hexdigest()

    meta, body, sizes = await client.download("big", "blob.bin")
    assert body == data and meta.sha256 == obj.sha256
    assert all(s == MIB for s in sizes[:-1]) and 0 < sizes[-1] <= MIB  # even 1 MiB messages

    tail_meta, tail, _ = await client.download("big", "blob.bin", offset=16 * MIB + 5)
    assert tail == data[16 * MIB + 5:] and tail_meta.size == len(data)
    if backend_kind == "s3":
        assert moto is not None
        key = await stored_key(service, "acct-a/containers/big")
        parts = moto.requests("PUT", f"/{config.storage.bucket}/shoal/{key}?")
        assert parts >= 3  # upload parts of the multipart upload


async def test_checksum_mismatch_stores_nothing(
    client: Stager, backend_kind: str, config: ClusterConfig, moto: MotoServer | None,
    service: StagerService,
) -> None:
    await client.create_container("cc1")
    bad = await client.upload_fails("cc1", "new.txt", b"hello", sha256="0" * 64)
    assert (bad.code, bad.reason, bad.field) == (INVALID, "CHECKSUM_MISMATCH", "sha256")
    assert await client.keys("cc1") == []

    await client.upload("cc1", "kept.txt", b"version one")
    bad = await client.upload_fails("cc1", "kept.txt", b"version two", sha256="1" * 64)
    assert bad.reason == "CHECKSUM_MISMATCH"
    # A large replacement too (a multipart upload on S3, aborted).
    big = os.urandom(9 * MIB)
    bad = await client.upload_fails("cc1", "kept.txt", big, sha256=hashlib.sha256(b"x").hexdigest())
    assert bad.reason == "CHECKSUM_MISMATCH"
    meta, body, _ = await client.download("cc1", "kept.txt")
    assert body == b"version one" and meta.size == len(b"version one")
    assert await client.keys("cc1") == ["kept.txt"]

    missing = await client.upload_fails("cc1", "x.txt", b"abc", sha256="")
    assert (missing.code, missing.field) == (INVALID, "sha256")
    assert await client.keys("cc1") == ["kept.txt"]
    if backend_kind == "local":
        tmp = config.storage.root(config.state_dir) / "tmp"
        assert list(tmp.iterdir()) == []  # no partial upload left behind
    else:
        assert moto is not None  # the multipart upload was aborted, not left to cost storage
        # Read the log directly: werkzeug colours non-200 lines (204 here), which
        # MotoServer.requests() does not see past.
        key = await stored_key(service, "acct-a/containers/cc1")
        path = f"/{config.storage.bucket}/shoal/{key}?uploadId="
        aborts = [x for x in moto.log_path.read_text().splitlines()
                  if "DELETE " + path in x]
        assert len(aborts) == 1


async def test_download_offsets(client: Stager) -> None:
    await client.create_container("cc1")
    data = bytes(range(256)) * 10
    await client.upload("cc1", "f", data)
    for offset in [0, 1, 1000, len(data) - 1, len(data)]:
        meta, body, _ = await client.download("cc1", "f", offset)
        assert body == data[offset:] and meta.size == len(data)
    past_end = storage_pb2.DownloadObjectRequest(container="containers/cc1", key="f",
                                                 offset=len(data) + 1)
    negative = storage_pb2.DownloadObjectRequest(container="containers/cc1", key="f", offset=-1)
    missing = storage_pb2.DownloadObjectRequest(container="containers/cc1", key="nope")
    for req, code, field in [(past_end, INVALID, "offset"), (negative, INVALID, "offset"),
                             (missing, NOT_FOUND, None)]:
        try:
            async for _ in client.storage.DownloadObject(req, metadata=client.md):
                raise AssertionError(f"{req} must fail")
        except grpc.aio.AioRpcError as e:
            assert e.code() == code
            assert rpc.error_info(e)[1] == field
    await client.upload("cc1", "empty", b"")
    meta, body, _ = await client.download("cc1", "empty")
    assert (meta.size, body) == (0, b"")
    assert meta.sha256 == hashlib.sha256(b"").hexdigest()


async def test_accounts_are_isolated(client: Stager, other: Stager) -> None:
    await client.create_container("private")
    await client.upload("private", "secret.txt", b"A's data")
    listed = await other("ListContainers", storage_pb2.ListContainersRequest())
    assert list(listed.containers) == []
    hidden = await other.fails("GetContainer",
                               storage_pb2.GetContainerRequest(name="containers/private"))
    assert hidden.reason == "CONTAINER_NOT_FOUND"
    upload = await other.upload_fails("private", "x", b"B")
    assert upload.reason == "CONTAINER_NOT_FOUND"
    read = await other.fails("GetObject", storage_pb2.GetObjectRequest(
        container="containers/private", key="secret.txt"))
    assert read.reason == "CONTAINER_NOT_FOUND"

    # The same container id in another account is another container.
    await other.create_container("private")
    assert await other.keys("private") == []
    await other.upload("private", "secret.txt", b"B's data")
    _, body, _ = await client.download("private", "secret.txt")
    assert body == b"A's data"


async def test_bad_names_name_the_field(client: Stager) -> None:
    cases = [
        ("CreateContainer", storage_pb2.CreateContainerRequest(container_id="Bad_Name"),
         "container_id"),
        ("CreateContainer", storage_pb2.CreateContainerRequest(container_id="ab"), "container_id"),
        ("GetContainer", storage_pb2.GetContainerRequest(name="buckets/abc"), "name"),
        ("GetContainer", storage_pb2.GetContainerRequest(name=""), "name"),
        ("ListContainers", storage_pb2.ListContainersRequest(page_token="nope"), "page_token"),
        ("ListObjects", storage_pb2.ListObjectsRequest(container="containers/cc1", prefix="/abs"),
         "prefix"),
        ("ListObjects", storage_pb2.ListObjectsRequest(container="containers/cc1", page_size=-1),
         "page_size"),
        ("GetObject", storage_pb2.GetObjectRequest(container="containers/cc1", key="a/../b"),
         "key"),
        ("GetObject", storage_pb2.GetObjectRequest(container="containers/cc1", key=""), "key"),
        ("DeleteObject", storage_pb2.DeleteObjectRequest(container="cc1", key="a"), "container"),
    ]
    await client.create_container("cc1")
    for method, request, field in cases:
        f = await client.fails(method, request)
        assert (f.code, f.reason, f.field) == (INVALID, "INVALID_ARGUMENT", field), (method, f)
        assert field in f.details

    for key in ["../escape", "/abs", "a//b", "a/./b", "back\\slash", "nul\x00"]:
        f = await client.upload_fails("cc1", key, b"x")
        assert (f.code, f.field) == (INVALID, "header.key"), key
    f = await client.upload_fails("No_Such", "k", b"x")
    assert (f.code, f.field) == (INVALID, "header.container")
    f = await client.upload_fails("nothere", "k", b"x")
    assert (f.code, f.reason) == (NOT_FOUND, "CONTAINER_NOT_FOUND")

    async def no_header() -> object:
        yield storage_pb2.UploadObjectRequest(data=b"abc")

    try:
        await client.storage.UploadObject(no_header(), metadata=client.md)
        raise AssertionError("an upload without a header must fail")
    except grpc.aio.AioRpcError as e:
        assert e.code() == INVALID and "header" in (e.details() or "")
    assert await client.keys("cc1") == []
