"""StagingService over real gRPC on both backends: download and upload grants whose URLs a
plain HTTP client uses, failures per spec, stored logs."""

from __future__ import annotations

import hashlib

import aiohttp
import grpc

from shoal.agent.v1 import agent_pb2
from shoal.cluster_config import ClusterConfig
from shoal.internal.v1 import staging_pb2
from shoal.v1 import application_pb2 as app_pb2
from shoal.v1 import storage_pb2, task_pb2
from tests.storage_support import MotoServer

from .conftest import Stager, http_get, http_put
from .test_applications import make_zip

RF = task_pb2.ResourceFile
USER_ERROR = task_pb2.FailureInfo.USER_ERROR
SERVER_ERROR = task_pb2.FailureInfo.SERVER_ERROR


async def grant_downloads(client: Stager, *specs: staging_pb2.DownloadSpec
                          ) -> list[staging_pb2.DownloadGrant]:
    resp = await client("GrantDownloads", staging_pb2.GrantDownloadsRequest(specs=specs))
    assert len(resp.grants) == len(specs)
    return list(resp.grants)


async def grant_uploads(client: Stager, *specs: staging_pb2.UploadSpec
                        ) -> list[staging_pb2.UploadGrant]:
    resp = await client("GrantUploads", staging_pb2.GrantUploadsRequest(specs=specs))
    assert len(resp.grants) == len(specs)
    return list(resp.grants)


def files(*rfs: task_pb2.ResourceFile) -> staging_pb2.DownloadSpec:
    return staging_pb2.DownloadSpec(resource_files=rfs)


async def test_download_grants_expand_and_work_over_plain_http(
    client: Stager, http: aiohttp.ClientSession, backend_kind: str
) -> None:
    await client.create_container("inputs")
    contents = {"a.txt": b"alpha", "frames/001.png": b"one", "frames/002.png": b"two",
                "frames/sub/003.png": b"three"}
    for k, v in contents.items():
        await client.upload("inputs", k, v)
    await client.create_app("blender")
    archive = make_zip({"blender": b"#!/bin/sh\n"})
    await client.upload_version("blender", "2.8", archive)
    await client("UpdateApplication", app_pb2.UpdateApplicationRequest(
        name="applications/blender", default_version="2.8"))

    spec = staging_pb2.DownloadSpec(
        resource_files=[
            RF(container="inputs", object_key="a.txt", file_path="in/a.txt", file_mode="0644"),
            RF(container="inputs", blob_prefix="frames/", file_path="f"),
            RF(container="inputs"),  # the whole container, into the working directory
            RF(http_url="https://example.com/x.tgz", file_path="x.tgz"),
        ],
        application_packages=[app_pb2.ApplicationPackageReference(application_id="Blender"),
                              app_pb2.ApplicationPackageReference(application_id="blender",
                                                                  version="2.8")],
    )
    (grant,) = await grant_downloads(client, spec)
    assert not grant.HasField("failure")
    by_path = {d.file_path: d for d in grant.downloads}
    assert list(by_path) == [
        "in/a.txt", "f/frames/001.png", "f/frames/002.png", "f/frames/sub/003.png",
        "a.txt", "frames/001.png", "frames/002.png", "frames/sub/003.png", "x.tgz"]
    assert by_path["in/a.txt"].file_mode == 0o644 and by_path["f/frames/001.png"].file_mode == 0o770
    one = by_path["in/a.txt"]
    assert (one.size, one.sha256) == (5, hashlib.sha256(b"alpha").hexdigest())
    assert one.cache_key == f"sha256:{one.sha256}"
    for path, d in by_path.items():
        if path == "x.tgz":
            assert (d.url, d.cache_key, d.size, d.sha256) == ("https://example.com/x.tgz", "", -1, "")
            continue
        key = path.removeprefix("in/").removeprefix("f/")
        assert await http_get(http, d.url) == (200, contents[key])
        assert d.size == len(contents[key]) and d.cache_key
        if backend_kind == "local":  # S3 listings carry no SHA-256: the ETag identifies content
            assert d.sha256 == hashlib.sha256(contents[key]).hexdigest()
        else:
            assert d.sha256 or d.cache_key.startswith("etag:")
    default, pinned = grant.packages
    assert (default.application_id, default.version, default.is_default) == ("blender", "2.8", True)
    assert (pinned.version, pinned.is_default) == ("2.8", False)
    assert default.format == app_pb2.ApplicationVersion.ZIP
    assert default.archive.sha256 == hashlib.sha256(archive).hexdigest()
    assert default.archive.size == len(archive)
    assert await http_get(http, default.archive.url) == (200, archive)


