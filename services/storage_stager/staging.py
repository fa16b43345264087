"""Staging grants: the internal use cases the scheduler and the pool-manager call to let agents
move bytes directly (StagingService).

One call serves many specs (attempts, node set-ups). Lookups are made once per call however
many specs share them, run concurrently, and a container or prefix download is expanded from
one listing, never a request per object. A spec that cannot be granted gets a failure (code,
message naming the field) and the others are unaffected.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from services.common.errors import ShoalError, invalid, not_found
from services.common.ids import check_id
from services.common.storage_names import (
    LOG_FILES,
    check_container_id,
    check_key_prefix,
    check_object_key,
    check_relative_path,
    parse_file_mode,
    upload_allowed,
)
from services.storage_stager import keys
from services.storage_stager.backends.base import (
    Backend,
    Chunks,
    ObjectInfo,
    OffsetBeyondEnd,
    rechunk,
)
from services.storage_stager.model import (
    AppVersion,
    Category,
    Container,
    Download,
    DownloadGrant,
    DownloadSpec,
    Failure,
    PackageGrant,
    ResourceFile,
    StagingTally,
    UploadGrant,
    UploadSpec,
)
from services.storage_stager.store import Store

MAX_EXPANDED = 10_000
"""Most objects one container or prefix resource file may expand to."""
CONCURRENCY = 16
"""Backend lookups in flight at once for one call."""
DOWNLOAD_FAILED = "RESOURCE_FILE_DOWNLOAD_FAILED"
PACKAGE_FAILED = "APPLICATION_PACKAGE_FAILED"
UPLOAD_FAILED = "OUTPUT_FILE_UPLOAD_FAILED"

Pieces = AsyncGenerator[tuple[int, bytes], None]
K = TypeVar("K")
V = TypeVar("V")


class _Refused(Exception):
    """A spec cannot be granted; carries its failure."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


async def _lookup_all(keys_: Iterable[K], fetch: Callable[[K], Awaitable[V]]) -> dict[K, V]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(k: K) -> V:
        async with gate:
            return await fetch(k)

    distinct = list(dict.fromkeys(keys_))
    results = await asyncio.gather(*(one(k) for k in distinct))
    return dict(zip(distinct, results, strict=True))


