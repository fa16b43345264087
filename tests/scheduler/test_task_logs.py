"""Where a file's last lines begin, fed in pieces as reads return them."""

from __future__ import annotations

import pytest

from services.job_scheduler.task_logs import LastLines

TEXT = b"one\ntwo\nthree\nfour\n"


@pytest.mark.parametrize(("lines", "want"), [
    (1, b"four\n"), (2, b"three\nfour\n"), (4, TEXT), (9, TEXT),
])
def test_the_last_lines_whatever_the_pieces(lines: int, want: bytes) -> None:
    for size in (1, 3, 7, len(TEXT)):
        keep = LastLines(lines)
        for i in range(0, len(TEXT), size):
            keep.add(i, TEXT[i : i + size])
        assert keep.data == want, size
        assert keep.start == len(TEXT) - len(want)
        assert keep.complete


def test_a_last_line_without_a_newline_counts() -> None:
    keep = LastLines(2)
    keep.add(0, b"a\nb\nc")
    assert (keep.start, keep.data) == (2, b"b\nc")


def test_a_window_that_starts_mid_file_with_too_few_lines_is_not_complete() -> None:
    keep = LastLines(3)
    keep.add(100, b"tail of a long line\nlast\n")  # bytes 100.. of a bigger file
    assert not keep.complete
    keep = LastLines(1)
    keep.add(100, b"tail of a long line\nlast\n")
    assert keep.complete and keep.data == b"last\n" and keep.start == 120


def test_an_empty_file() -> None:
    keep = LastLines(5)
    keep.add(0, b"")
    assert keep.complete and keep.data == b"" and keep.start == 0