async def test_download_failures_per_spec(client: Stager) -> None:
    await client.create_container("inputs")
    await client.upload("inputs", "there.txt", b"x")
    await client.create_app("nodefault")
    await client.upload_version("nodefault", "1", make_zip({"a": b"b"}))
    ok = files(RF(container="inputs", object_key="there.txt", file_path="t"))
    cases = [
        (files(RF(container="ghost", object_key="x", file_path="x")),
         "RESOURCE_FILE_DOWNLOAD_FAILED", "resource_files[0]", "ghost"),
        (files(RF(container="inputs", object_key="there.txt", file_path="t"),
               RF(container="inputs", object_key="missing.txt", file_path="m")),
         "RESOURCE_FILE_DOWNLOAD_FAILED", "resource_files[1]", "missing.txt"),
        (files(RF(container="inputs", blob_prefix="nothing/")),
         "RESOURCE_FILE_DOWNLOAD_FAILED", "resource_files[0]", "nothing/"),
        (files(RF(container="inputs", object_key="there.txt", file_path="../up")),
         "RESOURCE_FILE_DOWNLOAD_FAILED", "resource_files[0].file_path", ".."),
        (files(RF(container="inputs", object_key="a/../there.txt", file_path="t")),
         "RESOURCE_FILE_DOWNLOAD_FAILED", "resource_files[0].object_key", ".."),
        (files(RF(container="Not_Valid", object_key="there.txt", file_path="t")),
         "RESOURCE_FILE_DOWNLOAD_FAILED", "resource_files[0].container", "Not_Valid"),
        (staging_pb2.DownloadSpec(application_packages=[
            app_pb2.ApplicationPackageReference(application_id="ghost")]),
         "APPLICATION_PACKAGE_FAILED", "application_packages[0]", "ghost"),
        (staging_pb2.DownloadSpec(application_packages=[
            app_pb2.ApplicationPackageReference(application_id="nodefault")]),
         "APPLICATION_PACKAGE_FAILED", "application_packages[0]", "default"),
        (staging_pb2.DownloadSpec(application_packages=[
            app_pb2.ApplicationPackageReference(application_id="nodefault", version="2")]),
         "APPLICATION_PACKAGE_FAILED", "application_packages[0]", "'2'"),
    ]
    grants = await grant_downloads(client, ok, *(c[0] for c in cases), ok)
    assert len(grants[0].downloads) == 1 and len(grants[-1].downloads) == 1
    for grant, (_, code, field, word) in zip(grants[1:-1], cases, strict=True):
        f = grant.failure
        assert (f.code, f.category) == (code, USER_ERROR), f
        assert f.message.startswith(field) and word in f.message, f.message
        assert list(grant.downloads) == [] and list(grant.packages) == []

    empty = await client.create_container("empty")
    assert empty.name == "containers/empty"
    (none,) = await grant_downloads(client, files(RF(container="empty")))
    assert none.failure.code == "RESOURCE_FILE_DOWNLOAD_FAILED"


async def test_one_listing_serves_many_specs(
    client: Stager, backend_kind: str, moto: MotoServer | None, config: ClusterConfig
) -> None:
    await client.create_container("shared")
    for i in range(5):
        await client.upload("shared", f"in/{i}.dat", bytes([i]) * 10)
    spec = files(RF(container="shared", blob_prefix="in/"))
    before = moto.requests("GET", f"/{config.storage.bucket}?list-type=2") if moto else 0
    grants = await grant_downloads(client, *([spec] * 50))
    assert all(len(g.downloads) == 5 for g in grants)
    if backend_kind == "s3":
        assert moto is not None
        assert moto.requests("GET", f"/{config.storage.bucket}?list-type=2") == before + 1


