"""A task's stdout or stderr: where its last lines begin, and how often a follower looks again.

Pure: the engine drives the reads (from the node, or the stored copy once the attempt ended)
and feeds what they return through `LastLines`.
"""

from __future__ import annotations

FOLLOW_POLL = 0.5
"""Seconds between two looks at a followed file (and at a task not started yet)."""
MAX_TAIL_LINES = 100_000
TAIL_WINDOW = 64 * 1024
"""Bytes from the end a tail reads first; grown (×8) while they hold too few lines."""
TAIL_WINDOW_MAX = 64 * 1024 * 1024
"""Past this, the lines a tail finds are what it gives: a log of very long lines is cut."""


class LastLines:
    """The last `lines` lines of what is added (consecutive pieces of one file, in order),
    holding no more than those lines and the piece being added. A last line with no newline
    counts as a line, as `tail` counts it."""

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.start = 0
        """Offset in the file of the first byte kept."""
        self._buf = bytearray()
        self._whole = False
        """Whether the kept bytes are known to hold all `lines` lines (or start the file)."""

    def add(self, offset: int, data: bytes) -> None:
        if not self._buf:
            self.start = offset
        self._buf += data
        cut = self._cut()
        if cut is not None:
            del self._buf[:cut]
            self.start += cut
            self._whole = True

    def _cut(self) -> int | None:
        """Where the kept lines begin in the buffer, if it holds more than enough of them."""
        end = len(self._buf)
        if end and self._buf[end - 1] == ord("\n"):
            end -= 1  # the newline that ends the last line starts no new line
        for _ in range(self.lines):
            end = self._buf.rfind(b"\n", 0, end)
            if end < 0:
                return None
        return end + 1

    @property
    def complete(self) -> bool:
        """Whether these are the file's last lines: enough of them, or its very start."""
        return self._whole or self.start == 0

    @property
    def data(self) -> bytes:
        return bytes(self._buf)
