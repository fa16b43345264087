"""Placing resource files in an attempt's working directory.

A destination is the working directory joined with the grant's `file_path`, which is checked
again here (the agent trusts no path it is sent) and then walked segment by segment without
following symlinks: a directory on the way that is a symlink — planted by anything that wrote
to the directory before — is refused, so nothing is ever written outside the working
directory. Files are written to a temporary name and renamed into place, so a symlink at the
destination is replaced, never written through.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path

from agent.concurrency import run_together
from agent.staging import RESOURCE_FILE_DOWNLOAD_FAILED, SERVER_ERROR, USER_ERROR, StagingFailure
from agent.staging.cache import ContentCache
from agent.staging.transfer import Expect, TransferError, Transfers
from services.common.errors import ShoalError
from services.common.storage_names import DEFAULT_FILE_MODE, check_relative_path
from shoal.agent.v1 import agent_pb2

PARALLEL_DOWNLOADS = 8


class UnsafeDestination(Exception):
    pass


def destination(root: Path, rel: str) -> Path:
    """`root`/`rel`, with every parent directory created (mode 0755) and none a symlink.
    Raises UnsafeDestination when `rel` is not a safe relative path or leads through a
    symlink or a non-directory."""
    try:
        rel = check_relative_path(rel, "file_path")
    except ShoalError as e:
        raise UnsafeDestination(e.message) from None
    parts = rel.split("/")
    cur = root
    for seg in parts[:-1]:
        cur = cur / seg
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            os.mkdir(cur, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeDestination(f"file_path {rel!r}: {seg!r} is a symlink; not followed")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeDestination(f"file_path {rel!r}: {seg!r} is not a directory")
    target = cur / parts[-1]
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(target).st_mode):
            raise UnsafeDestination(f"file_path {rel!r} is an existing directory")
    return target


def copy_into(src: Path, dest: Path, mode: int) -> None:
    """Copy (not link: the task may modify its copy) through a temporary name, then rename:
    a symlink at `dest` is replaced, not followed."""
    tmp = dest.parent / f".{dest.name}.part-{uuid.uuid4().hex[:12]}"
    try:
        shutil.copyfile(src, tmp, follow_symlinks=False)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def file_mode(d: agent_pb2.Download) -> int:
    # proto3 cannot tell 0 from unset: 0 means the default, as for an empty file_mode.
    return (d.file_mode & 0o777) if d.file_mode else DEFAULT_FILE_MODE


async def place_downloads(
    downloads: Sequence[agent_pb2.Download], wd: Path, cache: ContentCache, transfers: Transfers,
    *, parallel: int = PARALLEL_DOWNLOADS,
) -> None:
    """Download every file into `wd` (through the cache when it has a key). Raises
    StagingFailure(RESOURCE_FILE_DOWNLOAD_FAILED) naming the first file that failed."""
    # The same path twice (overlapping container downloads): the last grant wins, as in order.
    by_path = {d.file_path: d for d in downloads}
    if not by_path:
        return
    gate = asyncio.Semaphore(parallel)

    async def one(d: agent_pb2.Download) -> None:
        async with gate:
            await place_one(d, wd, cache, transfers)

    # The first failure ends the staging; the other downloads are abandoned.
    await run_together(one(d) for d in by_path.values())


async def place_one(
    d: agent_pb2.Download, wd: Path, cache: ContentCache, transfers: Transfers
) -> None:
    try:
        dest = destination(wd, d.file_path)
    except UnsafeDestination as e:
        raise StagingFailure(USER_ERROR, RESOURCE_FILE_DOWNLOAD_FAILED, str(e)) from None
    expect = Expect(d.size, d.sha256)
    mode = file_mode(d)
    try:
        if cache.cacheable(d.cache_key, d.size):
            async with cache.entry(d.url, d.cache_key, expect) as src:
                await asyncio.to_thread(copy_into, src, dest, mode)
        else:
            await transfers.download(d.url, dest, expect)
            os.chmod(dest, mode, follow_symlinks=False)
    except TransferError as e:
        category = USER_ERROR if e.permanent else SERVER_ERROR
        raise StagingFailure(
            category, RESOURCE_FILE_DOWNLOAD_FAILED, f"file_path {d.file_path!r}: {e.message}",
            transient=not e.permanent,
        ) from None
    except OSError as e:
        raise StagingFailure(
            SERVER_ERROR, RESOURCE_FILE_DOWNLOAD_FAILED,
            f"file_path {d.file_path!r}: cannot write: {e.strerror or e}",
        ) from None
