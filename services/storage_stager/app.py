"""The stager's client-facing use cases: containers and objects, applications and versions.

Every call names the account; ids from another account are simply not found. Objects live in
the backend under the agreed layout (keys.py); containers, applications and versions are rows
in the stager's store, because one S3 bucket has no containers of its own.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from services.common import archives
from services.common.errors import Code, ShoalError, already_exists, invalid, not_found
from services.common.ids import check_display_name, check_id
from services.common.paging import PageRequest
from services.common.storage_names import (
    check_container_id,
    check_key_prefix,
    check_object_key,
    check_version_id,
)
from services.common.timeutil import Clock, wall_clock
from services.storage_stager import keys, spool
from services.storage_stager.backends.base import (
    Backend,
    ChecksumMismatch,
    Chunks,
    ObjectInfo,
    OffsetBeyondEnd,
    rechunk,
)
from services.storage_stager.model import (
    Application,
    AppVersion,
    ArchiveFormat,
    Container,
    StoredObject,
)
from services.storage_stager.store import Added, Store

OBJECTS_PAGE = 1000
OBJECTS_PAGE_MAX = 5000
Inspect = Callable[[Path, str], object]


def _mismatch(e: ChecksumMismatch) -> ShoalError:
    return invalid(
        "sha256", f"the bytes have SHA-256 {e.actual}, not {e.expected}; nothing was stored",
        reason="CHECKSUM_MISMATCH",
    )


def new_uid() -> str:
    """A fresh incarnation uid for a container or an application (keys.py)."""
    return secrets.token_hex(8)


def _object(container: str, prefix_len: int, info: ObjectInfo) -> StoredObject:
    return StoredObject(container, info.key[prefix_len:], info.size, info.sha256, info.etag,
                        info.mtime)


class StorageApp:
    def __init__(self, store: Store, backend: Backend, tmp_dir: Path, *,
                 clock: Clock = wall_clock,
                 inspect: Inspect = archives.inspect_archive) -> None:
        self.store = store
        self.backend = backend
        self._tmp = tmp_dir
        self._clock = clock
        self._inspect = inspect
        # Versions being uploaded now: a second upload of one version must not overwrite the
        # first one's archive before either is registered.
        self._uploading: set[tuple[str, str, str]] = set()

    # Containers

    async def create_container(self, account: str, container_id: str) -> Container:
        check_container_id(container_id, "container_id")
        c = Container(account, container_id, self._clock(), new_uid())
        if not await self.store.add_container(c):
            raise already_exists("container", container_id)
        return c

    async def get_container(self, account: str, container_id: str) -> Container:
        c = await self.store.get_container(account, container_id)
        if c is None:
            raise not_found("container", container_id)
        return c

    async def list_containers(
        self, account: str, want: PageRequest
    ) -> tuple[list[Container], str]:
        rows = await self.store.list_containers(account, want.after or "", want.limit)
        return want.page(rows, lambda c: c.id)

    async def delete_container(self, account: str, container_id: str) -> None:
        c = await self.get_container(account, container_id)
        # Objects first: if that fails half-way the container still exists to retry on.
        await self.backend.delete_prefix(keys.container_prefix(account, c.id, c.uid))
        await self.store.delete_container(account, c.id, c.uid)

    async def _key(self, account: str, container_id: str, key: str) -> tuple[Container, str]:
        """The container (NOT_FOUND if missing) and the object's full backend key in it."""
        c = await self.get_container(account, container_id)
        return c, keys.object_key(account, c.id, c.uid, key)

    # Objects

    async def upload_object(
        self, account: str, container_id: str, key: str, data: AsyncIterable[bytes],
        expected: Callable[[], str],
    ) -> StoredObject:
        check_object_key(key, "header.key")
        c, full = await self._key(account, container_id, key)
        try:
            info = await self.backend.put(full, data, expected)
        except ChecksumMismatch as e:
            raise _mismatch(e) from None
        now = await self.store.get_container(account, container_id)
        if now is None or now.uid != c.uid:
            # The container was deleted while the bytes came in, maybe before its deletion
            # could see them: the key is in a space nobody lists any more, so remove it and
            # say so. (A deletion that starts after this check leaves the object there, an
            # orphan that costs space only: see keys.py.)
            await self.backend.delete(full)
            raise not_found("container", container_id)
        return _object(container_id, len(full) - len(key), info)

    async def download_object(
        self, account: str, container_id: str, key: str, offset: int
    ) -> tuple[StoredObject, Chunks]:
        check_object_key(key, "key")
        if offset < 0:
            raise invalid("offset", f"must not be negative, got {offset}")
        _, full = await self._key(account, container_id, key)
        try:
            info, chunks = await self.backend.get(full, offset)
        except KeyError:
            raise not_found("object", key) from None
        except OffsetBeyondEnd as e:
            raise invalid("offset", str(e)) from None
        return _object(container_id, len(full) - len(key), info), rechunk(chunks)

    async def get_object(self, account: str, container_id: str, key: str) -> StoredObject:
        check_object_key(key, "key")
        _, full = await self._key(account, container_id, key)
        info = await self.backend.head(full)
        if info is None:
            raise not_found("object", key)
        return _object(container_id, len(full) - len(key), info)

    async def list_objects(
        self, account: str, container_id: str, prefix: str, want: PageRequest
    ) -> tuple[list[StoredObject], str]:
        """A page of a container's objects (up to OBJECTS_PAGE_MAX of them)."""
        check_key_prefix(prefix, "prefix")
        c = await self.get_container(account, container_id)
        base = keys.container_prefix(account, c.id, c.uid)
        after = base + want.after if want.after else ""
        infos = await self.backend.list(base + prefix, after, want.limit)
        return want.page([_object(container_id, len(base), i) for i in infos], lambda o: o.key)

    async def delete_object(self, account: str, container_id: str, key: str) -> None:
        check_object_key(key, "key")
        _, full = await self._key(account, container_id, key)
        if await self.backend.head(full) is None:
            raise not_found("object", key)
        await self.backend.delete(full)

    # Applications

    async def create_application(
        self, account: str, app_id: str, display_name: str, default_version: str
    ) -> Application:
        check_id(app_id, "application_id")
        check_display_name(display_name, "application.display_name")
        if default_version:
            raise invalid("application.default_version",
                          "must be empty: upload a version, then make it the default")
        app = Application(account, app_id, display_name, "", self._clock(), new_uid())
        if not await self.store.add_application(app):
            raise already_exists("application", app_id)
        return app

    async def get_application(self, account: str, app_id: str) -> Application:
        app = await self.store.get_application(account, app_id)
        if app is None:
            raise not_found("application", app_id)
        return app

    async def list_applications(
        self, account: str, want: PageRequest
    ) -> tuple[list[Application], str]:
        rows = await self.store.list_applications(account, want.after or "", want.limit)
        return want.page(rows, lambda a: a.id.lower())

    async def update_application(
        self, account: str, app_id: str, display_name: str | None, default_version: str | None
    ) -> Application:
        if display_name is not None:
            check_display_name(display_name)
        # One statement: the version's existence is checked where the default is set, so a
        # deletion racing us cannot leave the default naming a deleted version.
        app = await self.store.update_application(account, app_id, display_name, default_version)
        if app is None:
            app = await self.get_application(account, app_id)
            raise invalid("default_version",
                          f"application {app.id!r} has no version {default_version!r}",
                          reason="VERSION_NOT_FOUND")
        return app

    async def delete_application(self, account: str, app_id: str) -> None:
        app = await self.get_application(account, app_id)
        await self.backend.delete_prefix(keys.app_prefix(account, app.id, app.uid))
        await self.store.delete_application(account, app.id, app.uid)

    # Versions

    async def upload_version(
        self, account: str, app_id: str, version: str, fmt: ArchiveFormat,
        data: AsyncIterable[bytes], expected: Callable[[], str],
    ) -> AppVersion:
        check_version_id(version, "header.version_id")
        app = await self.get_application(account, app_id)
        with self._one_upload(account, app.id, version):
            if await self.store.get_version(account, app.id, version) is not None:
                raise already_exists("version", f"{app.id}/{version}")
            path, hasher = await spool.spool(data, self._tmp)
            key = keys.version_key(account, app.id, app.uid, version)
            try:
                try:
                    sha = hasher.verify(expected)
                except ChecksumMismatch as e:
                    raise _mismatch(e) from None
                try:
                    await asyncio.to_thread(self._inspect, path, fmt.value)
                except archives.ArchiveError as e:
                    raise invalid("data", f"not a usable {fmt.value} archive: {e.message}",
                                  reason="INVALID_ARCHIVE") from None
                await self.backend.put(key, spool.read_back(path), lambda: sha)
            finally:
                await asyncio.to_thread(path.unlink, True)
            v = AppVersion(account, app.id, version, fmt, hasher.size, sha, self._clock(),
                           app.uid)
            added = await self.store.add_version(v)
            if added is Added.EXISTS:
                raise already_exists("version", f"{app.id}/{version}")
            if added is Added.NO_APPLICATION:
                # Deleted (maybe created again) while the archive came in: the archive is in
                # the old incarnation's space, which nobody lists any more.
                await self.backend.delete(key)
                raise not_found("application", app.id)
        return v

    @contextmanager
    def _one_upload(self, account: str, app_id: str, version: str) -> Iterator[None]:
        slot = (account, app_id.lower(), version.lower())
        if slot in self._uploading:
            raise ShoalError(Code.ABORTED, "UPLOAD_IN_PROGRESS",
                             f"version {app_id}/{version} is being uploaded by another call")
        self._uploading.add(slot)
        try:
            yield
        finally:
            self._uploading.discard(slot)

    async def get_version(self, account: str, app_id: str, version: str) -> AppVersion:
        v = await self.store.get_version(account, app_id, version)
        if v is None:
            raise not_found("version", f"{app_id}/{version}")
        return v

    async def list_versions(
        self, account: str, app_id: str, want: PageRequest
    ) -> tuple[list[AppVersion], str]:
        app = await self.get_application(account, app_id)
        rows = await self.store.list_versions(account, app.id, want.after or "", want.limit)
        return want.page(rows, lambda v: v.version.lower())

    async def delete_version(self, account: str, app_id: str, version: str) -> None:
        app = await self.get_application(account, app_id)
        v = await self.get_version(account, app.id, version)
        await self.backend.delete(keys.version_key(account, v.app_id, v.app_uid, v.version))
        await self.store.delete_version(v)
