"""Choosing an attempt's output files once its process has ended.

The working directory is walked without following symlinked directories. A matched file that
is a symlink is uploaded only when it resolves to a regular file inside the working directory;
a link leading outside (a task that planted `out.txt -> /etc/passwd`) is refused and fails the
attempt with OUTPUT_FILE_UPLOAD_FAILED naming the file. Destination keys follow
storage_names.output_key, which is also what the storage-stager checks grants against.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.staging import OUTPUT_FILE_UPLOAD_FAILED, USER_ERROR, StagingFailure
from services.common.storage_names import fixed_prefix, has_wildcards, match_pattern, output_key
from shoal.v1 import task_pb2

MAX_OUTPUT_FILES = 10_000
MAX_WALK_ENTRIES = 1_000_000


@dataclass(frozen=True)
class Output:
    rel: str
    """Path relative to the working directory, as matched."""
    source: Path
    """What to read: the file itself, or where its symlink resolves (inside the wd)."""
    container: str
    key: str


def wanted(condition: task_pb2.OutputFile.UploadCondition, succeeded: bool) -> bool:
    if condition == task_pb2.OutputFile.TASK_SUCCESS:
        return succeeded
    if condition == task_pb2.OutputFile.TASK_FAILURE:
        return not succeeded
    return True  # TASK_COMPLETION, and unspecified as its default


def _refuse(rel: str, why: str) -> StagingFailure:
    return StagingFailure(USER_ERROR, OUTPUT_FILE_UPLOAD_FAILED, f"output file {rel!r}: {why}")


def _source(wd: Path, real_wd: str, rel: str) -> Path | None:
    """The file to read for `rel`, None when it is not a file to upload (a directory, a
    fifo, a dangling link). Raises StagingFailure for a symlink leading outside."""
    path = wd / rel
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(st.st_mode):
        return path
    if not stat.S_ISLNK(st.st_mode):
        return None
    resolved = os.path.realpath(path)
    if not resolved.startswith(real_wd + os.sep):
        raise _refuse(rel, "is a symlink that leads outside the working directory; refused")
    try:
        if not stat.S_ISREG(os.lstat(resolved).st_mode):
            return None
    except FileNotFoundError:
        return None
    return Path(resolved)


def _walk(wd: Path, start: tuple[str, ...]) -> Iterable[str]:
    """Relative paths of the non-directory entries under wd/start, symlinked directories not
    followed (nor is a symlinked start directory)."""
    cur = wd
    for seg in start:
        cur = cur / seg
        try:
            if not stat.S_ISDIR(os.lstat(cur).st_mode):
                return
        except FileNotFoundError:
            return
    seen = 0
    base = len(str(wd)) + 1
    for dirpath, dirnames, filenames in os.walk(cur, followlinks=False):
        seen += len(dirnames) + len(filenames)
        if seen > MAX_WALK_ENTRIES:
            raise StagingFailure(
                USER_ERROR, OUTPUT_FILE_UPLOAD_FAILED,
                f"the working directory holds more than {MAX_WALK_ENTRIES} entries to search",
            )
        rel_dir = dirpath[base:]
        for name in filenames:
            yield f"{rel_dir}/{name}" if rel_dir else name
        # A symlink to a directory is listed in dirnames but never entered; one that matches
        # a pattern is still considered (and refused if it leads outside).
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                yield f"{rel_dir}/{name}" if rel_dir else name


def select_outputs(
    wd: Path, specs: Iterable[task_pb2.OutputFile], succeeded: bool
) -> list[Output]:
    """The files to upload for this outcome, each once per destination, in a stable order.
    Raises StagingFailure(OUTPUT_FILE_UPLOAD_FAILED) for a refused file or too many files."""
    real_wd = os.path.realpath(wd)
    chosen: dict[tuple[str, str], Output] = {}
    for spec in specs:
        if not wanted(spec.upload_condition, succeeded):
            continue
        pattern = spec.file_pattern
        if has_wildcards(pattern):
            candidates = [r for r in _walk(wd, fixed_prefix(pattern)) if match_pattern(pattern, r)]
        else:
            parent = tuple(pattern.split("/")[:-1])
            candidates = [pattern] if _no_link_on_the_way(wd, parent) else []
        for rel in sorted(candidates):
            src = _source(wd, real_wd, rel)
            if src is None:
                continue
            key = output_key(spec, rel)
            chosen.setdefault((spec.container, key), Output(rel, src, spec.container, key))
            if len(chosen) > MAX_OUTPUT_FILES:
                raise StagingFailure(
                    USER_ERROR, OUTPUT_FILE_UPLOAD_FAILED,
                    f"more than {MAX_OUTPUT_FILES} output files match the task's patterns",
                )
    return list(chosen.values())


def _no_link_on_the_way(wd: Path, parents: tuple[str, ...]) -> bool:
    cur = wd
    for seg in parents:
        cur = cur / seg
        try:
            if not stat.S_ISDIR(os.lstat(cur).st_mode):
                return False
        except FileNotFoundError:
            return False
    return True
