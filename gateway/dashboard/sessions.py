"""Dashboard sessions: a random token in an HttpOnly cookie stands for an account key, kept
in the gateway's memory only (never in the browser, never on disk). Pure: time is injected.

A session ends on logout, after `IDLE_LIMIT` without a request, or when there are more than
`MAX_SESSIONS` (the least recently used goes): a gateway restart signs everyone out.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

IDLE_LIMIT = 12 * 3600.0
"""Seconds without a request after which a session ends."""
MAX_SESSIONS = 10_000


@dataclass
class Session:
    token: str
    account: str
    key: str
    """The account key the session's calls carry."""
    last_used: float
    streams: int = 0
    """Live streams (SSE) the session has open."""


class Sessions:
    def __init__(self, clock: Callable[[], float], idle_limit: float = IDLE_LIMIT,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self._idle = idle_limit
        self._max = max_sessions
        self._by_token: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_token)

    def open(self, account: str, key: str) -> Session:
        s = Session(secrets.token_urlsafe(32), account, key, self._clock())
        self._by_token[s.token] = s
        while len(self._by_token) > self._max:
            self._by_token.popitem(last=False)
        return s

    def get(self, token: str) -> Session | None:
        """The live session of a token, marked as used now; None if there is none."""
        s = self._by_token.get(token) if token else None
        if s is None:
            return None
        now = self._clock()
        if now - s.last_used > self._idle:
            del self._by_token[token]
            return None
        s.last_used = now
        self._by_token.move_to_end(token)
        return s

    def close(self, token: str) -> None:
        self._by_token.pop(token, None)
