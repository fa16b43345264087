"""Waiting out a storage outage (pure: no I/O, time passed in).

Staging tells two kinds of failure apart. Storage *unavailable* — the storage-stager down (the
scheduler's grant says STORAGE_UNAVAILABLE, or no grant comes), the object store refusing
connections, timing out or answering 5xx — is waited out: the step is tried again with
exponential backoff and full jitter, so a fleet of nodes does not hammer a store that is
coming back. An upload or download that is *wrong* — a 4xx answer, a refused grant (a missing
container, a key outside the task's output specs), a file that cannot be read, a checksum that
does not match — fails at once: waiting cannot fix it.

The wait is bounded: once storage has been unavailable for the cluster's
`staging_outage_timeout`, the step fails and says so. How often a node tries while it waits
is agent.staging.gate's: one try at a time per node, not one per waiting attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from agent.staging import SERVER_ERROR, StagingFailure

DEFAULT_OUTAGE_TIMEOUT = 300.0
"""Seconds, until the scheduler's Welcome says otherwise (`staging_outage_timeout`)."""
BACKOFF_BASE = 0.5
BACKOFF_CAP = 5.0
"""The longest pause between a node's tries (agent.staging.gate): how late, at worst, the
node notices that storage is back. One try at a time per node, so this can be short."""


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def duration(seconds: float) -> str:
    """'45 s', '5 min', '2 min 30 s'."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    return f"{m} min" + (f" {s} s" if s else "")


def backoff(tries: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after `tries` failed ones: full jitter over an
    exponential ceiling, capped."""
    return rng() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(max(tries - 1, 0), 32))


class Outage:
    """One staging step's patience with storage: it began when the step first found storage
    unavailable (`since`, wall-clock seconds, kept across an agent restart) and gives up
    `bound` seconds later."""

    def __init__(self, since: float, bound: float) -> None:
        self.since = since
        self.bound = bound
        self.last_error = ""

    @property
    def give_up_at(self) -> float:
        return self.since + self.bound

    def left(self, now: float) -> float:
        return max(0.0, self.give_up_at - now)

    def over(self, now: float) -> bool:
        return now >= self.give_up_at

    def failure(self, code: str, what: str, now: float) -> StagingFailure:
        """The step's failure once the bound has passed: says that storage was unavailable,
        since when and for how long, and the last error."""
        return StagingFailure(
            SERVER_ERROR, code,
            f"{what}: storage was unavailable for {duration(now - self.since)} (since "
            f"{_utc(self.since)}; the cluster's staging_outage_timeout is "
            f"{duration(self.bound)}); last error: {self.last_error}",
        )