class StagingApp:
    def __init__(self, store: Store, backend: Backend, ttl: int,
                 tally: StagingTally | None = None) -> None:
        self.store = store
        self.backend = backend
        self.ttl = ttl
        self.tally = tally or StagingTally()

    # Downloads

    async def grant_downloads(self, account: str, specs: list[DownloadSpec]) -> list[DownloadGrant]:
        # Only well-formed names reach the backend; _expand reports the others.
        files = [rf for s in specs for rf in s.resource_files
                 if not rf.http_url and _well_formed(rf)]
        containers = await _lookup_all(
            (rf.container for rf in files),
            lambda c: self.store.get_container(account, c),
        )
        # Keys of the incarnation each container has now (keys.py).
        bases = {cid: keys.container_prefix(account, c.id, c.uid)
                 for cid, c in containers.items() if c is not None}
        heads = await _lookup_all(
            (bases[rf.container] + rf.object_key
             for rf in files if rf.object_key and rf.container in bases),
            self.backend.head,
        )
        listings = await _lookup_all(
            (bases[rf.container] + rf.blob_prefix
             for rf in files if not rf.object_key and rf.container in bases),
            lambda p: self.backend.list(p, "", MAX_EXPANDED + 1),
        )
        grants = []
        for spec in specs:
            try:
                downloads: list[Download] = []
                for i, rf in enumerate(spec.resource_files):
                    downloads += await self._expand(i, rf, bases, heads, listings)
                packages = [await self._package(account, j, ref.application_id, ref.version)
                            for j, ref in enumerate(spec.packages)]
                grants.append(DownloadGrant(tuple(downloads), tuple(packages)))
            except _Refused as r:
                grants.append(DownloadGrant(failure=r.failure))
        self.tally.downloads(grants)
        return grants

    async def _expand(
        self, i: int, rf: ResourceFile, bases: Mapping[str, str],
        heads: dict[str, ObjectInfo | None], listings: dict[str, list[ObjectInfo]],
    ) -> list[Download]:
        field = f"resource_files[{i}]"

        def refuse(message: str) -> _Refused:
            return _Refused(Failure(DOWNLOAD_FAILED, f"{field}: {message}"))

        try:
            mode = parse_file_mode(rf.file_mode, f"{field}.file_mode")
            path = check_relative_path(rf.file_path, f"{field}.file_path",
                                       required=bool(rf.object_key or rf.http_url))
            if rf.http_url:
                if not rf.http_url.startswith(("http://", "https://")):
                    raise invalid(f"{field}.http_url", "must be an http:// or https:// URL")
                return [Download(rf.http_url, path, mode, "", -1, "")]
            check_container_id(rf.container, f"{field}.container")
            if rf.object_key:
                check_object_key(rf.object_key, f"{field}.object_key")
            else:
                check_key_prefix(rf.blob_prefix, f"{field}.blob_prefix")
        except ShoalError as e:
            raise _Refused(Failure(DOWNLOAD_FAILED, e.message)) from None
        base = bases.get(rf.container)
        if base is None:
            raise refuse(f"container {rf.container!r} not found")
        if rf.object_key:
            info = heads.get(base + rf.object_key)
            if info is None:
                raise refuse(f"object {rf.object_key!r} not found in container {rf.container!r}")
            return [await self._download(info, path, mode)]
        found = listings.get(base + rf.blob_prefix, [])
        where = f"under prefix {rf.blob_prefix!r} " if rf.blob_prefix else ""
        if not found:
            raise refuse(f"no objects {where}in container {rf.container!r}")
        if len(found) > MAX_EXPANDED:
            raise refuse(f"more than {MAX_EXPANDED} objects {where}in container "
                         f"{rf.container!r}; name a narrower blob_prefix")
        return [
            await self._download(o, f"{path}/{o.key[len(base):]}" if path else o.key[len(base):],
                                 mode)
            for o in found
        ]

    async def _download(self, info: ObjectInfo, path: str, mode: int) -> Download:
        url = await self.backend.presign_get(info.key, self.ttl)
        return Download(url, path, mode, info.cache_key, info.size, info.sha256)

    async def _package(self, account: str, j: int, app_id: str, version: str) -> PackageGrant:
        field = f"application_packages[{j}]"

        def refuse(message: str) -> _Refused:
            return _Refused(Failure(PACKAGE_FAILED, f"{field}: {message}"))

        app = await self.store.get_application(account, app_id) if app_id else None
        if app is None:
            raise refuse(f"application {app_id!r} not found")
        wanted = version or app.default_version
        if not wanted:
            raise refuse(f"application {app.id!r} has no default version; name a version")
        v: AppVersion | None = await self.store.get_version(account, app.id, wanted)
        if v is None:
            raise refuse(f"application {app.id!r} has no version {wanted!r}")
        key = keys.version_key(account, v.app_id, v.app_uid, v.version)
        url = await self.backend.presign_get(key, self.ttl)
        archive = Download(url, "", 0o644, f"sha256:{v.sha256}", v.size, v.sha256)
        return PackageGrant(app.id, v.version, v.format, archive, is_default=not version)

    # Uploads

    async def grant_uploads(self, account: str, specs: list[UploadSpec]) -> list[UploadGrant]:
        containers = await _lookup_all(
            (c for s in specs for c, _ in s.uploads if c),
            lambda c: self.store.get_container(account, c),
        )
        grants = []
        for spec in specs:
            try:
                _check_attempt(spec)
                urls = [await self._upload_url(account, spec, j, c, k, containers)
                        for j, (c, k) in enumerate(spec.uploads)]
                grants.append(UploadGrant(tuple(urls)))
            except _Refused as r:
                grants.append(UploadGrant(failure=r.failure))
        self.tally.uploads(grants)
        return grants

    async def _upload_url(
        self, account: str, spec: UploadSpec, j: int, container: str, key: str,
        containers: Mapping[str, Container | None],
    ) -> str:
        field = f"uploads[{j}]"

        def refuse(message: str) -> _Refused:
            return _Refused(Failure(UPLOAD_FAILED, f"{field}: {message}"))

        if not container:
            if key not in LOG_FILES:
                raise refuse(f"{key[:80]!r} is not a log file (stdout.txt or stderr.txt)")
            full = keys.log_key(account, spec.job_uid, spec.task_id, spec.attempt_id, key)
            return await self.backend.presign_put(full, self.ttl)
        try:
            check_container_id(container, f"{field}.container")
            check_object_key(key, f"{field}.key")
        except ShoalError as e:
            raise _Refused(Failure(UPLOAD_FAILED, e.message)) from None
        c = containers.get(container)
        if c is None:
            raise refuse(f"container {container!r} not found")
        if not upload_allowed(spec.output_files, container, key):
            raise refuse(f"key {key!r} in container {container!r} is not allowed by the "
                         "task's output files")
        # Into this incarnation only: a PUT after the container is deleted, even if one with
        # the same id exists again by then, lands where nobody looks (keys.py).
        return await self.backend.presign_put(keys.object_key(account, c.id, c.uid, key),
                                              self.ttl)

    # Logs

    async def read_task_log(
        self, account: str, job_uid: str, job_id: str, task_id: str, attempt_id: str, file: str,
        offset: int,
    ) -> Pieces:
        """(offset, bytes) pieces of an uploaded log; NOT_FOUND (LOG_NOT_FOUND) if the agent
        uploaded none (it skips empty logs). An offset at or past the end reads nothing."""
        check_id(job_uid, "job_uid")
        check_id(job_id, "job_id")
        check_id(task_id, "task_id")
        check_id(attempt_id, "attempt_id")
        if file not in LOG_FILES:
            raise invalid("file", f"must be one of {', '.join(LOG_FILES)}, got {file[:80]!r}")
        if offset < 0:
            raise invalid("offset", f"must not be negative, got {offset}")
        key = keys.log_key(account, job_uid, task_id, attempt_id, file)
        try:
            _, raw = await self.backend.get(key, offset)
        except KeyError:
            raise not_found("log", f"{job_id}/{task_id}/{attempt_id}/{file}") from None
        except OffsetBeyondEnd:
            return _nothing()
        return _with_offsets(rechunk(raw), offset)

    async def delete_job_logs(self, account: str, job_uid: str) -> int:
        """Delete the logs of one job incarnation; a job with the same id before or after
        keeps its own."""
        check_id(job_uid, "job_uid")
        return await self.backend.delete_prefix(keys.job_logs_prefix(account, job_uid))


def _well_formed(rf: ResourceFile) -> bool:
    try:
        check_container_id(rf.container, "container")
        if rf.object_key:
            check_object_key(rf.object_key, "object_key")
        else:
            check_key_prefix(rf.blob_prefix, "blob_prefix")
    except ShoalError:
        return False
    return True


def _check_attempt(spec: UploadSpec) -> None:
    """The ids come from the scheduler, not the user: a bad one is the server's fault."""
    try:
        check_id(spec.job_uid, "job_uid")
        check_id(spec.job_id, "job_id")
        check_id(spec.task_id, "task_id")
        check_id(spec.attempt_id, "attempt_id")
    except ShoalError as e:
        raise _Refused(Failure(UPLOAD_FAILED, e.message, Category.SERVER_ERROR)) from None


async def _with_offsets(chunks: Chunks, start: int) -> Pieces:
    at = start
    try:
        async for chunk in chunks:
            yield at, chunk
            at += len(chunk)
    finally:
        await chunks.aclose()


async def _nothing() -> Pieces:
    return
    yield 0, b""
