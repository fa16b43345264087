"""The stager's records: containers, applications and their versions. Objects themselves live
in the backend; these are what S3 has no notion of inside one bucket."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ArchiveFormat(Enum):
    ZIP = "zip"
    TAR_GZ = "tar.gz"


@dataclass(frozen=True)
class Container:
    account: str
    id: str
    create_time: float
    uid: str
    """Random, set at creation: names this incarnation's space in the backend (keys.py)."""


@dataclass(frozen=True)
class Application:
    account: str
    id: str
    """As the user spelled it; unique per account ignoring case."""
    display_name: str
    default_version: str
    """Empty until set."""
    create_time: float
    uid: str
    """Random, set at creation: names this incarnation's space in the backend (keys.py)."""


@dataclass(frozen=True)
class AppVersion:
    account: str
    app_id: str
    version: str
    """As the user spelled it; unique per application ignoring case."""
    format: ArchiveFormat
    size: int
    sha256: str
    create_time: float
    app_uid: str
    """The uid of the application incarnation the version belongs to."""


@dataclass(frozen=True)
class StoredObject:
    """An object as clients see it: its container and its key inside it."""

    container: str
    key: str
    size: int
    sha256: str
    etag: str
    update_time: float


# Staging: what the scheduler and the pool-manager ask for, and what they get.


@dataclass(frozen=True)
class ResourceFile:
    container: str
    object_key: str
    blob_prefix: str
    http_url: str
    file_path: str
    file_mode: str


@dataclass(frozen=True)
class PackageRef:
    application_id: str
    version: str
    """Empty: the application's default version."""


@dataclass(frozen=True)
class DownloadSpec:
    resource_files: tuple[ResourceFile, ...]
    packages: tuple[PackageRef, ...]


@dataclass(frozen=True)
class Download:
    url: str
    file_path: str
    file_mode: int
    cache_key: str
    """Identity of the content for nodes' caches; empty means do not cache."""
    size: int
    """-1 when unknown."""
    sha256: str


@dataclass(frozen=True)
class PackageGrant:
    application_id: str
    version: str
    format: ArchiveFormat
    archive: Download
    is_default: bool


class Category(Enum):
    USER_ERROR = "user"
    SERVER_ERROR = "server"


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    category: Category = Category.USER_ERROR


@dataclass(frozen=True)
class DownloadGrant:
    downloads: tuple[Download, ...] = ()
    packages: tuple[PackageGrant, ...] = ()
    failure: Failure | None = None


# Not frozen: storage_names.OutputSpec is a protocol of plain (writable) attributes.
@dataclass
class OutputFile:
    file_pattern: str
    container: str
    path: str


@dataclass(frozen=True)
class UploadSpec:
    job_uid: str
    """The scheduler's identity of the job incarnation (job ids are reused): keys its logs."""
    job_id: str
    task_id: str
    attempt_id: str
    output_files: tuple[OutputFile, ...]
    uploads: tuple[tuple[str, str], ...]
    """(container, key) pairs; container "" for the attempt's logs."""


@dataclass(frozen=True)
class UploadGrant:
    urls: tuple[str, ...] = ()
    failure: Failure | None = None


@dataclass
class StagingTally:
    """What the stager granted and served since it started, as plain counts: the metrics
    collector reads them when Prometheus scrapes (services/storage_stager/metrics.py)."""

    download_objects: int = 0
    """Objects (resource files and package archives) granted for download."""
    download_bytes: int = 0
    """Their sizes: what agents were allowed to fetch (an http_url's size is unknown)."""
    upload_urls: int = 0
    """Output files and logs granted for upload (their sizes are known only to the agent)."""
    failures: dict[str, int] = field(default_factory=dict)
    """Specs refused, by failure code (RESOURCE_FILE_DOWNLOAD_FAILED, ...)."""
    http_sent_bytes: int = 0
    """Local backend: bytes its signed-URL server sent (GET bodies)."""
    http_received_bytes: int = 0
    """Local backend: bytes it received (PUT bodies)."""
    http_requests: dict[tuple[str, int], int] = field(default_factory=dict)
    """Local backend: requests to its signed-URL server by (method, status); status 0 when
    the client went away mid-transfer."""

    def downloads(self, grants: list[DownloadGrant]) -> None:
        for g in grants:
            if g.failure is not None:
                self.failed(g.failure)
                continue
            archives = [p.archive for p in g.packages]
            self.download_objects += len(g.downloads) + len(archives)
            self.download_bytes += sum(max(d.size, 0) for d in (*g.downloads, *archives))

    def uploads(self, grants: list[UploadGrant]) -> None:
        for g in grants:
            if g.failure is not None:
                self.failed(g.failure)
            else:
                self.upload_urls += len(g.urls)

    def failed(self, failure: Failure) -> None:
        self.failures[failure.code] = self.failures.get(failure.code, 0) + 1

    def request(self, method: str, status: int) -> None:
        k = (method, status)
        self.http_requests[k] = self.http_requests.get(k, 0) + 1
