"""Storage names, relative paths and output patterns: validation and matching, pure.

One module for the rules every party applies — the scheduler when a task is added, the
storage-stager when it signs URLs, the agent when it writes files — so a name that passes one
check passes them all, and nothing a request names can lead outside its directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Protocol

from services.common.errors import invalid

CONTAINER_RE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
VERSION_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_KEY = 1024
MAX_PATH = 1024
WILDCARDS = frozenset("*?[")
DEFAULT_FILE_MODE = 0o770
"""Azure Batch's default mode for resource files on Linux nodes."""
LOG_FILES = ("stdout.txt", "stderr.txt")


def check_container_id(value: str, field: str) -> str:
    if not value:
        raise invalid(field, "is required")
    if CONTAINER_RE.fullmatch(value) is None:
        raise invalid(
            field,
            f"{value[:80]!r} is not a valid container id: 3-63 of a-z 0-9 and single hyphens, "
            "starting and ending with a letter or digit",
        )
    return value


def check_version_id(value: str, field: str) -> str:
    if not value:
        raise invalid(field, "is required")
    if VERSION_RE.fullmatch(value) is None or value in (".", ".."):
        raise invalid(field, f"{value[:80]!r} is not a valid version: 1-64 of A-Z a-z 0-9 _ . -")
    return value


def _segments_error(value: str) -> str | None:
    """Why `value` is not a safe relative path of `/`-separated segments, or None."""
    if "\x00" in value:
        return "must not contain NUL"
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return "must not contain control characters"
    if "\\" in value:
        return "must not contain a backslash"
    if value.startswith("/"):
        return "must be relative, not start with '/'"
    for seg in value.split("/"):
        if seg == "..":
            return "must not contain '..' segments"
        if seg in ("", "."):
            return "must not contain empty or '.' segments"
    return None


def check_object_key(value: str, field: str) -> str:
    """A key is also a relative path on nodes (container downloads), so it must be a safe one."""
    if not value:
        raise invalid(field, "is required")
    if len(value) > MAX_KEY:
        raise invalid(field, f"must be at most {MAX_KEY} characters, got {len(value)}")
    why = _segments_error(value)
    if why:
        raise invalid(field, f"{value[:80]!r} {why}")
    return value


def check_key_prefix(value: str, field: str) -> str:
    """A prefix may end in '/' (a virtual directory) but is otherwise a key."""
    if value:
        check_object_key(value[:-1] if value.endswith("/") and len(value) > 1 else value, field)
    return value


def check_relative_path(value: str, field: str, *, required: bool = True) -> str:
    """A path inside a directory: no '..', not absolute, no NUL. Empty is the directory itself
    when not required."""
    if not value:
        if required:
            raise invalid(field, "is required")
        return value
    if len(value) > MAX_PATH:
        raise invalid(field, f"must be at most {MAX_PATH} characters, got {len(value)}")
    why = _segments_error(value.rstrip("/") if len(value) > 1 else value)
    if why:
        raise invalid(field, f"{value[:80]!r} {why}")
    return value.rstrip("/")


def parse_file_mode(value: str, field: str) -> int:
    if not value:
        return DEFAULT_FILE_MODE
    try:
        mode = int(value, 8)
    except ValueError:
        raise invalid(field, f"{value[:20]!r} is not an octal mode like '0755'") from None
    if not 0 <= mode <= 0o777:
        raise invalid(field, f"{value!r} must be between 0000 and 0777 (no setuid, setgid, sticky)")
    return mode


def has_wildcards(pattern: str) -> bool:
    return any(c in WILDCARDS for c in pattern)


def check_pattern(value: str, field: str) -> str:
    check_relative_path(value, field)
    for seg in value.split("/"):
        if "**" in seg and seg != "**":
            raise invalid(field, f"{value[:80]!r}: '**' must be a whole path segment")
    return value


def fixed_prefix(pattern: str) -> tuple[str, ...]:
    """The leading segments of a pattern that hold no wildcard: the directory a walk starts
    in and the part stripped from destination keys."""
    out: list[str] = []
    for seg in pattern.split("/")[:-1]:
        if has_wildcards(seg):
            break
        out.append(seg)
    return tuple(out)


def match_pattern(pattern: str, rel_path: str) -> bool:
    """Whether a relative file path matches a pattern: `*`, `?`, `[...]` within a segment,
    `**` across any number of segments (zero included)."""
    return _match(pattern.split("/"), rel_path.split("/"))


def _match(pat: list[str], parts: list[str]) -> bool:
    if not pat:
        return not parts
    head = pat[0]
    if head == "**":
        return any(_match(pat[1:], parts[i:]) for i in range(len(parts) + 1))
    if not parts:
        return False
    # fnmatchcase with '/' impossible in a segment: '*' cannot cross directories.
    return fnmatchcase(parts[0], head) and _match(pat[1:], parts[1:])


class OutputSpec(Protocol):
    file_pattern: str
    container: str
    path: str


def output_key(spec: OutputSpec, rel_path: str) -> str:
    """Destination key of a matched file (Azure Batch's rule): for a pattern without
    wildcards `path` is the key itself (default: the file name); with wildcards `path` is a
    prefix and the file keeps its path below the pattern's fixed leading directories."""
    parts = rel_path.split("/")
    if not has_wildcards(spec.file_pattern):
        return spec.path or parts[-1]
    below = "/".join(parts[len(fixed_prefix(spec.file_pattern)):])
    return f"{spec.path.rstrip('/')}/{below}" if spec.path else below


def upload_allowed(specs: Iterable[OutputSpec], container: str, key: str) -> bool:
    """Whether some output file spec could have produced (container, key): the stager's check
    that an agent asks to write only where the task said its outputs go."""
    for s in specs:
        if s.container != container:
            continue
        if not has_wildcards(s.file_pattern):
            if key == (s.path or s.file_pattern.split("/")[-1]):
                return True
            continue
        prefix = s.path.rstrip("/") + "/" if s.path else ""
        if key.startswith(prefix):
            rel = "/".join((*fixed_prefix(s.file_pattern), key[len(prefix):]))
            if match_pattern(s.file_pattern, rel):
                return True
    return False
