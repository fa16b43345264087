"""Application packages from the real S3 server: installed once per node per version (also
across an agent restart and when many tasks ask at once), the environment tasks see, and
archives that are refused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.staging import APPLICATION_PACKAGE_FAILED, StagingFailure
from agent.staging.packages import PackageInstaller, package_env
from agent.staging.transfer import Transfers
from shoal.agent.v1 import agent_pb2
from shoal.v1 import application_pb2
from tests.agent.staging_support import Bucket, package_grant, tar_gz, zip_bytes
from tests.storage_support import MotoServer

ZIP = application_pb2.ApplicationVersion.ZIP


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> Iterator[Bucket]:
    yield Bucket(moto_s3)


@pytest.fixture
async def transfers() -> AsyncIterator[Transfers]:
    t = Transfers()
    yield t
    await t.close()


def listing(d: Path) -> list[str]:
    return sorted(os.listdir(d))


BLENDER = tar_gz({"bin/blender": (b"#!/bin/sh\necho rendering\n", 0o755), "README": (b"hi", 0o644)})


async def test_a_version_installs_once_however_many_tasks_ask(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    grant = package_grant(bucket, "Blender", "2.8", BLENDER)
    apps = tmp_path / "applications"
    inst = PackageInstaller(apps, transfers)
    dirs = await asyncio.gather(*(inst.install(grant) for _ in range(10)))
    assert set(dirs) == {apps / "blender" / "2.8"}
    assert (apps / "blender/2.8/bin/blender").read_bytes().startswith(b"#!/bin/sh")
    assert (apps / "blender/2.8/bin/blender").stat().st_mode & 0o111
    assert inst.installs == 1 and bucket.gets("apps/blender/2.8") == 1

    # A restarted agent (a new installer on the same node root) finds it installed.
    again = PackageInstaller(apps, transfers)
    assert await again.install(grant) == apps / "blender" / "2.8"
    assert again.installs == 0 and bucket.gets("apps/blender/2.8") == 1


async def test_a_version_with_new_content_is_installed_afresh(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    apps = tmp_path / "applications"
    inst = PackageInstaller(apps, transfers)
    await inst.install(package_grant(bucket, "tool", "1", tar_gz({"v": (b"old", 0o644)})))
    # The version was deleted and uploaded again with other bytes: another identity.
    newer = package_grant(bucket, "tool", "1", tar_gz({"v": (b"new", 0o644), "w": (b"", 0o644)}))
    await PackageInstaller(apps, transfers).install(newer)
    assert (apps / "tool/1/v").read_bytes() == b"new" and listing(apps / "tool/1") == ["v", "w"]


def test_environment_names() -> None:
    blender = agent_pb2.PackageGrant(application_id="blender", version="2.8", is_default=True)
    my_app = agent_pb2.PackageGrant(application_id="My-App", version="v1.0")
    env = package_env([(blender, Path("/n/applications/blender/2.8")),
                       (my_app, Path("/n/applications/my-app/v1.0"))])
    assert env == {
        "SHOAL_APP_PACKAGE_BLENDER_2_8": "/n/applications/blender/2.8",
        "AZ_BATCH_APP_PACKAGE_blender_2_8": "/n/applications/blender/2.8",
        "SHOAL_APP_PACKAGE_BLENDER": "/n/applications/blender/2.8",
        "AZ_BATCH_APP_PACKAGE_blender": "/n/applications/blender/2.8",
        "SHOAL_APP_PACKAGE_MY_APP_v1_0": "/n/applications/my-app/v1.0",
        "AZ_BATCH_APP_PACKAGE_My_App_v1_0": "/n/applications/my-app/v1.0",
    }


async def test_a_zip_version_installs(bucket: Bucket, transfers: Transfers, tmp_path: Path) -> None:
    grant = package_grant(bucket, "zipped", "3", zip_bytes({"lib/x.py": b"print(1)\n"}), fmt=ZIP)
    d = await PackageInstaller(tmp_path / "applications", transfers).install(grant)
    assert (d / "lib/x.py").read_text() == "print(1)\n"


@pytest.mark.parametrize(
    ("archive", "needle"),
    [
        (tar_gz({"../evil": (b"x", 0o644)}), "'..' segment"),
        (b"not an archive", "not a valid tar.gz"),
    ],
    # Named ids: the archive's gzip header holds the time it was made, and pytest-xdist's
    # workers must collect the same names (seen: "Different tests were collected").
    ids=["escaping-path", "not-an-archive"],
)
async def test_a_bad_archive_fails_with_application_package_failed(
    bucket: Bucket, transfers: Transfers, tmp_path: Path, archive: bytes, needle: str
) -> None:
    grant = package_grant(bucket, "bad", "1", archive)
    apps = tmp_path / "applications"
    with pytest.raises(StagingFailure) as exc:
        await PackageInstaller(apps, transfers).install(grant)
    assert exc.value.code == APPLICATION_PACKAGE_FAILED
    assert "'bad' version '1'" in exc.value.message and needle in exc.value.message
    assert listing(apps / "bad") == []  # no debris, no marker
    assert "evil" not in listing(tmp_path)


async def test_a_corrupted_download_fails_and_installs_nothing(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    grant = package_grant(bucket, "tool2", "1", BLENDER)
    grant.archive.sha256 = "0" * 64
    with pytest.raises(StagingFailure, match="SHA-256 mismatch"):
        await PackageInstaller(tmp_path / "applications", transfers).install(grant)
    assert listing(tmp_path / "applications/tool2") == []


async def test_names_that_cannot_be_paths_are_refused(
    bucket: Bucket, transfers: Transfers, tmp_path: Path
) -> None:
    inst = PackageInstaller(tmp_path / "applications", transfers)
    for app, version in [("../x", "1"), ("ok", ".."), ("ok", "a/b")]:
        grant = package_grant(bucket, "ok", "1", BLENDER)
        grant.application_id, grant.version = app, version
        with pytest.raises(StagingFailure) as exc:
            await inst.install(grant)
        assert exc.value.code == APPLICATION_PACKAGE_FAILED
    assert "x" not in listing(tmp_path) and "applications" not in listing(tmp_path)
