"""Turns at a service: how many of an account's unary calls the gateway lets through to one
service at once, and who goes next when a place frees.

A service answers the calls it holds in the order they reached it, on one event loop: grpc
takes in one new call at a time, and the job-scheduler writes every account's tasks through
one SQLite writer. Measured while one account flooded the job-scheduler with 64 calls at
once (bench/fairness.py), another account's GetJob — answered from memory in under a
millisecond — waited up to 1.8 s between the gateway sending it and the scheduler running
it, and its CreateTask waited behind the flood's 1,000-task inserts. So the gateway keeps
the queue instead: at most `per_account` of an account's calls are at a service at once and
at most `per_service` of all accounts' calls; the rest wait here, each account's in order,
and free places go to the accounts waiting in turn (round robin, one call each), so an
account's call has at most a few of anyone else's ahead of it at the service.

Pure asyncio, no grpc: the rule is tested on its own.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

ROOM, ACCOUNT_FULL, SERVICE_FULL = "room", "account full", "service full"
CALL_BYTES = 8 * 1024
"""Each this many bytes of a request count as one call more: the gateway does not parse
bodies, and a request's size is what it knows of the work it asks for. A 1,000-task
BatchCreateTasks of short command lines is about 30 KB, 4 calls: an account's whole share
at the job-scheduler (its thousand row inserts hold up the one writer for other accounts'
adds, so one such batch at a time)."""


def cost_of(size: int) -> int:
    """The places a request of `size` bytes takes."""
    return 1 + size // CALL_BYTES


class Turns:
    def __init__(self, per_account: int, per_service: int) -> None:
        self._per_account = per_account
        self._per_service = per_service
        self._busy: Counter[str] = Counter()
        """account -> the cost of its calls at the service."""
        self._total = 0
        self._waiting: dict[str, deque[tuple[asyncio.Future[None], int]]] = {}
        """account -> its calls waiting for a place, and their costs, in arrival order."""
        self._next: deque[str] = deque()
        """Accounts with calls waiting, in the order their turns come."""

    def at_service(self, account: str) -> int:
        return self._busy[account]

    def waiting(self, account: str) -> int:
        return len(self._waiting.get(account, ()))

    @asynccontextmanager
    async def turn(self, account: str, cost: int = 1) -> AsyncIterator[None]:
        """Wait for a place at the service (none if there is room and nobody waits for
        it), hold it while the block runs. A call of cost n takes n places (a big batch
        of tasks costs the service more than a lookup), never more than an account has."""
        cost = max(1, min(cost, self._per_account, self._per_service))
        await self._take(account, cost)
        try:
            yield
        finally:
            self._leave(account, cost)

    async def _take(self, account: str, cost: int) -> None:
        if not self._next and self._room(account, cost) == ROOM:
            self._enter(account, cost)
            return
        # Others wait: this call joins the line, and goes at once only if its turn allows
        # (those ahead wait for places of their own accounts, not for the service's).
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(account, deque())
        if not queue:
            self._next.append(account)
        queue.append((place, cost))
        self._hand_on()
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self._leave(account, cost)  # given a place, then cancelled before it ran
            else:
                self._forget(account, place)
            raise

    def _room(self, account: str, cost: int) -> str:
        if self._busy[account] + cost > self._per_account:
            return ACCOUNT_FULL
        if self._total + cost > self._per_service:
            return SERVICE_FULL
        return ROOM

    def _enter(self, account: str, cost: int) -> None:
        self._busy[account] += cost
        self._total += cost

    def _leave(self, account: str, cost: int) -> None:
        self._total -= cost
        self._busy[account] -= cost
        if not self._busy[account]:
            del self._busy[account]  # accounts that come and go leave nothing behind
        self._hand_on()

    def _forget(self, account: str, place: asyncio.Future[None]) -> None:
        """A waiting call gave up (its caller cancelled, its deadline passed)."""
        queue = self._waiting[account]
        for i, (waiting, _) in enumerate(queue):
            if waiting is place:
                del queue[i]
                break
        if not queue:
            del self._waiting[account]
            self._next.remove(account)
        self._hand_on()  # the next of the account may fit where this one did not

    def _hand_on(self) -> None:
        """Free places to waiting accounts, one call each in turn. An account at its own
        limit keeps its turn for when one of its calls ends; when the service is full, the
        account whose turn it is waits for room, and nobody passes it (a big call is never
        starved by small ones)."""
        passed = 0
        while passed < len(self._next):
            account = self._next[0]
            queue = self._waiting[account]
            place, cost = queue[0]
            room = self._room(account, cost)
            if room == SERVICE_FULL:
                return
            self._next.rotate(-1)
            if room == ACCOUNT_FULL:
                passed += 1
                continue
            queue.popleft()
            self._enter(account, cost)
            place.set_result(None)
            if not queue:
                del self._waiting[account]
                self._next.remove(account)
            passed = 0
