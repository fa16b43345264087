"""Storage and application-package calls of the client: `Client` inherits these methods.

Bytes move as gRPC streams of 1 MiB messages: an upload sends a header, the data and then
the SHA-256 of all of it (the server stores nothing unless it matches); a download checks the
size and SHA-256 the server announced before it puts the file in place.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import grpc

from shoal.errors import ShoalError, StatusCode
from shoal.listing import Listing
from shoal.v1 import application_pb2, storage_pb2

CHUNK = 1024 * 1024
"""Bytes per stream message: the API's limit."""

Progress = Callable[[int, int | None], None]
"""on_progress(bytes_done, bytes_total or None when unknown)."""
Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO
"""What to upload: a file's path, the bytes themselves, or a binary file object."""

M = TypeVar("M")
T = TypeVar("T")

FORMATS = {
    "zip": "ZIP",
    "tar.gz": "TAR_GZ",
    "tgz": "TAR_GZ",
    "tar_gz": "TAR_GZ",
}


OBJECTS_MAX_PAGE = 5000
"""ListObjects' largest page (other List calls: 1,000)."""


def container_name(container_id: str) -> str:
    return f"containers/{container_id}"


def application_name(application_id: str) -> str:
    return f"applications/{application_id}"


def version_name(application_id: str, version: str) -> str:
    return f"applications/{application_id}/versions/{version}"


def archive_format(value: str | int | None, source: Source) -> int:
    """The ApplicationVersion.Format to send: as given (zip, tar.gz, tgz or the enum), else
    inferred from the file name (.zip, .tar.gz, .tgz)."""
    Format = application_pb2.ApplicationVersion.Format
    if isinstance(value, int):
        return value
    if value:
        name = FORMATS.get(value.strip().lower())
        if name is None:
            raise _invalid("format", f"unknown archive format {value!r}; one of zip, tar.gz")
        return Format.Value(name)
    if isinstance(source, str | os.PathLike):
        lower = os.fspath(source).lower()
        for suffix, name in ((".zip", "ZIP"), (".tar.gz", "TAR_GZ"), (".tgz", "TAR_GZ")):
            if lower.endswith(suffix):
                return Format.Value(name)
    raise _invalid(
        "format",
        "cannot tell the archive format from the file name; name it .zip, .tar.gz or .tgz, "
        "or give the format",
    )


def _invalid(field: str, message: str) -> ShoalError:
    return ShoalError(
        StatusCode.INVALID_ARGUMENT, f"{field}: {message}", reason="INVALID_ARGUMENT", field=field
    )


