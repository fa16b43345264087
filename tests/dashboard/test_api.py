"""The dashboard's HTTP side against the real suite: the login and its session cookie, every
data call refused without one and scoped to its account, the task list's filters and paging,
the live streams (a job's progress, a log), logout, and the headers that keep pages to
themselves."""

from __future__ import annotations

import asyncio
import json
import shlex
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from gateway import accounts
from shoal.suite import LocalSuite
from tests.support import wait_for

WAIT = 60.0


async def signed_in(suite: LocalSuite, key: str) -> aiohttp.ClientSession:
    # unsafe: the dashboard is on an IP address, whose cookies aiohttp refuses by default.
    http = aiohttp.ClientSession(suite.dashboard_url, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 timeout=aiohttp.ClientTimeout(total=WAIT))
    r = await http.post("/login", data={"key": key}, allow_redirects=False)
    assert (r.status, r.headers["Location"]) == (303, "/"), await r.text()
    return http


@pytest.fixture
async def http(suite: LocalSuite) -> AsyncIterator[aiohttp.ClientSession]:
    s = await signed_in(suite, suite.client_config.key)
    yield s
    await s.close()


@pytest.fixture(scope="module")
def job(suite: LocalSuite) -> str:
    """Job `j` on pool `p` (2 nodes): twelve tasks done, t03/t07/t11 failed with exit 7."""
    c = suite.client()
    c.create_pool("p", target_nodes=2, task_slots_per_node=2)
    c.create_job("j", pool_id="p")
    c.add_tasks("j", [
        {"id": f"t{i:02d}", "command_line": f"/bin/sh -c 'echo out of t{i:02d}; echo err >&2; exit {7 if i % 4 == 3 else 0}'"}
        for i in range(12)])
    wait_for(lambda: c.get_job("j").task_counts.completed == 12, "job j's tasks to complete", WAIT)
    return "j"


async def events(http: aiohttp.ClientSession, path: str) -> AsyncIterator[tuple[str, Any]]:
    """The (event, data) pairs of a Server-Sent Events stream."""
    async with http.get(path) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
        name = ""
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                yield name, json.loads(line[6:])


async def first(stream: AsyncIterator[tuple[str, Any]], want: str) -> Any:
    async with asyncio.timeout(WAIT):
        async for name, data in stream:
            if name == want:
                return data
    raise AssertionError(f"the stream ended without a {want!r} event")


async def test_everything_but_the_login_and_its_files_needs_a_session(suite: LocalSuite) -> None:
    async with aiohttp.ClientSession(suite.dashboard_url) as anon:
        r = await anon.get("/api/pools")
        assert r.status == 401 and (await r.json())["reason"] == "UNAUTHENTICATED"
        r = await anon.get("/jobs/j?state=COMPLETED", allow_redirects=False)
        to = URL(r.headers["Location"])
        assert (r.status, to.path, to.query["next"]) == (303, "/login", "/jobs/j?state=COMPLETED")
        r = await anon.get("/api/jobs/j/events")
        assert r.status == 401
        for path in ("/login", "/static/app.js", "/static/style.css"):
            assert (await anon.get(path)).status == 200, path
        r = await anon.get("/api/pools", headers={"Cookie": "shoal_session=made-up"})
        assert r.status == 401