async def test_upload_grants_put_then_read_back(
    client: Stager, http: aiohttp.ClientSession
) -> None:
    await client.create_container("results")
    outputs = [task_pb2.OutputFile(file_pattern="out/**/*.csv", container="results", path="run1"),
               task_pb2.OutputFile(file_pattern="summary.txt", container="results")]
    spec = staging_pb2.UploadSpec(
        job_uid="41", job_id="Render", task_id="T1", attempt_id="a1b2", output_files=outputs,
        uploads=[agent_pb2.UploadWanted(container="results", key="run1/x/y.csv"),
                 agent_pb2.UploadWanted(container="results", key="summary.txt"),
                 agent_pb2.UploadWanted(key="stdout.txt")],
    )
    (grant,) = await grant_uploads(client, spec)
    assert not grant.HasField("failure") and len(grant.urls) == 3
    csv = b"a,b\n1,2\n" * 400_000  # a few MiB: streamed, not read whole
    assert await http_put(http, grant.urls[0], csv) == 200
    assert await http_put(http, grant.urls[1], b"all good") == 200
    assert await http_put(http, grant.urls[2], b"line 1\nline 2\n") == 200

    meta, body, _ = await client.download("results", "run1/x/y.csv")
    assert body == csv and meta.size == len(csv)
    assert await client.keys("results") == ["run1/x/y.csv", "summary.txt"]

    # Logs are kept apart from containers and read back through the staging service.
    chunks = await client.read_log("41", "render", "t1", "a1b2", "stdout.txt")
    assert b"".join(c.data for c in chunks) == b"line 1\nline 2\n" and chunks[0].offset == 0
    tail = await client.read_log("41", "Render", "T1", "a1b2", "stdout.txt", offset=7)
    assert (tail[0].offset, b"".join(c.data for c in tail)) == (7, b"line 2\n")
    assert await client.read_log("41", "Render", "T1", "a1b2", "stdout.txt", offset=100) == []


async def test_upload_grants_refuse_keys_outside_the_outputs(client: Stager) -> None:
    await client.create_container("results")
    outputs = [task_pb2.OutputFile(file_pattern="out/*.txt", container="results", path="p")]

    def spec(*uploads: agent_pb2.UploadWanted) -> staging_pb2.UploadSpec:
        return staging_pb2.UploadSpec(job_uid="1", job_id="j", task_id="t", attempt_id="a",
                                      output_files=outputs, uploads=uploads)

    W = agent_pb2.UploadWanted
    ok = spec(W(container="results", key="p/fine.txt"))
    cases = [
        (spec(W(container="results", key="p/fine.txt"), W(container="results", key="elsewhere.txt")),
         "uploads[1]", "elsewhere.txt"),
        (spec(W(container="results", key="p/sub/deep.txt")), "uploads[0]", "p/sub/deep.txt"),
        (spec(W(container="other", key="p/fine.txt")), "uploads[0]", "other"),
        (spec(W(key="secrets.txt")), "uploads[0]", "secrets.txt"),
        (spec(W(container="results", key="p/../../x")), "uploads[0].key", ".."),
    ]
    grants = await grant_uploads(client, ok, *(c[0] for c in cases))
    assert len(grants[0].urls) == 1
    for grant, (_, field, word) in zip(grants[1:], cases, strict=True):
        f = grant.failure
        assert (f.code, f.category) == ("OUTPUT_FILE_UPLOAD_FAILED", USER_ERROR), f
        assert f.message.startswith(field) and word in f.message, f.message
        assert list(grant.urls) == []


