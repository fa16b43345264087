"""Open dashboard pages and a Prometheus-like scraper, as one separate process, for the
*observe* benchmark: the load that watching a cluster puts on it.

    python -m bench.dashboard_load --url http://127.0.0.1:8051/ --state-dir D --job J \
        --pool P --pages 10 --scrape http://127.0.0.1:9451/metrics,... [--seconds 600]

Each page signs in (its own session, as ten browsers would) and makes the requests the page's
script makes (gateway/dashboard/static/app.js), over HTTP, without a browser: a browser's own
rendering runs on its user's machine, not on the cluster's. A job page loads the page and its
script, /api/whoami, the first page of the task list (50 tasks), follows
/api/jobs/{job}/events and reads the task list again at most every 2 s while the job's counts
move; a pool page follows /api/pools/{pool}/events. The scraper GETs every /metrics URL once
a second. It prints `ready` once every page has its live stream open, and, on SIGTERM or
after --seconds, one JSON line of what it did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from shoal.client import read_client_file

RELOAD_EVERY = 2.0
"""The job page reads its task list again at most this often while the job moves."""
SCRAPE_EVERY = 1.0


class Counts:
    def __init__(self) -> None:
        self.requests = 0
        self.events = 0
        self.errors: list[str] = []
        self.scrapes = 0
        self.scrape_seconds: list[float] = []
        self.scrape_bytes = 0


async def sign_in(base: str, key: str) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True))
    r = await http.post("/login", data={"key": key}, allow_redirects=False)
    if r.status != 303 or r.headers.get("Location") != "/":
        await http.close()
        raise RuntimeError(f"sign-in failed: HTTP {r.status}")
    return http


async def follow(http: aiohttp.ClientSession, path: str, c: Counts, opened: asyncio.Event,
                 on_event: Any = None) -> None:
    async with http.get(path, timeout=aiohttp.ClientTimeout(total=None)) as r:
        if r.status != 200:
            raise RuntimeError(f"{path}: HTTP {r.status}")
        opened.set()
        name = ""
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                c.events += 1
                if name == "failed":
                    raise RuntimeError(f"{path}: {line[6:]}")
                if on_event is not None:
                    on_event(name, json.loads(line[6:]))


async def load_page(http: aiohttp.ClientSession, path: str, c: Counts) -> None:
    """What opening a page fetches before its script starts its own calls."""
    for p in (path, "/static/app.js", "/static/style.css", "/api/whoami"):
        async with http.get(p) as r:
            await r.read()
            c.requests += 1


async def job_page(base: str, key: str, job: str, c: Counts, opened: asyncio.Event) -> None:
    http = await sign_in(base, key)
    try:
        await load_page(http, f"/jobs/{job}", c)
        moved = asyncio.Event()

        async def task_list() -> None:
            while True:
                async with http.get(f"/api/jobs/{job}/tasks?page_size=50") as r:
                    await r.read()
                    c.requests += 1
                await moved.wait()
                moved.clear()
                await asyncio.sleep(RELOAD_EVERY)

        last: list[Any] = [None]

        def on_event(name: str, data: Any) -> None:
            if name == "job" and data.get("task_counts") != last[0]:
                last[0] = data.get("task_counts")
                moved.set()

        lister = asyncio.create_task(task_list())
        try:
            await follow(http, f"/api/jobs/{job}/events", c, opened, on_event)
        finally:
            lister.cancel()
    finally:
        await http.close()


async def pool_page(base: str, key: str, pool: str, c: Counts, opened: asyncio.Event) -> None:
    http = await sign_in(base, key)
    try:
        await load_page(http, f"/pools/{pool}", c)
        await follow(http, f"/api/pools/{pool}/events", c, opened)
    finally:
        await http.close()


async def scraper(urls: list[str], c: Counts) -> None:
    async with aiohttp.ClientSession() as http:
        while True:
            start = time.perf_counter()
            for url in urls:
                async with http.get(url) as r:
                    c.scrape_bytes += len(await r.read())
            c.scrapes += 1
            took = time.perf_counter() - start
            c.scrape_seconds.append(took)
            await asyncio.sleep(max(0.0, SCRAPE_EVERY - took))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    found = read_client_file(Path(args.state_dir))  # the key, as `shoal` finds it: never argv
    if found is None:
        raise SystemExit(f"no client.json in {args.state_dir}")
    key = found.key
    c = Counts()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    pools = max(1, args.pages // 5) if args.pages > 1 else 0
    opened = [asyncio.Event() for _ in range(args.pages)]
    work = [asyncio.create_task(pool_page(args.url, key, args.pool, c, opened[i]))
            for i in range(pools)]
    work += [asyncio.create_task(job_page(args.url, key, args.job, c, opened[i]))
             for i in range(pools, args.pages)]
    work.append(asyncio.create_task(scraper([u for u in args.scrape.split(",") if u], c)))
    async with asyncio.timeout(60):
        await asyncio.gather(*(e.wait() for e in opened))
    print("ready", flush=True)
    done = asyncio.create_task(stop.wait())
    await asyncio.wait([done, *work], timeout=args.seconds, return_when=asyncio.FIRST_COMPLETED)
    for t in work:
        if t.done() and t.exception() is not None:
            c.errors.append(repr(t.exception()))
        t.cancel()
    await asyncio.gather(*work, return_exceptions=True)
    scrapes = sorted(c.scrape_seconds)
    return {"pages": args.pages, "pool_pages": pools, "requests": c.requests,
            "events": c.events, "scrapes": c.scrapes, "scrape_bytes": c.scrape_bytes,
            "scrape_p50_ms": round(1000 * scrapes[len(scrapes) // 2], 2) if scrapes else None,
            "errors": c.errors}


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard_load")
    p.add_argument("--url", required=True, help="the dashboard's base URL")
    p.add_argument("--state-dir", required=True, help="the suite's state dir (its client.json)")
    p.add_argument("--job", required=True)
    p.add_argument("--pool", required=True)
    p.add_argument("--pages", type=int, default=10)
    p.add_argument("--scrape", default="", help="/metrics URLs, comma-separated")
    p.add_argument("--seconds", type=float, default=900.0, help="stop after this long at most")
    out = asyncio.run(main(p.parse_args(argv)))
    print(json.dumps(out), flush=True)
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(cli())
