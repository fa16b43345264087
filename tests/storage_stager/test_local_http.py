"""The local backend's HTTP server: signed URLs only, for their one method and object, until
they expire; ranges; one log line per request."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from structlog.testing import capture_logs

from shoal.agent.v1 import agent_pb2
from shoal.cluster_config import ClusterConfig
from shoal.internal.v1 import staging_pb2
from shoal.v1 import task_pb2
from tests.support import eventually

from .conftest import Clock, Stager, http_get, http_put


@pytest.fixture
def backend_kind() -> str:
    return "local"


async def download_url(client: Stager, container: str, key: str) -> str:
    resp = await client("GrantDownloads", staging_pb2.GrantDownloadsRequest(specs=[
        staging_pb2.DownloadSpec(resource_files=[
            task_pb2.ResourceFile(container=container, object_key=key, file_path=key)])]))
    return str(resp.grants[0].downloads[0].url)


async def upload_url(client: Stager, container: str, key: str) -> str:
    resp = await client("GrantUploads", staging_pb2.GrantUploadsRequest(specs=[
        staging_pb2.UploadSpec(
            job_uid="1", job_id="j", task_id="t", attempt_id="a",
            output_files=[task_pb2.OutputFile(file_pattern=key, container=container)],
            uploads=[agent_pb2.UploadWanted(container=container, key=key)])]))
    return str(resp.grants[0].urls[0])


async def test_expired_altered_and_misused_urls_are_refused(
    client: Stager, http: aiohttp.ClientSession, clock: Clock
) -> None:
    await client.create_container("box")
    await client.upload("box", "a.txt", b"aaa")
    await client.upload("box", "b.txt", b"bbb")
    get_a = await download_url(client, "box", "a.txt")
    put_a = await upload_url(client, "box", "a.txt")
    assert await http_get(http, get_a) == (200, b"aaa")

    assert (await http_get(http, get_a.replace("/a.txt?", "/b.txt?")))[0] == 403  # other object
    sig = get_a.rsplit("sig=", 1)[1]
    altered = get_a.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
    assert (await http_get(http, altered))[0] == 403
    expires = int(get_a.split("expires=")[1].split("&")[0])
    assert (await http_get(http, get_a.replace(f"expires={expires}",
                                               f"expires={expires + 3600}")))[0] == 403
    assert (await http_get(http, get_a.split("?")[0]))[0] == 403  # unsigned
    assert await http_put(http, get_a, b"overwrite") == 403  # a GET URL cannot write
    assert (await http_get(http, put_a))[0] == 403  # a PUT URL cannot read

    clock.offset = 15 * 60 + 1  # past the default TTL
    assert (await http_get(http, get_a))[0] == 403
    assert await http_put(http, put_a, b"too late") == 403
    clock.offset = 0
    _, body, _ = await client.download("box", "a.txt")
    assert body == b"aaa"


async def test_malformed_signatures_and_expiries_are_refused(
    client: Stager, http: aiohttp.ClientSession
) -> None:
    await client.create_container("box")
    await client.upload("box", "a.txt", b"aaa")
    url = await download_url(client, "box", "a.txt")
    base = url.split("?")[0]
    expires = url.split("expires=")[1].split("&")[0]
    sig = url.split("sig=")[1]
    arabic = "".join(chr(0x660 + int(d)) for d in expires)  # int() reads these as digits
    for query in [f"expires={expires}&sig={quote('é')}",
                  f"expires={quote('²')}&sig={sig}",
                  f"expires={quote(arabic)}&sig={sig}",
                  f"expires={expires}&sig={sig}%0A",
                  f"expires={expires}&sig={sig.upper()}"]:
        assert (await http_get(http, f"{base}?{query}"))[0] == 403, query
    assert await http_get(http, url) == (200, b"aaa")


async def test_ranges_and_one_log_line_per_request(
    client: Stager, http: aiohttp.ClientSession
) -> None:
    await client.create_container("box")
    data = bytes(range(256)) * 4
    await client.upload("box", "r.bin", data)
    url = await download_url(client, "box", "r.bin")
    with capture_logs() as logs:
        async with http.get(url, headers={"Range": "bytes=1000-"}) as r:
            assert (r.status, await r.read()) == (206, data[1000:])
            assert r.headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
        async with http.get(url, headers={"Range": "bytes=10-19"}) as r:
            assert (r.status, await r.read()) == (206, data[10:20])
        async with http.get(url, headers={"Range": "bytes=5000-"}) as r:
            assert r.status == 416
        async with http.head(url) as r:
            assert (r.status, r.headers["Content-Length"]) == (200, str(len(data)))
        assert await http_get(http, url) == (200, data)
    served = [(e["method"], e["status"]) for e in logs if e["event"] == "http request"]
    assert served == [("GET", 206), ("GET", 206), ("GET", 416), ("HEAD", 200), ("GET", 200)]
    assert all(re.fullmatch(r"acct-a/containers/box\.[0-9a-f]+/r\.bin", e["key"])
               for e in logs if e["event"] == "http request")


async def test_a_put_cut_short_stores_nothing(client: Stager, config: ClusterConfig) -> None:
    await client.create_container("box")
    await client.upload("box", "k", b"original")
    url = urlsplit(await upload_url(client, "box", "k"))
    # A raw connection: it declares 100 bytes, sends 7 and hangs up, as a crashed agent would.
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 100\r\n\r\npartial".encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

        async def answered() -> bool:
            return any(e["event"] == "http request" and e["method"] == "PUT" for e in logs)

        await eventually(answered, "the server to finish the cut-off upload")
    assert [e["status"] for e in logs if e["event"] == "http request"] == [400]
    _, body, _ = await client.download("box", "k")
    assert body == b"original"
    assert list((config.storage.root(config.state_dir) / "tmp").iterdir()) == []