async def test_logs_missing_and_deleted_per_job_incarnation(
    client: Stager, other: Stager, http: aiohttp.ClientSession
) -> None:
    def log_spec(uid: str, job: str, attempt: str) -> staging_pb2.UploadSpec:
        return staging_pb2.UploadSpec(job_uid=uid, job_id=job, task_id="t", attempt_id=attempt,
                                      uploads=[agent_pb2.UploadWanted(key="stderr.txt")])

    # Job j1 (uid 1) is deleted and a new j1 (uid 3) runs; its attempt ids may repeat.
    logs = {("1", "j1", "a1"): b"j1a1", ("1", "j1", "a2"): b"j1a2", ("2", "j2", "a1"): b"j2a1",
            ("3", "j1", "a1"): b"new j1a1"}
    grants = await grant_uploads(client, *(log_spec(*k) for k in logs))
    for g, text in zip(grants, logs.values(), strict=True):
        assert await http_put(http, g.urls[0], text) == 200

    for (uid, job, attempt), text in logs.items():
        chunks = await client.read_log(uid, job, "t", attempt, "stderr.txt")
        assert b"".join(c.data for c in chunks) == text
    missing = await client.fails("ReadTaskLog", staging_pb2.ReadTaskLogRequest(
        job_uid="1", job_id="j1", task_id="t", attempt_id="a1", file="stdout.txt"))
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "LOG_NOT_FOUND")
    bad = await client.fails("ReadTaskLog", staging_pb2.ReadTaskLogRequest(
        job_uid="1", job_id="j1", task_id="t", attempt_id="a1", file="../etc/passwd"))
    assert (bad.code, bad.field) == (grpc.StatusCode.INVALID_ARGUMENT, "file")
    hidden = await other.fails("ReadTaskLog", staging_pb2.ReadTaskLogRequest(
        job_uid="1", job_id="j1", task_id="t", attempt_id="a1", file="stderr.txt"))
    assert hidden.reason == "LOG_NOT_FOUND"

    await client("DeleteJobLogs", staging_pb2.DeleteJobLogsRequest(job_uid="1", job_id="j1"))
    for attempt in ["a1", "a2"]:
        gone = await client.fails("ReadTaskLog", staging_pb2.ReadTaskLogRequest(
            job_uid="1", job_id="j1", task_id="t", attempt_id=attempt, file="stderr.txt"))
        assert gone.reason == "LOG_NOT_FOUND"
    for uid, job, text in [("3", "j1", b"new j1a1"), ("2", "j2", b"j2a1")]:
        kept = await client.read_log(uid, job, "t", "a1", "stderr.txt")
        assert b"".join(c.data for c in kept) == text
    await client("DeleteJobLogs", staging_pb2.DeleteJobLogsRequest(job_uid="99", job_id="none"))


async def test_job_uid_is_required_and_checked(client: Stager) -> None:
    specs = [staging_pb2.UploadSpec(job_uid=uid, job_id="j", task_id="t", attempt_id="a",
                                    uploads=[agent_pb2.UploadWanted(key="stdout.txt")])
             for uid in ["", "../1", "1"]]
    missing, bad, ok = await grant_uploads(client, *specs)
    for g in (missing, bad):
        # The scheduler sends it, not the user: its fault.
        assert (g.failure.code, g.failure.category) == ("OUTPUT_FILE_UPLOAD_FAILED", SERVER_ERROR)
        assert "job_uid" in g.failure.message and list(g.urls) == []
    assert len(ok.urls) == 1
    for uid in ["", "a/b", "x" * 65]:
        read = await client.fails("ReadTaskLog", staging_pb2.ReadTaskLogRequest(
            job_uid=uid, job_id="j", task_id="t", attempt_id="a", file="stdout.txt"))
        assert (read.code, read.field) == (grpc.StatusCode.INVALID_ARGUMENT, "job_uid")
        delete = await client.fails("DeleteJobLogs",
                                    staging_pb2.DeleteJobLogsRequest(job_uid=uid, job_id="j"))
        assert (delete.code, delete.field) == (grpc.StatusCode.INVALID_ARGUMENT, "job_uid")


async def test_object_written_through_a_grant_is_an_ordinary_object(
    client: Stager, http: aiohttp.ClientSession
) -> None:
    await client.create_container("out")
    spec = staging_pb2.UploadSpec(
        job_uid="1", job_id="j", task_id="t", attempt_id="a",
        output_files=[task_pb2.OutputFile(file_pattern="r.bin", container="out")],
        uploads=[agent_pb2.UploadWanted(container="out", key="r.bin")])
    (grant,) = await grant_uploads(client, spec)
    assert await http_put(http, grant.urls[0], b"first") == 200
    assert await http_put(http, grant.urls[0], b"second, longer") == 200  # replaces
    got = await client("GetObject", storage_pb2.GetObjectRequest(container="containers/out",
                                                                 key="r.bin"))
    assert got.size == len(b"second, longer")
    (down,) = await grant_downloads(client, files(RF(container="out", object_key="r.bin",
                                                     file_path="r.bin")))
    assert await http_get(http, down.downloads[0].url) == (200, b"second, longer")
