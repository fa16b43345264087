"""The S3 backend, through aiobotocore: AWS S3 or any S3-compatible server (MinIO, Ceph RGW).

Path-style addressing whenever an endpoint is set, since self-hosted servers rarely have
wildcard DNS for virtual-hosted buckets. Puts below one part size go in one PutObject, larger
ones as a multipart upload of 8 MiB parts; either way the object appears only once its checksum
has been checked, so a mismatch or an error leaves the old object as it was. The SHA-256 is
kept as the object's `sha256` user metadata (S3's own checksums of multipart objects are not a
SHA-256 of the content).

That copy must not put one upload's checksum on another's bytes when two writers race on one
key. It is conditional on the ETag the completed upload got (CopySourceIfMatch): if another
writer replaced the object meanwhile (a presigned PUT, another process), the copy fails and the
newer object keeps its own metadata. Some S3-compatible servers ignore that condition (moto
does), so this process's own writes of one key also take turns from completing to copying.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from services.storage_stager.backends.base import (
    CHUNK,
    Backend,
    BackendUnavailable,
    Chunks,
    Expected,
    Hasher,
    ObjectInfo,
    OffsetBeyondEnd,
)
from shoal.cluster_config import StorageConfig

PART = 8 * 1024 * 1024
LIST_PAGE = 1000
"""The most keys S3 returns (and deletes) in one request."""
COPY_LIMIT = 5 * 1024**3
"""Objects up to this size can be copied onto themselves in one request to set metadata."""
META_SHA = "sha256"

log = structlog.get_logger()


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _missing(e: ClientError) -> bool:
    return _code(e) in ("404", "NoSuchKey", "NotFound")


def _superseded(e: ClientError) -> bool:
    """A conditional copy found the object replaced (or deleted) by another writer."""
    return _code(e) in ("PreconditionFailed", "412") or _missing(e)


P = ParamSpec("P")
R = TypeVar("R")


def _reachable(
    call: Callable[Concatenate[S3Backend, P], Coroutine[Any, Any, R]]
) -> Callable[Concatenate[S3Backend, P], Coroutine[Any, Any, R]]:
    """S3 unreachable (connection refused, timeouts, a dropped connection, after botocore's
    own retries) or answering 5xx is BackendUnavailable, not a crash: whoever asked may try
    again later. Answers about the object (404, 403, 412) pass through."""

    @functools.wraps(call)
    async def reaching(self: S3Backend, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await call(self, *args, **kwargs)
        except (HTTPClientError, BotoConnectionError) as e:
            raise BackendUnavailable(
                f"S3 at {self.where} cannot be reached: {type(e).__name__}: {e}") from None
        except ClientError as e:
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status < 500:
                raise
            raise BackendUnavailable(
                f"S3 at {self.where} answered HTTP {status} {_code(e)}") from None

    return reaching


class _KeyTurns:
    """One lock per key being written, dropped once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _info(key: str, r: dict[str, Any], size: int) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=size,
        sha256=r.get("Metadata", {}).get(META_SHA, ""),
        etag=str(r.get("ETag", "")).strip('"'),
        mtime=r["LastModified"].timestamp() if "LastModified" in r else 0.0,
    )


