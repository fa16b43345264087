"""The dashboard's live views, as streams of (event, data) for Server-Sent Events: a job's
progress and a pool's node map.

A job's progress and a pool's nodes are read again every POLL seconds and sent when they
changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from gateway.dashboard.backend import Backend, as_dict

POLL = 1.0
"""Seconds between two reads of what a live view shows."""


async def job_progress(backend: Backend, key: str, job_id: str) -> AsyncIterator[tuple[str, Any]]:
    """`job` events: the job (state, task counts) each time it changes."""
    last = None
    while True:
        job = as_dict(await backend.job_message(key, job_id))
        if job != last:
            yield "job", job
            last = job
        await asyncio.sleep(POLL)


async def node_map(backend: Backend, key: str, pool_id: str) -> AsyncIterator[tuple[str, Any]]:
    """`nodes` events: every node of the pool each time one changed."""
    last = None
    while True:
        nodes = await backend.nodes(key, pool_id)
        if nodes != last:
            yield "nodes", nodes
            last = nodes
        await asyncio.sleep(POLL)
