"""Helpers for the staging tests (no tests here): a fresh bucket on the moto S3 server with
presigned GET/PUT URLs, archives, Downloads and grants, and a Staging wired to a scheduler
stand-in that answers staging requests the way the job-scheduler does (through the real
S3 server's presigned URLs)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import boto3
from botocore.config import Config

from agent.staging.attempt import Staging
from agent.staging.cache import ContentCache
from agent.staging.grants import GrantBroker
from agent.staging.packages import PackageInstaller
from agent.staging.transfer import Transfers
from services.common.storage_names import upload_allowed
from shoal.agent.v1 import agent_pb2
from shoal.v1 import application_pb2, task_pb2
from tests.storage_support import MotoServer


class Bucket:
    """A fresh bucket; objects are put with boto3 and reached by presigned URLs."""

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto
        self.name = f"t-{uuid.uuid4().hex[:12]}"
        self.client = boto3.client(
            "s3", endpoint_url=moto.endpoint_url, region_name=moto.region,
            aws_access_key_id=moto.access_key_id, aws_secret_access_key=moto.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        self.client.create_bucket(Bucket=self.name)

    def put(self, key: str, data: bytes) -> agent_pb2.Download:
        etag = self.client.put_object(Bucket=self.name, Key=key, Body=data)["ETag"].strip('"')
        return self.download(key, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                             cache_key=f"etag:{etag}")

    def download(self, key: str, *, file_path: str = "", size: int = -1, sha256: str = "",
                 cache_key: str = "", file_mode: int = 0) -> agent_pb2.Download:
        return agent_pb2.Download(
            url=self.get_url(key), file_path=file_path or key, size=size, sha256=sha256,
            cache_key=cache_key, file_mode=file_mode,
        )

    def get_url(self, key: str) -> str:
        return str(self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.name, "Key": key}, ExpiresIn=900
        ))

    def put_url(self, key: str) -> str:
        return str(self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.name, "Key": key}, ExpiresIn=900
        ))

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def keys(self, prefix: str = "") -> list[str]:
        resp = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return sorted(o["Key"] for o in resp.get("Contents", []))

    def gets(self, key: str) -> int:
        """GET requests the server served for `key`."""
        return self.moto.requests("GET", f"/{self.name}/{key}")


def tar_gz(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, (data, mode) in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), mode
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def package_grant(bucket: Bucket, app: str, version: str, archive: bytes, *,
                  fmt: int = application_pb2.ApplicationVersion.TAR_GZ,
                  is_default: bool = False) -> agent_pb2.PackageGrant:
    key = f"apps/{app.lower()}/{version}"
    d = bucket.put(key, archive)
    d.cache_key = f"sha256:{d.sha256}"
    return agent_pb2.PackageGrant(application_id=app, version=version, format=fmt, archive=d,
                                  is_default=is_default)


Answer = Callable[[agent_pb2.StagingRequest], agent_pb2.StagingGrant | None]


class SchedulerStandIn:
    """Answers the staging requests a GrantBroker sends, as the job-scheduler would relay
    them to the stager: DOWNLOADS with the grant set for the attempt, UPLOADS with presigned
    PUT URLs for keys the task's output specs allow (logs under logs/{attempt}/). `answer`
    overrides; returning None leaves a request unanswered."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self.requests: list[agent_pb2.StagingRequest] = []
        self.downloads: dict[str, agent_pb2.StagingGrant] = {}
        self.output_specs: dict[str, list[task_pb2.OutputFile]] = {}
        self.answer: Answer | None = None
        self.broker: GrantBroker | None = None

    def send(self, req: agent_pb2.StagingRequest) -> None:
        self.requests.append(req)
        grant = self.answer(req) if self.answer is not None else self._default(req)
        if grant is not None:
            assert self.broker is not None
            # Asynchronously, as a grant arrives on the stream later.
            asyncio.get_running_loop().call_soon(self.broker.deliver, grant)

    def withdraw(self, key: tuple[str, int, int]) -> None:
        pass

    def _default(self, req: agent_pb2.StagingRequest) -> agent_pb2.StagingGrant:
        if req.kind == agent_pb2.DOWNLOADS:
            g = agent_pb2.StagingGrant()
            g.CopyFrom(self.downloads.get(req.attempt_id, agent_pb2.StagingGrant()))
            g.attempt_id, g.kind = req.attempt_id, agent_pb2.DOWNLOADS
            return g
        specs = self.output_specs.get(req.attempt_id, [])
        urls = []
        for u in req.uploads:
            if not u.container:
                urls.append(self.bucket.put_url(f"logs/{req.attempt_id}/{u.key}"))
            elif upload_allowed(specs, u.container, u.key):
                urls.append(self.bucket.put_url(f"{u.container}/{u.key}"))
            else:
                return agent_pb2.StagingGrant(
                    attempt_id=req.attempt_id, kind=agent_pb2.UPLOADS,
                    failure=task_pb2.FailureInfo(
                        category=task_pb2.FailureInfo.USER_ERROR,
                        code="OUTPUT_FILE_UPLOAD_FAILED", message=f"key {u.key!r} not allowed",
                    ),
                )
        return agent_pb2.StagingGrant(attempt_id=req.attempt_id, kind=agent_pb2.UPLOADS,
                                      upload_urls=urls)


def make_staging(node_root: Path, scheduler: SchedulerStandIn, *, cache_max_bytes: int = 1 << 30,
                 grant_timeout: float = 600.0) -> Staging:
    transfers = Transfers()
    broker = GrantBroker(scheduler.send, scheduler.withdraw, timeout=grant_timeout)
    scheduler.broker = broker
    cache = ContentCache(node_root / "cache", transfers, cache_max_bytes)
    cache.load()
    return Staging(broker, transfers, cache, PackageInstaller(node_root / "applications", transfers))
