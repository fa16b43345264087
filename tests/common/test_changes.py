"""The watch API's change log, apart from any I/O: revisions, reading from a revision, runs of
changes, compaction, epochs and accounts."""

from __future__ import annotations

import pytest

from services.common.changes import EPOCH_SHIFT, ChangeLog, Piece
from services.common.errors import Code, ShoalError


def every(_: object) -> bool:
    return True


def revisions(pieces: list[Piece]) -> list[int]:
    return [r for p in pieces for r in p.revisions()]


def changes(pieces: list[Piece]) -> list[object]:
    return [p.change for p in pieces for _ in p.revisions()]


def test_revisions_count_up_per_account_from_the_epoch_base() -> None:
    log = ChangeLog(epoch=3, history=100)
    base = 3 << EPOCH_SHIFT
    assert log.revision("a") == base
    assert log.append("a", "j", "x") == base + 1
    assert log.append("a", "j", "y", count=5) == base + 6
    assert log.append("b", "j", "z") == base + 1  # another account's own sequence
    assert (log.revision("a"), log.revision("b")) == (base + 6, base + 1)


def test_a_read_after_a_revision_gives_every_later_change_of_the_key_in_order() -> None:
    log = ChangeLog(epoch=1, history=100)
    start = log.revision("a")
    for i in range(6):
        log.append("a", "j" if i % 2 == 0 else "k", f"c{i}")
    pieces, upto = log.read("a", start, "j", every, limit=100)
    assert changes(pieces) == ["c0", "c2", "c4"]
    assert revisions(pieces) == [start + 1, start + 3, start + 5]
    assert upto == log.revision("a")
    # From the middle: neither the change at that revision nor earlier ones again.
    pieces, _ = log.read("a", start + 3, "j", every, limit=100)
    assert changes(pieces) == ["c4"]


def test_resuming_from_each_answer_of_a_limited_reader_gives_no_gap_and_no_repeat() -> None:
    log = ChangeLog(epoch=1, history=1000)
    start = log.revision("a")
    log.append("a", "j", "batch", count=7)
    log.append("a", "k", "other")
    log.append("a", "j", "one")
    log.append("a", "j", "three", count=3)
    seen: list[int] = []
    after = start
    while True:
        pieces, upto = log.read("a", after, "j", every, limit=2)
        if not pieces:
            break
        seen += revisions(pieces)
        after = upto
    assert seen == [r for r in range(start + 1, start + 13) if r != start + 8]
    assert after == log.revision("a")


def test_the_selector_skips_changes_but_the_reader_still_moves_past_them() -> None:
    log = ChangeLog(epoch=1, history=100)
    start = log.revision("a")
    log.append("a", "j", "skip")
    log.append("a", "j", "keep")
    log.append("a", "j", "skip")
    pieces, upto = log.read("a", start, "j", lambda c: c == "keep", limit=100)
    assert revisions(pieces) == [start + 2]
    assert upto == start + 3


def test_the_oldest_changes_are_compacted_and_a_resume_from_before_them_is_refused() -> None:
    log = ChangeLog(epoch=1, history=5)
    start = log.revision("a")
    for i in range(8):
        log.append("a", "j", i)
    with pytest.raises(ShoalError) as e:
        log.read("a", start + 2, "j", every, limit=100)
    assert (e.value.code, e.value.reason, e.value.field) == (
        Code.OUT_OF_RANGE, "REVISION_COMPACTED", "from_revision")
    with pytest.raises(ShoalError):
        log.check("a", start + 2)
    log.check("a", start + 3)  # changes 4..8 are all still there
    pieces, _ = log.read("a", start + 3, "j", every, limit=100)
    assert changes(pieces) == [3, 4, 5, 6, 7]


def test_a_run_of_changes_is_compacted_from_its_head_change_by_change() -> None:
    log = ChangeLog(epoch=1, history=4)
    start = log.revision("a")
    log.append("a", "j", "run", count=10)  # more than the history holds at once
    log.check("a", start + 6)
    with pytest.raises(ShoalError):
        log.check("a", start + 5)
    pieces, _ = log.read("a", start + 6, "j", every, limit=100)
    assert revisions(pieces) == [start + 7, start + 8, start + 9, start + 10]
    assert (pieces[0].start, pieces[0].stop) == (6, 10)


def test_a_long_history_stays_readable_as_entries_are_dropped_in_chunks() -> None:
    log = ChangeLog(epoch=1, history=50)
    start = log.revision("a")
    for i in range(5000):
        log.append("a", "j", i)
    pieces, _ = log.read("a", log.revision("a") - 50, "j", every, limit=1000)
    assert changes(pieces) == list(range(4950, 5000))
    assert revisions(pieces)[0] == start + 4951


def test_a_revision_of_an_earlier_epoch_is_compacted_and_one_ahead_is_invalid() -> None:
    before = ChangeLog(epoch=1, history=100)
    before.append("a", "j", "x")
    old = before.revision("a")
    after_restart = ChangeLog(epoch=2, history=100)
    with pytest.raises(ShoalError) as e:
        after_restart.check("a", old)
    assert e.value.reason == "REVISION_COMPACTED"
    with pytest.raises(ShoalError) as e:
        after_restart.read("a", old, "j", every, 10)
    assert e.value.reason == "REVISION_COMPACTED"
    with pytest.raises(ShoalError) as e:
        after_restart.check("a", after_restart.revision("a") + 1)
    assert (e.value.code, e.value.field) == (Code.INVALID_ARGUMENT, "from_revision")


def test_accounts_have_separate_histories() -> None:
    log = ChangeLog(epoch=1, history=3)
    start = log.revision("a")
    log.append("a", "j", "mine")
    for i in range(10):
        log.append("b", "j", i)  # fills b's history, not a's
    pieces, _ = log.read("a", start, "j", every, limit=10)
    assert changes(pieces) == ["mine"]
    pieces, _ = log.read("b", log.revision("b") - 3, "j", every, limit=10)
    assert changes(pieces) == [7, 8, 9]
