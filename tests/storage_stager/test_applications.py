"""ApplicationService over real gRPC on both backends: applications, versions (zip and
tar.gz), the default version, archives refused, and deletion of what was stored."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import aiohttp
import grpc

from shoal.internal.v1 import staging_pb2
from shoal.v1 import application_pb2 as app_pb2

from .conftest import Stager, http_get

ZIP = app_pb2.ApplicationVersion.ZIP
TAR_GZ = app_pb2.ApplicationVersion.TAR_GZ
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def make_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def versions(client: Stager, app: str) -> list[str]:
    resp = await client("ListApplicationVersions",
                        app_pb2.ListApplicationVersionsRequest(parent=f"applications/{app}"))
    return [v.name.rsplit("/", 1)[1] for v in resp.versions]


async def test_applications_create_get_list_update_delete(client: Stager, other: Stager) -> None:
    made = await client.create_app("Blender", "Blender 3D")
    assert (made.name, made.display_name, made.default_version) == (
        "applications/Blender", "Blender 3D", "")
    for app in ["ffmpeg", "zeta", "Alpha"]:
        await client.create_app(app)
    dup = await client.fails("CreateApplication",
                             app_pb2.CreateApplicationRequest(application_id="blender"))
    assert (dup.code, dup.reason) == (grpc.StatusCode.ALREADY_EXISTS,
                                      "APPLICATION_ALREADY_EXISTS")
    got = await client("GetApplication", app_pb2.GetApplicationRequest(name="applications/BLENDER"))
    assert got == made

    names: list[str] = []
    token = ""
    for _ in range(10):
        page = await client("ListApplications",
                            app_pb2.ListApplicationsRequest(page_size=3, page_token=token))
        names += [a.name for a in page.applications]
        token = page.next_page_token
        if not token:
            break
    assert names == ["applications/Alpha", "applications/Blender", "applications/ffmpeg",
                     "applications/zeta"]
    assert list((await other("ListApplications", app_pb2.ListApplicationsRequest())).applications) == []

    renamed = await client("UpdateApplication", app_pb2.UpdateApplicationRequest(
        name="applications/blender", display_name="Blender!"))
    assert (renamed.display_name, renamed.default_version) == ("Blender!", "")

    await client("DeleteApplication", app_pb2.DeleteApplicationRequest(name="applications/zeta"))
    gone = await client.fails("GetApplication", app_pb2.GetApplicationRequest(name="applications/zeta"))
    assert (gone.code, gone.reason) == (grpc.StatusCode.NOT_FOUND, "APPLICATION_NOT_FOUND")

    bad = await client.fails("CreateApplication", app_pb2.CreateApplicationRequest(
        application_id="x", application=app_pb2.Application(default_version="1.0")))
    assert (bad.code, bad.field) == (INVALID, "application.default_version")
    bad = await client.fails("CreateApplication",
                             app_pb2.CreateApplicationRequest(application_id="no/slash"))
    assert (bad.code, bad.field) == (INVALID, "application_id")


async def test_versions_zip_and_tar_gz_default_and_delete(
    client: Stager, http: aiohttp.ClientSession
) -> None:
    await client.create_app("tool")
    zip_bytes = make_zip({"bin/run.sh": b"#!/bin/sh\necho zip\n", "README": b"zip"})
    tgz_bytes = make_tar_gz({"bin/run.sh": b"#!/bin/sh\necho tgz\n"})
    v1 = await client.upload_version("tool", "1.0", zip_bytes, ZIP)
    assert (v1.name, v1.format, v1.size) == ("applications/tool/versions/1.0", ZIP, len(zip_bytes))
    assert v1.sha256 == hashlib.sha256(zip_bytes).hexdigest() and v1.create_time.seconds > 0
    v2 = await client.upload_version("Tool", "2.0-beta", tgz_bytes, TAR_GZ)
    assert (v2.name, v2.format) == ("applications/tool/versions/2.0-beta", TAR_GZ)
    assert await versions(client, "tool") == ["1.0", "2.0-beta"]

    again = await client.version_fails("tool", "1.0", make_zip({"other": b"x"}))
    assert (again.code, again.reason) == (grpc.StatusCode.ALREADY_EXISTS, "VERSION_ALREADY_EXISTS")

    nope = await client.fails("UpdateApplication", app_pb2.UpdateApplicationRequest(
        name="applications/tool", default_version="9.9"))
    assert (nope.code, nope.reason, nope.field) == (INVALID, "VERSION_NOT_FOUND", "default_version")
    made_default = await client("UpdateApplication", app_pb2.UpdateApplicationRequest(
        name="applications/tool", default_version="2.0-BETA"))
    assert made_default.default_version == "2.0-beta"

    # The stored archive is the uploaded one, byte for byte (through a staging grant).
    grant = (await client("GrantDownloads", staging_pb2.GrantDownloadsRequest(specs=[
        staging_pb2.DownloadSpec(application_packages=[app_pb2.ApplicationPackageReference(
            application_id="tool")])]))).grants[0]
    pkg = grant.packages[0]
    assert (pkg.version, pkg.is_default, pkg.format) == ("2.0-beta", True, TAR_GZ)
    assert await http_get(http, pkg.archive.url) == (200, tgz_bytes)

    await client("DeleteApplicationVersion", app_pb2.DeleteApplicationVersionRequest(
        name="applications/tool/versions/2.0-beta"))
    assert await versions(client, "tool") == ["1.0"]
    status, _ = await http_get(http, pkg.archive.url)
    assert status == 404  # the archive is gone, not just its record
    cleared = await client("GetApplication", app_pb2.GetApplicationRequest(name="applications/tool"))
    assert cleared.default_version == ""  # a default must exist

    keep = (await client("GrantDownloads", staging_pb2.GrantDownloadsRequest(specs=[
        staging_pb2.DownloadSpec(application_packages=[app_pb2.ApplicationPackageReference(
            application_id="tool", version="1.0")])]))).grants[0].packages[0]
    await client("DeleteApplication", app_pb2.DeleteApplicationRequest(name="applications/tool"))
    status, _ = await http_get(http, keep.archive.url)
    assert status == 404
    await client.create_app("tool")
    assert await versions(client, "tool") == []


async def test_bad_archives_and_uploads_are_refused(client: Stager) -> None:
    await client.create_app("app")
    garbage = await client.version_fails("app", "1", b"this is not a zip file" * 100, ZIP)
    assert (garbage.code, garbage.reason) == (INVALID, "INVALID_ARCHIVE")
    escaping = await client.version_fails("app", "1", make_zip({"../evil.sh": b"x"}), ZIP)
    assert escaping.reason == "INVALID_ARCHIVE" and "evil" in escaping.details
    absolute = await client.version_fails("app", "1", make_tar_gz({"/etc/passwd": b"x"}), TAR_GZ)
    assert absolute.reason == "INVALID_ARCHIVE"
    wrong_format = await client.version_fails("app", "1", make_zip({"a": b"x"}), TAR_GZ)
    assert wrong_format.reason == "INVALID_ARCHIVE"
    good = make_zip({"a": b"x"})
    mismatch = await client.version_fails("app", "1", good, ZIP, sha256="ab" * 32)
    assert (mismatch.reason, mismatch.field) == ("CHECKSUM_MISMATCH", "sha256")
    no_format = await client.version_fails("app", "1", good, app_pb2.ApplicationVersion.FORMAT_UNSPECIFIED)
    assert (no_format.code, no_format.field) == (INVALID, "header.format")
    bad_version = await client.version_fails("app", "../1", good, ZIP)
    assert (bad_version.code, bad_version.field) == (INVALID, "header.version_id")
    no_app = await client.version_fails("ghost", "1", good, ZIP)
    assert (no_app.code, no_app.reason) == (grpc.StatusCode.NOT_FOUND, "APPLICATION_NOT_FOUND")
    assert await versions(client, "app") == []

    assert (await client.upload_version("app", "1", good, ZIP)).size == len(good)
    assert await versions(client, "app") == ["1"]