class S3Backend(Backend):
    def __init__(self, config: StorageConfig) -> None:
        self._config = config
        self.bucket = config.bucket
        p = config.prefix.strip("/")
        self._prefix = f"{p}/" if p else ""
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._turns = _KeyTurns()
        self.where = config.endpoint_url or "AWS"
        """For messages: which S3 (never its credentials)."""

    async def start(self) -> None:
        cfg = self._config
        options: dict[str, Any] = {"signature_version": "s3v4"}
        if cfg.endpoint_url:
            options["s3"] = {"addressing_style": "path"}
        # Newer botocore adds CRC checksums to every upload by default, which some
        # S3-compatible servers reject; ours are SHA-256s we check ourselves.
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=cfg.endpoint_url or None,
                region_name=cfg.region or None,
                aws_access_key_id=cfg.access_key_id or None,
                aws_secret_access_key=cfg.secret_access_key or None,
                config=AioConfig(**options),
            )
        )
        await self._ensure_bucket()

    async def _ensure_bucket(self) -> None:
        """Create the bucket when it is missing (MinIO, moto); a bucket an operator made, or
        credentials without the right to look or create, are fine."""
        try:
            await self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as e:
            if not _missing(e):
                log.warning("cannot check the bucket", bucket=self.bucket, code=_code(e))
                return
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self._client.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._client.create_bucket(**kwargs)
            log.info("created the bucket", bucket=self.bucket)
        except ClientError as e:
            if _code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                log.warning("cannot create the bucket", bucket=self.bucket, code=_code(e))

    async def close(self) -> None:
        await self._stack.aclose()

    def _k(self, key: str) -> str:
        return self._prefix + key

    # Writing

    @_reachable
    async def put(self, key: str, data: AsyncIterable[bytes], expected: Expected) -> ObjectInfo:
        hasher = Hasher()
        buf = bytearray()
        upload: _Multipart | None = None
        try:
            async for chunk in data:
                hasher.update(chunk)
                buf += chunk
                while len(buf) >= PART:
                    if upload is None:
                        upload = await _Multipart.create(self._client, self.bucket, self._k(key))
                    await upload.add(bytes(buf[:PART]))
                    del buf[:PART]
            sha = hasher.verify(expected)
            if upload is not None and buf:
                await upload.add(bytes(buf))
            async with self._turns.turn(key):
                if upload is None:
                    await self._client.put_object(Bucket=self.bucket, Key=self._k(key),
                                                  Body=bytes(buf), Metadata={META_SHA: sha})
                else:
                    done = await upload.complete()
                    upload = None
                    await self._set_sha(key, sha, hasher.size, str(done.get("ETag", "")))
                # The ETag and time are the server's; a delete racing us leaves our own view.
                return await self.head(key) or ObjectInfo(key, hasher.size, sha, "", 0.0)
        except BaseException:
            if upload is not None:
                await upload.abort()
            raise

    async def _set_sha(self, key: str, sha: str, size: int, etag: str) -> None:
        """Multipart metadata is fixed before the checksum is known: copy the object onto
        itself with it (one server-side request; beyond 5 GiB the object goes without), only
        while it is still the object with `etag` that this upload completed."""
        if size > COPY_LIMIT or not etag:
            return
        k = self._k(key)
        try:
            await self._client.copy_object(
                Bucket=self.bucket, Key=k, CopySource={"Bucket": self.bucket, "Key": k},
                CopySourceIfMatch=etag, Metadata={META_SHA: sha}, MetadataDirective="REPLACE",
            )
        except ClientError as e:
            if not _superseded(e):
                raise
            # A newer writer won: its object stands, with its own metadata.
            log.info("object replaced while its checksum was being set", key=key)

    @_reachable
    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=self._k(key))

    @_reachable
    async def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete everything: empty prefix")
        count = 0
        # Each round deletes what the listing gave; the next listing starts after it.
        after = ""
        for _ in range(1_000_000):
            batch = await self.list(prefix, after, LIST_PAGE)
            if not batch:
                break
            r = await self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._k(o.key)} for o in batch], "Quiet": True},
            )
            if r.get("Errors"):
                first = r["Errors"][0]
                raise RuntimeError(f"S3 refused to delete {first.get('Key')}: {first.get('Code')}")
            count += len(batch)
            after = batch[-1].key
        return count

    # Reading

    @_reachable
    async def head(self, key: str) -> ObjectInfo | None:
        try:
            r = await self._client.head_object(Bucket=self.bucket, Key=self._k(key))
        except ClientError as e:
            if _missing(e):
                return None
            raise
        return _info(key, r, int(r["ContentLength"]))

    @_reachable
    async def get(self, key: str, offset: int = 0) -> tuple[ObjectInfo, Chunks]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key)}
        if offset:
            kwargs["Range"] = f"bytes={offset}-"
        try:
            r = await self._client.get_object(**kwargs)
        except ClientError as e:
            if _missing(e):
                raise KeyError(key) from None
            if _code(e) != "InvalidRange":
                raise
            # S3 has no empty range: an offset at the very end is an empty read.
            head = await self.head(key)
            if head is None:
                raise KeyError(key) from None
            if offset > head.size:
                raise OffsetBeyondEnd(offset, head.size) from None
            return head, _empty()
        size = int(r["ContentLength"]) + offset
        if "ContentRange" in r:
            size = int(str(r["ContentRange"]).rsplit("/", 1)[1])
        return _info(key, r, size), _body(r["Body"])

    @_reachable
    async def list(self, prefix: str, start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._k(prefix)}
        if start_after:
            kwargs["StartAfter"] = self._k(start_after)
        while len(out) < limit:
            r = await self._client.list_objects_v2(MaxKeys=min(LIST_PAGE, limit - len(out)),
                                                   **kwargs)
            for o in r.get("Contents", []):
                out.append(_info(o["Key"][len(self._prefix):], o, int(o["Size"])))
            if not r.get("IsTruncated"):
                break
            kwargs.pop("StartAfter", None)
            kwargs["ContinuationToken"] = r["NextContinuationToken"]
        return out

    # URLs

    async def presign_get(self, key: str, ttl: int) -> str:
        return str(await self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._k(key)}, ExpiresIn=ttl
        ))

    async def presign_put(self, key: str, ttl: int) -> str:
        return str(await self._client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self._k(key)}, ExpiresIn=ttl
        ))


class _Multipart:
    def __init__(self, client: Any, bucket: str, key: str, upload_id: str) -> None:
        self._c = client
        self._where = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
        self._parts: list[dict[str, Any]] = []

    @classmethod
    async def create(cls, client: Any, bucket: str, key: str) -> _Multipart:
        r = await client.create_multipart_upload(Bucket=bucket, Key=key)
        return cls(client, bucket, key, r["UploadId"])

    async def add(self, body: bytes) -> None:
        n = len(self._parts) + 1
        r = await self._c.upload_part(PartNumber=n, Body=body, **self._where)
        self._parts.append({"PartNumber": n, "ETag": r["ETag"]})

    async def complete(self) -> dict[str, Any]:
        return dict(await self._c.complete_multipart_upload(
            MultipartUpload={"Parts": self._parts}, **self._where
        ))

    async def abort(self) -> None:
        try:
            await self._c.abort_multipart_upload(**self._where)
        except Exception as e:  # noqa: BLE001 - the original error matters more
            # Left behind, the parts cost storage until a bucket lifecycle rule removes them.
            log.warning("cannot abort a multipart upload", key=self._where["Key"], error=str(e))


async def _empty() -> Chunks:
    return
    yield b""  # an async generator that yields nothing


async def _body(body: Any) -> Chunks:
    try:
        async for chunk in body.iter_chunks(CHUNK):
            yield chunk
    finally:
        body.close()
