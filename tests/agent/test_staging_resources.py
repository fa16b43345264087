"""Placing resource files in a working directory, from the real S3 server: modes, nested
paths, and nothing written outside the working directory whatever the path or a planted
symlink says."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.staging import RESOURCE_FILE_DOWNLOAD_FAILED, StagingFailure
from agent.staging.cache import ContentCache
from agent.staging.resources import place_downloads
from agent.staging.transfer import Transfers
from tests.agent.staging_support import Bucket
from tests.storage_support import MotoServer


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> Iterator[Bucket]:
    yield Bucket(moto_s3)


@pytest.fixture
async def transfers() -> AsyncIterator[Transfers]:
    t = Transfers()
    yield t
    await t.close()


@pytest.fixture
def cache(tmp_path: Path, transfers: Transfers) -> ContentCache:
    c = ContentCache(tmp_path / "cache", transfers)
    c.load()
    return c


@pytest.fixture
def wd(tmp_path: Path) -> Path:
    d = tmp_path / "attempt" / "wd"
    d.mkdir(parents=True)
    return d


def mode_of(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


async def test_files_land_at_their_paths_with_their_modes(
    bucket: Bucket, cache: ContentCache, transfers: Transfers, wd: Path
) -> None:
    run = bucket.put("res/run.sh", b"#!/bin/sh\necho hi\n")
    run.file_path, run.file_mode = "bin/run.sh", 0o755
    data = bucket.put("res/data/in.csv", b"1,2,3\n")
    data.file_path = "deep/er/in.csv"  # default mode: 0770, Azure's on Linux
    plain = bucket.download("res/data/in.csv", file_path="direct.csv")  # no cache key
    await place_downloads([run, data, plain], wd, cache, transfers)
    assert (wd / "bin/run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert mode_of(wd / "bin/run.sh") == 0o755
    assert (wd / "deep/er/in.csv").read_text() == "1,2,3\n"
    assert mode_of(wd / "deep/er/in.csv") == 0o770
    assert (wd / "direct.csv").read_text() == "1,2,3\n" and mode_of(wd / "direct.csv") == 0o770


@pytest.mark.parametrize("file_path", ["../escape.txt", "a/../../escape.txt", "/tmp/escape.txt",
                                       "a\x00b", "a//b", ""])
async def test_paths_that_could_escape_are_refused(
    bucket: Bucket, cache: ContentCache, transfers: Transfers, wd: Path, file_path: str
) -> None:
    d = bucket.put("res/x.txt", b"x")
    d.file_path = file_path
    with pytest.raises(StagingFailure) as exc:
        await place_downloads([d], wd, cache, transfers)
    assert exc.value.code == RESOURCE_FILE_DOWNLOAD_FAILED
    assert "file_path" in exc.value.message
    assert tree(wd.parent) == ["wd"]
    assert not os.path.lexists("/tmp/escape.txt")  # noqa: ASYNC240


async def test_a_symlinked_directory_planted_in_the_wd_is_not_followed(
    bucket: Bucket, cache: ContentCache, transfers: Transfers, wd: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (wd / "data").symlink_to(outside)
    d = bucket.put("res/y.txt", b"y")
    d.file_path = "data/y.txt"
    with pytest.raises(StagingFailure) as exc:
        await place_downloads([d], wd, cache, transfers)
    assert "'data' is a symlink" in exc.value.message
    assert os.listdir(outside) == []


async def test_a_symlink_at_the_destination_is_replaced_not_written_through(
    bucket: Bucket, cache: ContentCache, transfers: Transfers, wd: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (wd / "z.txt").symlink_to(victim)
    d = bucket.put("res/z.txt", b"new content")
    d.file_path = "z.txt"
    await place_downloads([d], wd, cache, transfers)
    assert victim.read_text() == "precious"
    assert not (wd / "z.txt").is_symlink() and (wd / "z.txt").read_bytes() == b"new content"


async def test_a_file_where_a_directory_is_needed_is_refused(
    bucket: Bucket, cache: ContentCache, transfers: Transfers, wd: Path
) -> None:
    a = bucket.put("res/a", b"a")
    a.file_path = "a"
    b = bucket.put("res/b", b"b")
    b.file_path = "a/b"
    await place_downloads([a], wd, cache, transfers)
    with pytest.raises(StagingFailure, match="'a' is not a directory"):
        await place_downloads([b], wd, cache, transfers)


async def test_the_first_failure_names_its_file(
    bucket: Bucket, cache: ContentCache, transfers: Transfers, wd: Path
) -> None:
    ok = bucket.put("res/ok", b"ok")
    missing = bucket.download("res/missing", file_path="inputs/missing.bin")
    with pytest.raises(StagingFailure) as exc:
        await place_downloads([ok, missing], wd, cache, transfers)
    assert exc.value.code == RESOURCE_FILE_DOWNLOAD_FAILED
    assert "'inputs/missing.bin'" in exc.value.message and "HTTP 404" in exc.value.message
