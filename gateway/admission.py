"""Per-account admission at the gateway: how many calls and streams an account has in
progress, and refusal of the one past its limit.

The one past the limit is refused at once, not queued: an account's calls within it may wait
at the gateway for their turn at a service (gateway/turns.py), and a queue beyond it would
hold ever more of a flooding account's calls and memory; a refusal costs little and tells
the client to slow down. Pure: no grpc, no I/O, so the rule is tested on its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from services.common.errors import quota_exceeded
from shoal.cluster_config import Limits

CALLS = ("TOO_MANY_CONCURRENT_CALLS", "calls_per_account", "concurrent calls of the account")
STREAMS = ("TOO_MANY_CONCURRENT_STREAMS", "streams_per_account",
           "concurrent streams (uploads, downloads, follows) of the account")


class Admission:
    def __init__(self, limits: Limits) -> None:
        self._limits = {CALLS: limits.calls_per_account, STREAMS: limits.streams_per_account}
        self._in_progress: dict[tuple[str, str, str], Counter[str]] = {
            CALLS: Counter(), STREAMS: Counter()}

    def in_progress(self, account: str, streaming: bool) -> int:
        return self._in_progress[STREAMS if streaming else CALLS][account]

    def admit(self, account: str, streaming: bool) -> Callable[[], None]:
        """Count the call; returns what ends it (call it exactly once, when the call is
        over). ShoalError (RESOURCE_EXHAUSTED) if the account is at its limit. Unary calls
        and streams have separate limits, so long-lived streams cannot starve an account's
        ordinary calls."""
        kind = STREAMS if streaming else CALLS
        counts, limit = self._in_progress[kind], self._limits[kind]
        current = counts[account]
        if current >= limit:
            reason, setting, what = kind
            raise quota_exceeded(reason, setting, what, limit, current)
        counts[account] = current + 1

        def release() -> None:
            counts[account] -= 1
            if not counts[account]:
                del counts[account]  # accounts that come and go leave nothing behind

        return release
