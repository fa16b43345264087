"""Running coroutines together and stopping the rest when one decides the outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any


async def run_together(
    coros: Iterable[Coroutine[Any, Any, None]], until: str = asyncio.FIRST_EXCEPTION
) -> None:
    """Run the coroutines as tasks until `until` (asyncio.FIRST_EXCEPTION: all done or the
    first error; asyncio.FIRST_COMPLETED: the first to end); cancel the others, wait for
    them, and re-raise the error that ended the wait, if any."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return
    try:
        done, _ = await asyncio.wait(tasks, return_when=until)
        for t in done:
            t.result()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
