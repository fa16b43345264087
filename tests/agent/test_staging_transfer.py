"""HTTP transfers against a real S3 server (moto, presigned URLs) and, for retries, a small
real HTTP server that fails on purpose."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from agent.staging.transfer import Expect, TransferError, Transfers
from tests.agent.staging_support import Bucket
from tests.storage_support import MotoServer


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> Iterator[Bucket]:
    yield Bucket(moto_s3)


def listing(d: Path) -> list[str]:
    return sorted(os.listdir(d))


@pytest.fixture
async def transfers() -> AsyncIterator[Transfers]:
    t = Transfers()
    yield t
    await t.close()


async def test_download_verifies_size_and_sha256(bucket: Bucket, transfers: Transfers,
                                                 tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk
    d = bucket.put("in/big.bin", data)
    dest = tmp_path / "big.bin"
    n = await transfers.download(d.url, dest, Expect(d.size, d.sha256))
    assert n == len(data) and dest.read_bytes() == data
    assert listing(tmp_path) == ["big.bin"]  # no temp file left


async def test_a_wrong_sha256_is_a_failure_and_leaves_no_file(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    d = bucket.put("in/a.txt", b"hello")
    dest = tmp_path / "a.txt"
    with pytest.raises(TransferError) as exc:
        await transfers.download(d.url, dest, Expect(5, hashlib.sha256(b"other").hexdigest()))
    assert "SHA-256 mismatch" in exc.value.message and exc.value.permanent
    assert "X-Amz-Signature" not in exc.value.message  # no signature in messages
    assert listing(tmp_path) == []


async def test_a_wrong_size_is_a_failure(bucket: Bucket, tmp_path: Path) -> None:
    d = bucket.put("in/b.txt", b"hello world")
    t = Transfers(attempts=2)
    try:
        with pytest.raises(TransferError, match="expected 5 bytes"):
            await t.download(d.url, tmp_path / "b.txt", Expect(size=5))
    finally:
        await t.close()
    assert listing(tmp_path) == []


async def test_a_missing_object_is_a_permanent_failure(bucket: Bucket, transfers: Transfers,
                                                       tmp_path: Path) -> None:
    with pytest.raises(TransferError) as exc:
        await transfers.download(bucket.get_url("no/such/key"), tmp_path / "x")
    assert exc.value.permanent and "HTTP 404" in exc.value.message
    assert "NoSuchKey" in exc.value.message


async def test_upload_puts_the_file_with_its_length(bucket: Bucket, transfers: Transfers,
                                                    tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 5)
    src = tmp_path / "out.bin"
    src.write_bytes(data)
    assert await transfers.upload(bucket.put_url("out/out.bin"), src) == len(data)
    assert bucket.read("out/out.bin") == data
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    await transfers.upload(bucket.put_url("out/empty"), empty)
    assert bucket.read("out/empty") == b""


async def test_upload_does_not_follow_a_symlink(bucket: Bucket, transfers: Transfers,
                                                tmp_path: Path) -> None:
    link = tmp_path / "result.txt"
    link.symlink_to("/etc/passwd")
    with pytest.raises(TransferError, match="cannot read result.txt"):
        await transfers.upload(bucket.put_url("links/result.txt"), link)
    assert bucket.keys("links/") == []


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[str, list[str]]]:
    """GET /data fails with 503 twice, then serves b"payload"; /gone is always 500."""
    calls: list[str] = []

    async def data(request: web.Request) -> web.Response:
        calls.append(request.path)
        if request.path == "/gone" or len(calls) <= 2:
            return web.Response(status=503 if request.path != "/gone" else 500, text="busy")
        return web.Response(body=b"payload")

    app = web.Application()
    app.router.add_get("/data", data)
    app.router.add_get("/gone", data)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", calls
    await runner.cleanup()


async def test_server_errors_are_retried_then_give_up(flaky: tuple[str, list[str]],
                                                      tmp_path: Path) -> None:
    base, calls = flaky
    t = Transfers(attempts=3)
    try:
        await t.download(f"{base}/data", tmp_path / "d")
        assert (tmp_path / "d").read_bytes() == b"payload"
        assert calls == ["/data"] * 3
        with pytest.raises(TransferError, match="failed after 3 tries: HTTP 500"):
            await t.download(f"{base}/gone", tmp_path / "g")
        assert calls.count("/gone") == 3
    finally:
        await t.close()


async def test_connection_refused_is_a_failure_after_retries(tmp_path: Path) -> None:
    from tests.storage_support import free_port

    t = Transfers(attempts=2)
    try:
        with pytest.raises(TransferError, match="failed after 2 tries"):
            await t.download(f"http://127.0.0.1:{free_port()}/x", tmp_path / "x")
    finally:
        await t.close()
    assert listing(tmp_path) == []
