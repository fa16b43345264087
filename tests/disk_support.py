"""A small real filesystem for disk-full tests: a tmpfs mounted for the test (root, as in CI),
and a file that fills it. Where mounting is not allowed the test is skipped, saying why."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True)
    except OSError as e:  # no mount command
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill_disk(fs: Path, leave: int = 0) -> Path:
    """A file that takes every free byte of the filesystem but `leave`."""
    filler = fs / "filler"
    headroom = fs / "headroom"
    headroom.write_bytes(b"\0" * leave)
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 20, 4096):
            block = b"\0" * size
            try:
                while True:
                    f.write(block)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    headroom.unlink()
    return filler
