"""A service's change log for the watch API, pure (stdlib only): per account, an ordered
history of changes, each with a revision, kept in memory up to a bound.

- Revisions increase by one per change within an account, and are only ever assigned to
  changes that are durable (the caller appends once its rows are committed), so a client
  never sees a change that a crash could undo.
- A service start begins a new *epoch*: revisions are `epoch << EPOCH_SHIFT | n`, the epoch
  counted up in the service's database at every start. The history does not survive a
  restart, and every revision of an earlier epoch is below every revision of this one, so a
  client resuming across a restart is told, as for any revision too old, to list again.
- The history keeps the last `history` changes of each account; older ones are compacted
  away. An entry may stand for several consecutive changes (a batch of tasks added in one
  call), so a 100,000-task batch costs one append, not 100,000.

Reading is what watch streams do: from a revision on, the entries of one key (a job, a pool)
that a selector accepts, at most `limit` changes at a time. Nothing here awaits or converts:
entries hold whatever the service recorded, and the service turns them into messages.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from services.common.errors import Code, ShoalError, invalid

EPOCH_SHIFT = 40
"""2^40 changes per account per service start; epochs stay below 2^13 for revisions that
JavaScript's doubles hold exactly (2^53)."""
_TRIM = 1024
_SLACK = 1024
"""At most this many changes (and 1/16 of the history) are held beyond `history` before
the oldest are dropped: compaction runs once per so many appends, not on every one."""


class Entry(NamedTuple):
    """One change, or a run of `length` changes with consecutive revisions. A tuple: one is
    made for every change the service records, watched or not."""

    first: int
    """Revision of its first change."""
    length: int
    key: str
    """What a stream follows: a job's or a pool's lower-cased id."""
    change: object
    """What the service recorded; the same object for every change of a run."""


class Piece(NamedTuple):
    """Changes `start` to `stop` (exclusive) of an entry's run."""

    change: object
    first: int
    """Revision of the run's first change: change k has revision first + k."""
    start: int
    stop: int

    def revisions(self) -> range:
        return range(self.first + self.start, self.first + self.stop)


@dataclass(slots=True)
class _History:
    revision: int
    """The last change's revision (the epoch's base before the first)."""
    compacted: int
    """Changes up to this revision are gone: a resume must start at or after it."""
    entries: list[Entry] = field(default_factory=list)
    head: int = 0
    """entries[:head] are compacted (removed from the list in chunks, not one by one)."""
    size: int = 0
    """Changes held."""


def _last(e: Entry) -> int:
    return e.first + e.length - 1


class ChangeLog:
    def __init__(self, epoch: int, history: int) -> None:
        if history < 1:
            raise ValueError("history must be at least 1")
        self.base = epoch << EPOCH_SHIFT
        self.history = history
        self._slack = min(_SLACK, history // 16)
        self._accounts: dict[str, _History] = {}

    def revision(self, account: str) -> int:
        """The account's current revision: a List or Get answered now reflects every change up
        to it, and a watch from it sends every change after it."""
        h = self._accounts.get(account)
        return h.revision if h is not None else self.base

    def append(self, account: str, key: str, change: object, count: int = 1) -> int:
        """Record `count` changes (durable already) as one entry; returns the revision of the
        last."""
        h = self._accounts.get(account)
        if h is None:
            h = self._accounts[account] = _History(self.base, self.base)
        h.entries.append(Entry(h.revision + 1, count, key, change))
        h.revision += count
        h.size += count
        if h.size > self.history + self._slack:
            self._compact(h)
        return h.revision

    def _compact(self, h: _History) -> None:
        """Drop the oldest changes down to `history`. A run loses its head change by change:
        `compacted` says where it starts now."""
        target = h.revision - self.history  # changes up to here go
        entries = h.entries
        while _last(entries[h.head]) <= target:
            h.head += 1
        h.compacted = target
        h.size = self.history
        if h.head >= _TRIM and h.head * 2 >= len(entries):
            del entries[: h.head]
            h.head = 0

    def check(self, account: str, after: int, field_name: str = "from_revision") -> None:
        """Refuse a revision a watch cannot start after: compacted (or of an earlier epoch),
        or ahead of the account's current revision."""
        h = self._accounts.get(account)
        current = h.revision if h is not None else self.base
        oldest = h.compacted if h is not None else self.base
        if after < oldest:
            raise compacted(after, oldest, field_name)
        if after > current:
            raise invalid(field_name, f"revision {after} is ahead of the current revision "
                                      f"{current}: use the revision of a List, Get or watch answer")

    def read(
        self, account: str, after: int, key: str, select: Callable[[object], bool], limit: int,
    ) -> tuple[list[Piece], int]:
        """The changes of `key` after revision `after` that `select` accepts, at most `limit`
        of them, and the revision read up to: every selected change up to it is in the
        pieces (the caller resumes after it). OUT_OF_RANGE if `after` was compacted."""
        h = self._accounts.get(account)
        if h is None:
            if after < self.base:
                raise compacted(after, self.base)
            return [], self.base
        if after < h.compacted:
            raise compacted(after, h.compacted)
        entries = h.entries
        i = bisect_right(entries, after, lo=h.head, key=_last)
        out: list[Piece] = []
        n = 0
        for j in range(i, len(entries)):
            e = entries[j]
            if e.key != key or not select(e.change):
                continue
            start = after + 1 - e.first if after >= e.first else 0
            take = min(e.length - start, limit - n)
            out.append(Piece(e.change, e.first, start, start + take))
            n += take
            if n >= limit:
                return out, e.first + start + take - 1
        return out, h.revision


def compacted(after: int, oldest: int, field_name: str = "from_revision") -> ShoalError:
    return ShoalError(
        Code.OUT_OF_RANGE, "REVISION_COMPACTED",
        f"{field_name}: revision {after} is no longer kept (the oldest a watch can start after "
        f"is {oldest}; the service keeps a bounded history, and none from before its last "
        "restart): list again and watch from the revision of that answer", field_name)
