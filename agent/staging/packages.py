"""Application packages: installed once per node per application version.

A version installs into `{node_root}/applications/{app_id_lower}/{version}/` by extracting its
archive with services.common.archives (member checks, size and ratio limits, a temporary
directory renamed into place). A marker file next to it, written after the rename, records
the archive's identity, so a restarted agent does not install again and a version whose
content changed (deleted and uploaded anew) is installed afresh. However many tasks need a
version at once, one install runs (single-flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import structlog

from agent.staging import APPLICATION_PACKAGE_FAILED, SERVER_ERROR, USER_ERROR, StagingFailure
from agent.staging.transfer import Expect, TransferError, Transfers
from services.common.archives import ArchiveError, extract_archive, remove_tree
from services.common.errors import ShoalError
from services.common.ids import ID_RE
from services.common.storage_names import check_version_id
from shoal.agent.v1 import agent_pb2
from shoal.v1 import application_pb2

log = structlog.get_logger()

FORMATS = {application_pb2.ApplicationVersion.ZIP: "zip",
           application_pb2.ApplicationVersion.TAR_GZ: "tar.gz"}
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")


def _failure(category: int, grant: agent_pb2.PackageGrant, why: str, *,
             transient: bool = False) -> StagingFailure:
    return StagingFailure(
        category,  # type: ignore[arg-type]
        APPLICATION_PACKAGE_FAILED,
        f"application package {grant.application_id!r} version {grant.version!r}: {why}",
        transient=transient,
    )


def identity(grant: agent_pb2.PackageGrant) -> str:
    """What the marker records: the archive's content identity."""
    a = grant.archive
    return a.cache_key or (f"sha256:{a.sha256}" if a.sha256 else "")


class PackageInstaller:
    def __init__(self, root: Path, transfers: Transfers) -> None:
        self.root = root
        """{node_root}/applications."""
        self._transfers = transfers
        self._inflight: dict[tuple[str, str], asyncio.Task[Path]] = {}
        self._installed: dict[tuple[str, str], str] = {}
        """(app id lower, version) -> identity, of what this process has seen installed."""
        self.installs = 0
        """Versions this process extracted (for logs and tests)."""

    def install_dir(self, grant: agent_pb2.PackageGrant) -> Path:
        """Raises StagingFailure when the grant's names cannot be path components."""
        if ID_RE.fullmatch(grant.application_id) is None:
            raise _failure(SERVER_ERROR, grant, "the application id is not a valid id")
        try:
            check_version_id(grant.version, "version")
        except ShoalError as e:
            raise _failure(SERVER_ERROR, grant, e.message) from None
        return self.root / grant.application_id.lower() / grant.version

    async def install(self, grant: agent_pb2.PackageGrant) -> Path:
        """The install directory of the grant's version, installing it unless the node has
        it. Raises StagingFailure(APPLICATION_PACKAGE_FAILED)."""
        dest = self.install_dir(grant)
        key = (grant.application_id.lower(), grant.version)
        if self._installed.get(key) == identity(grant):
            return dest  # the common case: no I/O
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._install(key, grant, dest))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        # Shielded: a cancelled attempt must not abort an install other attempts wait for.
        return await asyncio.shield(task)

    async def _install(
        self, key: tuple[str, str], grant: agent_pb2.PackageGrant, dest: Path
    ) -> Path:
        marker = _marker(dest)
        if await asyncio.to_thread(_read, marker) == identity(grant):
            self._installed[key] = identity(grant)  # installed by an earlier life of the agent
            return dest
        fmt = FORMATS.get(grant.format)
        if fmt is None:
            raise _failure(SERVER_ERROR, grant, f"unknown archive format {grant.format}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        archive = dest.parent / f".{grant.version}.download-{uuid.uuid4().hex[:12]}"
        try:
            await self._transfers.download(
                grant.archive.url, archive, Expect(grant.archive.size, grant.archive.sha256)
            )
            # An older install (or a half-finished one of a crashed agent) goes first.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(marker)
            await asyncio.to_thread(remove_tree, dest)
            await asyncio.to_thread(extract_archive, archive, fmt, dest)
            await asyncio.to_thread(_write_marker, marker, identity(grant))
        except TransferError as e:
            raise _failure(USER_ERROR if e.permanent else SERVER_ERROR, grant, e.message,
                           transient=not e.permanent) from None
        except ArchiveError as e:
            raise _failure(USER_ERROR, grant, e.message) from None
        except OSError as e:
            raise _failure(SERVER_ERROR, grant, f"cannot install: {e.strerror or e}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(archive)
        self.installs += 1
        self._installed[key] = identity(grant)
        log.info("application package installed", application=grant.application_id,
                 version=grant.version, dir=str(dest))
        return dest

    async def install_all(
        self, grants: Sequence[agent_pb2.PackageGrant]
    ) -> list[tuple[agent_pb2.PackageGrant, Path]]:
        """Install every grant (in parallel); the first failure is raised once all ended."""
        results = await asyncio.gather(*(self.install(g) for g in grants), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [(g, p) for g, p in zip(grants, results, strict=True)]  # type: ignore[misc]


def package_env(installed: Iterable[tuple[agent_pb2.PackageGrant, Path]]) -> dict[str, str]:
    """SHOAL_APP_PACKAGE_{APP}_{VERSION} and AZ_BATCH_APP_PACKAGE_{app}_{version} (Azure on
    Linux keeps the id's case); with no version named, also the versionless names."""
    env: dict[str, str] = {}
    for grant, path in installed:
        app = _NOT_NAME.sub("_", grant.application_id)
        version = _NOT_NAME.sub("_", grant.version)
        value = str(path)
        env[f"SHOAL_APP_PACKAGE_{app.upper()}_{version}"] = value
        env[f"AZ_BATCH_APP_PACKAGE_{app}_{version}"] = value
        if grant.is_default:
            env[f"SHOAL_APP_PACKAGE_{app.upper()}"] = value
            env[f"AZ_BATCH_APP_PACKAGE_{app}"] = value
    return env


def _marker(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.installed"


def _read(p: Path) -> str:
    try:
        return p.read_text()
    except OSError:
        return "\x00unreadable"


def _write_marker(marker: Path, value: str) -> None:
    tmp = marker.with_name(marker.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(value)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, marker)