@contextmanager
def _reader(source: Source) -> Iterator[tuple[Callable[[], bytes], int | None]]:
    """(read the next chunk, total size or None) of an upload source."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        position = 0

        def next_slice() -> bytes:
            nonlocal position
            part = bytes(view[position : position + CHUNK])
            position += len(part)
            return part

        yield next_slice, len(view)
    elif isinstance(source, str | os.PathLike):
        # Opened before the call starts, so a missing file fails here, not mid-stream.
        with open(source, "rb") as f:
            yield (lambda: f.read(CHUNK)), os.fstat(f.fileno()).st_size
    else:
        yield (lambda: source.read(CHUNK)), _remaining(source)


def _remaining(f: BinaryIO) -> int | None:
    try:
        return os.fstat(f.fileno()).st_size - f.tell()
    except (AttributeError, OSError, ValueError):
        return None


def _messages(
    make: Callable[..., M],
    header: dict[str, Any],
    read: Callable[[], bytes],
    total: int | None,
    on_progress: Progress | None,
    failures: list[Exception],
) -> Iterator[M]:
    """Header, 1 MiB data messages, then the SHA-256. gRPC drains this iterator on a thread of
    its own, where an exception would only cancel the call: it is kept for the caller, and
    the stream ends without its checksum, which the server refuses."""
    yield make(**header)
    digest = hashlib.sha256()
    done = 0
    try:
        while chunk := read():
            digest.update(chunk)
            done += len(chunk)
            yield make(data=chunk)
            if on_progress is not None:
                on_progress(done, total)
    except Exception as e:  # handed to the caller's thread (GeneratorExit passes through)
        failures.append(e)
        return
    yield make(sha256=digest.hexdigest())


class StorageMethods:
    """Containers, objects and application packages. Mixed into `Client`."""

    if TYPE_CHECKING:
        timeout: float
        _metadata: tuple[tuple[str, str], ...]
        _storage: Any
        _apps: Any

        def _call(
            self, method: Callable[..., T], request: Any, timeout: float | None = None
        ) -> T: ...

        def _pages(
            self, method: Callable[..., Any], request: Any, items: str, max_page: int = ...
        ) -> Listing[Any]: ...

    def _send(
        self,
        method: Callable[..., T],
        make: Callable[..., Any],
        header: dict[str, Any],
        source: Source,
        on_progress: Progress | None,
        timeout: float | None,
    ) -> T:
        failures: list[Exception] = []
        with _reader(source) as (read, total):
            stream = _messages(make, header, read, total, on_progress, failures)
            try:
                result = method(stream, metadata=self._metadata, timeout=timeout)
            except grpc.RpcError as e:
                if failures:
                    raise failures[0] from None
                raise ShoalError.from_rpc_error(e) from None
        if failures:  # the server cannot have accepted a stream without its checksum
            raise failures[0]
        return result

    # Containers

    def create_container(self, container_id: str) -> storage_pb2.Container:
        request = storage_pb2.CreateContainerRequest(container_id=container_id)
        return self._call(self._storage.CreateContainer, request)

    def get_container(self, container_id: str) -> storage_pb2.Container:
        request = storage_pb2.GetContainerRequest(name=container_name(container_id))
        return self._call(self._storage.GetContainer, request)

    def list_containers(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> Listing[storage_pb2.Container]:
        request = storage_pb2.ListContainersRequest(page_size=page_size, page_token=page_token)
        return self._pages(self._storage.ListContainers, request, "containers")

    def delete_container(self, container_id: str) -> None:
        """Delete a container and every object in it."""
        request = storage_pb2.DeleteContainerRequest(name=container_name(container_id))
        self._call(self._storage.DeleteContainer, request)

    # Objects

    def upload_object(
        self,
        container_id: str,
        key: str,
        source: Source,
        *,
        on_progress: Progress | None = None,
        timeout: float | None = None,
    ) -> storage_pb2.Object:
        """Store `source` (a path, bytes, or a binary file object read to its end) as one
        object, replacing any with the same key.

        `on_progress(done, total)` runs on gRPC's sending thread after each 1 MiB. `timeout`
        bounds the whole transfer; None (the default) lets a large one take what it takes.
        """
        header = {
            "header": storage_pb2.UploadObjectHeader(
                container=container_name(container_id), key=key
            )
        }
        return self._send(
            self._storage.UploadObject,
            storage_pb2.UploadObjectRequest,
            header,
            source,
            on_progress,
            timeout,
        )

    def download_object(
        self,
        container_id: str,
        key: str,
        path: str | os.PathLike[str],
        *,
        offset: int = 0,
        on_progress: Progress | None = None,
        timeout: float | None = None,
    ) -> storage_pb2.Object:
        """Write an object (from byte `offset` on) to `path`, creating missing directories.

        The bytes go to a temporary file beside `path` that replaces it only once complete
        and, for a whole object, only when its SHA-256 matches: a failed download leaves
        `path` as it was. A mismatch raises ShoalError(DATA_LOSS, reason CHECKSUM_MISMATCH).
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.parent / f".shoal-{secrets.token_hex(6)}.part"
        # os.open with 0o666 leaves the final file's mode to the umask, as any new file's.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                obj = self._receive(container_id, key, offset, f.write, on_progress, timeout)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return obj

    def read_object(
        self, container_id: str, key: str, *, offset: int = 0, timeout: float | None = None
    ) -> bytes:
        """An object's bytes (from `offset` on) in memory, checked as `download_object` does."""
        parts: list[bytes] = []
        self._receive(container_id, key, offset, parts.append, None, timeout)
        return b"".join(parts)

    def _receive(
        self,
        container_id: str,
        key: str,
        offset: int,
        write: Callable[[bytes], Any],
        on_progress: Progress | None,
        timeout: float | None,
    ) -> storage_pb2.Object:
        request = storage_pb2.DownloadObjectRequest(
            container=container_name(container_id), key=key, offset=offset
        )
        digest = hashlib.sha256()
        obj: storage_pb2.Object | None = None
        done = 0
        try:
            for message in self._storage.DownloadObject(
                request, metadata=self._metadata, timeout=timeout
            ):
                if obj is None:
                    obj = message.object
                if message.data:
                    digest.update(message.data)
                    write(message.data)
                    done += len(message.data)
                    if on_progress is not None:
                        on_progress(done, max(obj.size - offset, 0))
        except grpc.RpcError as e:
            raise ShoalError.from_rpc_error(e) from None
        where = f"containers/{container_id} object {key!r}"
        if obj is None:
            raise ShoalError(
                StatusCode.DATA_LOSS,
                f"{where}: the download ended before it started",
                reason="INCOMPLETE_DOWNLOAD",
            )
        if done != obj.size - offset:
            raise ShoalError(
                StatusCode.DATA_LOSS,
                f"{where}: received {done} bytes, expected {obj.size - offset}",
                reason="INCOMPLETE_DOWNLOAD",
            )
        if offset == 0 and obj.sha256 and digest.hexdigest() != obj.sha256:
            raise ShoalError(
                StatusCode.DATA_LOSS,
                f"{where}: SHA-256 of the received bytes is {digest.hexdigest()}, the server "
                f"announced {obj.sha256}",
                reason="CHECKSUM_MISMATCH",
            )
        return obj

    def get_object(self, container_id: str, key: str) -> storage_pb2.Object:
        request = storage_pb2.GetObjectRequest(container=container_name(container_id), key=key)
        return self._call(self._storage.GetObject, request)

    def list_objects(
        self, container_id: str, prefix: str = "", *, page_size: int = 0, page_token: str = ""
    ) -> Listing[storage_pb2.Object]:
        """Objects whose key starts with `prefix`, ordered by key, fetched a page at a time."""
        request = storage_pb2.ListObjectsRequest(
            container=container_name(container_id), prefix=prefix, page_size=page_size,
            page_token=page_token,
        )
        return self._pages(self._storage.ListObjects, request, "objects", OBJECTS_MAX_PAGE)

    def delete_object(self, container_id: str, key: str) -> None:
        request = storage_pb2.DeleteObjectRequest(container=container_name(container_id), key=key)
        self._call(self._storage.DeleteObject, request)

    # Applications

    def create_application(
        self, application_id: str, *, display_name: str = ""
    ) -> application_pb2.Application:
        request = application_pb2.CreateApplicationRequest(
            application_id=application_id,
            application=application_pb2.Application(display_name=display_name),
        )
        return self._call(self._apps.CreateApplication, request)

    def get_application(self, application_id: str) -> application_pb2.Application:
        request = application_pb2.GetApplicationRequest(name=application_name(application_id))
        return self._call(self._apps.GetApplication, request)

    def list_applications(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> Listing[application_pb2.Application]:
        request = application_pb2.ListApplicationsRequest(
            page_size=page_size, page_token=page_token)
        return self._pages(self._apps.ListApplications, request, "applications")

    def update_application(
        self,
        application_id: str,
        *,
        display_name: str | None = None,
        default_version: str | None = None,
    ) -> application_pb2.Application:
        """Change what is given; None leaves a field, "" clears the default version."""
        request = application_pb2.UpdateApplicationRequest(name=application_name(application_id))
        if display_name is not None:
            request.display_name = display_name
        if default_version is not None:
            request.default_version = default_version
        return self._call(self._apps.UpdateApplication, request)

    def set_default_version(self, application_id: str, version: str) -> application_pb2.Application:
        return self.update_application(application_id, default_version=version)

    def delete_application(self, application_id: str) -> None:
        request = application_pb2.DeleteApplicationRequest(name=application_name(application_id))
        self._call(self._apps.DeleteApplication, request)

    def upload_application_version(
        self,
        application_id: str,
        version: str,
        source: Source,
        *,
        format: str | int | None = None,
        on_progress: Progress | None = None,
        timeout: float | None = None,
    ) -> application_pb2.ApplicationVersion:
        """Upload a zip or tar.gz archive as a new version. `format` ("zip", "tar.gz") is
        inferred from a path's name when not given; bytes and file objects need it."""
        header = {
            "header": application_pb2.UploadApplicationVersionHeader(
                parent=application_name(application_id),
                version_id=version,
                format=archive_format(format, source),  # type: ignore[arg-type]
            )
        }
        return self._send(
            self._apps.UploadApplicationVersion,
            application_pb2.UploadApplicationVersionRequest,
            header,
            source,
            on_progress,
            timeout,
        )

    def list_application_versions(
        self, application_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> Listing[application_pb2.ApplicationVersion]:
        request = application_pb2.ListApplicationVersionsRequest(
            parent=application_name(application_id), page_size=page_size, page_token=page_token
        )
        return self._pages(self._apps.ListApplicationVersions, request, "versions")

    def delete_application_version(self, application_id: str, version: str) -> None:
        request = application_pb2.DeleteApplicationVersionRequest(
            name=version_name(application_id, version)
        )
        self._call(self._apps.DeleteApplicationVersion, request)
