"""The node's content cache against the real S3 server: one GET per object per node, copies
that tasks cannot corrupt, LRU bounds, and what survives a restart."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from agent.staging import RESOURCE_FILE_DOWNLOAD_FAILED, StagingFailure
from agent.staging.cache import ContentCache
from agent.staging.resources import place_downloads
from agent.staging.transfer import Expect, TransferError, Transfers
from tests.agent.staging_support import Bucket
from tests.storage_support import MotoServer
from tests.support import eventually


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> Iterator[Bucket]:
    yield Bucket(moto_s3)


@pytest.fixture
async def transfers() -> AsyncIterator[Transfers]:
    t = Transfers()
    yield t
    await t.close()


def overwrite_in_place(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.write(data)


def new_cache(tmp_path: Path, transfers: Transfers, max_bytes: int = 1 << 30) -> ContentCache:
    c = ContentCache(tmp_path / "cache", transfers, max_bytes)
    c.load()
    return c


async def test_many_tasks_wanting_one_object_download_it_once(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    data = os.urandom(256 * 1024)
    d = bucket.put("shared/model.bin", data)
    d.file_path = "input/model.bin"
    cache = new_cache(tmp_path, transfers)
    wds = [tmp_path / f"wd{i}" for i in range(12)]
    for wd in wds:
        wd.mkdir()

    await asyncio.gather(*(place_downloads([d], wd, cache, transfers) for wd in wds))

    for wd in wds:
        assert (wd / "input/model.bin").read_bytes() == data
    assert bucket.gets("shared/model.bin") == 1
    # A later task on the node is served from the cache too.
    later = tmp_path / "later"
    later.mkdir()
    await place_downloads([d], later, cache, transfers)
    assert (later / "input/model.bin").read_bytes() == data
    assert bucket.gets("shared/model.bin") == 1


async def test_a_task_that_modifies_its_copy_does_not_corrupt_the_cache(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    d = bucket.put("shared/table.csv", b"a,b\n1,2\n")
    cache = new_cache(tmp_path, transfers)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    await place_downloads([d], first, cache, transfers)
    mine = first / "shared/table.csv"
    assert mine.stat().st_nlink == 1  # a copy, not a hard link to the entry
    mine.chmod(0o644)
    overwrite_in_place(mine, b"XXXX")  # as a task rewriting its input would
    await place_downloads([d], second, cache, transfers)
    assert (second / "shared/table.csv").read_bytes() == b"a,b\n1,2\n"


async def test_a_failed_download_fails_every_waiter_and_caches_nothing(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    d = bucket.put("shared/bad.bin", b"content")
    d.sha256 = hashlib.sha256(b"something else").hexdigest()
    cache = new_cache(tmp_path, transfers)
    wds = [tmp_path / f"w{i}" for i in range(4)]
    for wd in wds:
        wd.mkdir()
    results = await asyncio.gather(
        *(place_downloads([d], wd, cache, transfers) for wd in wds), return_exceptions=True
    )
    for r in results:
        assert isinstance(r, StagingFailure)
        assert r.code == RESOURCE_FILE_DOWNLOAD_FAILED
        assert "'shared/bad.bin'" in r.message and "SHA-256 mismatch" in r.message
    assert bucket.gets("shared/bad.bin") == 1
    assert cache.total_bytes == 0 and os.listdir(cache.root) == []
    assert all(list(wd.rglob("*.bin")) == [] for wd in wds)


async def test_least_recently_used_entries_are_evicted_to_stay_in_bounds(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    ds = {n: bucket.put(f"lru/{n}", bytes([i]) * 1000) for i, n in enumerate("abc")}
    cache = new_cache(tmp_path, transfers, max_bytes=2500)

    async def use(name: str) -> None:
        d = ds[name]
        async with cache.entry(d.url, d.cache_key, Expect(d.size, d.sha256)) as p:
            assert p.read_bytes() == d_bytes(name)

    def d_bytes(name: str) -> bytes:
        return bytes(["abc".index(name)]) * 1000

    await use("a")
    await use("b")
    await use("a")  # a is now more recent than b
    await use("c")  # over 2500 bytes: b goes
    assert cache.total_bytes == 2000 and len(os.listdir(cache.root)) == 2
    await use("a")
    await use("c")
    assert bucket.gets("lru/a") == 1 and bucket.gets("lru/c") == 1
    await use("b")
    assert bucket.gets("lru/b") == 2  # evicted, so fetched again


async def test_an_object_larger_than_the_cache_bypasses_it(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    d = bucket.put("big/one", os.urandom(5000))
    cache = new_cache(tmp_path, transfers, max_bytes=1000)
    wd = tmp_path / "wd"
    wd.mkdir()
    await place_downloads([d], wd, cache, transfers)
    assert (wd / "big/one").stat().st_size == 5000
    assert os.listdir(cache.root) == []


async def test_the_cache_survives_a_restart_and_drops_partial_files(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    d = bucket.put("restart/x", b"x" * 100)
    cache = new_cache(tmp_path, transfers)
    async with cache.entry(d.url, d.cache_key, Expect(d.size, d.sha256)):
        pass
    (cache.root / ".abc.part-123").write_bytes(b"partial")
    again = new_cache(tmp_path, transfers)  # a new agent process on the same node root
    assert again.total_bytes == 100
    assert not (again.root / ".abc.part-123").exists()
    async with again.entry(d.url, d.cache_key, Expect(d.size, d.sha256)) as p:
        assert p.read_bytes() == b"x" * 100
    assert bucket.gets("restart/x") == 1


@pytest.fixture
async def gated() -> AsyncIterator[tuple[str, list[str], asyncio.Event]]:
    """A real HTTP server whose answers wait for a gate: a download in flight for as long
    as the test wants."""
    calls: list[str] = []
    gate = asyncio.Event()

    async def data(request: web.Request) -> web.Response:
        calls.append(request.path)
        await gate.wait()
        return web.Response(body=b"z" * 4096)

    app = web.Application()
    app.router.add_get("/obj", data)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/obj", calls, gate
    gate.set()
    await runner.cleanup()


async def test_a_cancelled_waiter_does_not_abort_the_shared_download(
    gated: tuple[str, list[str], asyncio.Event], transfers: Transfers, tmp_path: Path
) -> None:
    url, calls, gate = gated
    cache = new_cache(tmp_path, transfers)

    async def want() -> bytes:
        async with cache.entry(url, "etag:z", Expect(4096)) as p:
            return p.read_bytes()

    first = asyncio.create_task(want())
    second = asyncio.create_task(want())
    # The GET reaches the server after both asked for the object: both wait on it now.
    await eventually(lambda: calls, "the download to start")
    first.cancel()
    gate.set()
    assert await second == b"z" * 4096
    with pytest.raises(asyncio.CancelledError):
        await first
    assert calls == ["/obj"]


async def test_transfer_errors_name_no_signature(bucket: Bucket, transfers: Transfers,
                                                 tmp_path: Path) -> None:
    cache = new_cache(tmp_path, transfers)
    with pytest.raises(TransferError) as exc:
        async with cache.entry(bucket.get_url("nope"), "etag:nope", Expect()):
            pass
    assert "HTTP 404" in exc.value.message and "Signature" not in exc.value.message