async def test_a_wrong_key_is_refused_and_the_right_one_opens_a_session(suite: LocalSuite) -> None:
    async with aiohttp.ClientSession(suite.dashboard_url,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as h:
        r = await h.post("/login", data={"key": "shoal_not-a-key"}, allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (303, "/login?failed=1")
        assert "Set-Cookie" not in r.headers and (await h.get("/api/whoami")).status == 401
        r = await h.post("/login?next=//elsewhere.example/x",
                         data={"key": suite.client_config.key}, allow_redirects=False)
        assert r.headers["Location"] == "/"  # only places on this site
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert suite.client_config.key not in cookie  # the key stays in the gateway
        assert await (await h.get("/api/whoami")).json() == {"account": "default"}


async def test_a_post_from_another_site_is_refused(suite: LocalSuite) -> None:
    async with aiohttp.ClientSession(suite.dashboard_url) as h:
        r = await h.post("/login", data={"key": suite.client_config.key},
                         headers={"Origin": "http://elsewhere.example"}, allow_redirects=False)
        assert r.status == 403 and "Set-Cookie" not in r.headers


async def test_each_account_sees_only_its_own(suite: LocalSuite, job: str) -> None:
    key = accounts.create_account(suite.config.db_path("gateway"), "team-b", suite.config.secret)
    other = await signed_in(suite, key)
    try:
        assert await (await other.get("/api/whoami")).json() == {"account": "team-b"}
        assert await (await other.get("/api/pools")).json() == []
        assert (await (await other.get("/api/jobs")).json())["jobs"] == []
        for path in ("/api/pools/p", f"/api/jobs/{job}", f"/api/jobs/{job}/tasks",
                     f"/api/jobs/{job}/tasks/t03", f"/api/jobs/{job}/tasks/t03/why"):
            r = await other.get(path)
            assert r.status == 404, path
            assert (await r.json())["reason"] in ("POOL_NOT_FOUND", "JOB_NOT_FOUND"), path
        failed = await first(events(other, f"/api/jobs/{job}/tasks/t03/log"), "failed")
        assert failed["status"] == 404
    finally:
        await other.close()


async def test_the_task_list_filters_and_pages(http: aiohttp.ClientSession, job: str) -> None:
    async def ids(query: str) -> tuple[list[str], str]:
        r = await http.get(f"/api/jobs/{job}/tasks?{query}")
        assert r.status == 200, await r.text()
        body = await r.json()
        return [t["name"].rsplit("/", 1)[-1] for t in body["tasks"]], body["next_page_token"]

    assert (await ids("result=FAILURE"))[0] == ["t03", "t07", "t11"]
    assert (await ids("state=COMPLETED&result=FAILURE&exit_code=7"))[0] == ["t03", "t07", "t11"]
    assert (await ids("exit_code=0&result=FAILURE"))[0] == []
    every = (await (await http.get(f"/api/jobs/{job}/tasks")).json())["tasks"]
    node_of = {t["name"].rsplit("/", 1)[-1]: t["execution_info"]["node"].rsplit("/", 1)[-1]
               for t in every}
    on_node, _ = await ids(f"node={node_of['t03']}")
    assert on_node == [t for t, n in node_of.items() if n == node_of["t03"]]
    page1, token = await ids("page_size=5")
    page2, token2 = await ids(f"page_size=5&page_token={token}")
    page3, end = await ids(f"page_size=5&page_token={token2}")
    assert page1 + page2 + page3 == [f"t{i:02d}" for i in range(12)] and end == ""
    r = await http.get(f"/api/jobs/{job}/tasks?exit_code=seven")
    assert r.status == 400
    body = await r.json()
    assert body["reason"] == "INVALID_ARGUMENT" and "exit_code" in body["error"]
    assert (await http.get("/api/jobs/no such job/tasks")).status == 404


async def test_why_and_the_attempts_of_a_task(http: aiohttp.ClientSession, job: str) -> None:
    task = await (await http.get(f"/api/jobs/{job}/tasks/t07")).json()
    assert task["execution_info"]["exit_code"] == 7 and task["state"] == "COMPLETED"
    why = await (await http.get(f"/api/jobs/{job}/tasks/t07/why")).json()
    assert why["reasons"] == ["COMPLETED"] and "exit code 7" in why["summary"]


async def test_a_jobs_progress_and_a_log_stream_live(
    suite: LocalSuite, http: aiohttp.ClientSession, gate: Path
) -> None:
    c = suite.client()
    c.create_job("live", pool_id="p")
    script = f"echo before; while [ ! -e {gate} ]; do sleep 0.05; done; echo after"
    c.add_task("live", "w", f"/bin/sh -c {shlex.quote(script)}")
    progress = events(http, "/api/jobs/live/events")
    job = await first(progress, "job")
    assert job["name"] == "jobs/live" and int(job["task_counts"]["completed"]) == 0
    log = events(http, "/api/jobs/live/tasks/w/log?file=stdout.txt")
    assert await first(log, "log") == "before\n"  # while it runs
    await asyncio.to_thread(gate.touch)
    assert await first(log, "log") == "after\n"
    assert await first(log, "end") == {}
    async with asyncio.timeout(WAIT):
        while int(job["task_counts"]["completed"]) != 1:
            job = await first(progress, "job")
    await progress.aclose()
    # A finished task's log is read from where it was kept, then the stream ends.
    text = ""
    async for name, data in events(http, "/api/jobs/live/tasks/w/log?file=stdout.txt&tail=1"):
        if name == "log":
            text += data
        assert name in ("log", "end")
    assert text == "after\n"


async def test_logout_ends_the_session(suite: LocalSuite) -> None:
    h = await signed_in(suite, suite.client_config.key)
    try:
        token = h.cookie_jar.filter_cookies(URL(suite.dashboard_url))["shoal_session"].value
        r = await h.post("/logout", allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (303, "/login")
        r = await h.get("/api/whoami", headers={"Cookie": f"shoal_session={token}"})
        assert r.status == 401
    finally:
        await h.close()


async def test_pages_are_kept_to_themselves(http: aiohttp.ClientSession) -> None:
    page = await http.get("/")
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    api = await http.get("/api/pools")
    assert api.headers["Cache-Control"] == "no-store"


def test_the_dashboard_metrics_count_sessions_and_streams(suite: LocalSuite) -> None:
    with urllib.request.urlopen(suite.metrics_url("gateway"), timeout=10) as r:
        text = r.read().decode()
    assert "shoal_dashboard_sessions " in text and "shoal_dashboard_streams " in text



async def test_a_job_deleted_while_followed_ends_its_stream(
    suite: LocalSuite, http: aiohttp.ClientSession
) -> None:
    c = suite.client()
    c.create_job("short-lived", pool_id="p")
    progress = events(http, "/api/jobs/short-lived/events")
    assert (await first(progress, "job"))["name"] == "jobs/short-lived"
    await asyncio.to_thread(c.delete_job, "short-lived")
    failed = await first(progress, "failed")
    assert (failed["status"], failed["reason"]) == (404, "JOB_NOT_FOUND")
