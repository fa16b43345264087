"""Writing a file so that it exists whole or not at all, and survives a crash or power loss:
a hidden tmp file beside it, fsynced, renamed over it, and the directory fsynced."""

from __future__ import annotations

import os
from pathlib import Path

TMP_SUFFIX = ".tmp"
"""Of the tmp file a write in progress leaves (`.{name}.tmp`): what a reader may delete."""


def write_durably(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
