"""A stager database from before incarnation uids (schema 1) still works: its containers and
applications keep the backend keys they were stored under, new ones get uids."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from services.storage_stager.main import SERVICE, StagerService
from shoal.cluster_config import ClusterConfig
from shoal.internal.v1 import staging_pb2
from shoal.v1 import application_pb2 as app_pb2
from shoal.v1 import storage_pb2

from .conftest import Stager, http_get
from .test_applications import make_zip

SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
CREATE TABLE containers (
    account TEXT NOT NULL, id TEXT NOT NULL, create_time REAL NOT NULL,
    PRIMARY KEY (account, id)
);
CREATE TABLE applications (
    account TEXT NOT NULL, id TEXT NOT NULL, id_lower TEXT NOT NULL,
    display_name TEXT NOT NULL, default_version TEXT NOT NULL, create_time REAL NOT NULL,
    PRIMARY KEY (account, id_lower)
);
CREATE TABLE app_versions (
    account TEXT NOT NULL, app_lower TEXT NOT NULL, version TEXT NOT NULL,
    version_lower TEXT NOT NULL, format TEXT NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, create_time REAL NOT NULL,
    PRIMARY KEY (account, app_lower, version_lower),
    FOREIGN KEY (account, app_lower) REFERENCES applications (account, id_lower)
        ON DELETE CASCADE
);
"""


@pytest.fixture
def backend_kind() -> str:
    return "local"


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_schema_1_records_keep_their_keys(
    config: ClusterConfig, http: aiohttp.ClientSession
) -> None:
    archive = make_zip({"run.sh": b"#!/bin/sh\n"})
    sha = hashlib.sha256(archive).hexdigest()
    config.db_path(SERVICE).parent.mkdir(parents=True)
    db = sqlite3.connect(config.db_path(SERVICE))
    db.executescript(SCHEMA_1)
    db.execute("INSERT INTO containers VALUES ('acct-a', 'old', 1.0)")
    db.execute("INSERT INTO applications VALUES ('acct-a', 'Tool', 'tool', '', '1.0', 1.0)")
    db.execute("INSERT INTO app_versions VALUES ('acct-a', 'tool', '1.0', '1.0', 'zip', ?, ?, 1.0)",
               (len(archive), sha))
    db.commit()
    db.close()

    svc = StagerService(config)
    await svc.start()
    try:
        # What schema 1 stored, where it stored it.
        await svc.backend.put("acct-a/containers/old/a.txt", _stream(b"legacy"), None)
        await svc.backend.put("acct-a/apps/tool/1.0", _stream(archive), None)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as ch:
            client = Stager(ch, config.service_token, "acct-a")
            assert await client.keys("old") == ["a.txt"]
            _, body, _ = await client.download("old", "a.txt")
            assert body == b"legacy"
            grant = (await client("GrantDownloads", staging_pb2.GrantDownloadsRequest(specs=[
                staging_pb2.DownloadSpec(application_packages=[
                    app_pb2.ApplicationPackageReference(application_id="tool")])]))).grants[0]
            assert grant.packages[0].version == "1.0"
            assert await http_get(http, grant.packages[0].archive.url) == (200, archive)

            await client("DeleteContainer", storage_pb2.DeleteContainerRequest(
                name="containers/old"))
            await client.create_container("old")
            assert await client.keys("old") == []
            await client.upload("old", "a.txt", b"new")
            new = await svc.store.get_container("acct-a", "old")
            assert new is not None and new.uid
            stored = [o.key for o in await svc.backend.list("acct-a/containers/", "", 10)]
            assert stored == [f"acct-a/containers/old.{new.uid}/a.txt"]
    finally:
        await svc.stop()
