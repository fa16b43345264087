"""Resource ids and names: validation and parsing, pure."""

from __future__ import annotations

import re

from services.common.errors import invalid

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_DISPLAY_NAME = 1024


def check_id(value: str, field: str) -> str:
    """Return `value` if it is a valid id (1-64 of [A-Za-z0-9_-]); raise naming `field`."""
    if not value:
        raise invalid(field, "is required")
    if ID_RE.fullmatch(value) is None:
        if len(value) > 64:
            raise invalid(field, f"must be at most 64 characters, got {len(value)}")
        raise invalid(field, f"{value!r} is not a valid id: use 1-64 of A-Z a-z 0-9 _ -")
    return value


def parse_name(value: str, pattern: str, field: str) -> tuple[str, ...]:
    """Parse a resource name against a pattern like 'jobs/{job}/tasks/{task}'.

    Returns the ids in order. Every id is checked, so a name can never smuggle a path.
    """
    parts = value.split("/") if value else []
    expected = pattern.split("/")
    if not value:
        raise invalid(field, f"is required (a name like {pattern!r})")
    if len(parts) != len(expected) or any(
        not e.startswith("{") and p != e for p, e in zip(parts, expected, strict=False)
    ):
        raise invalid(field, f"{value!r} is not a name like {pattern!r}")
    ids = []
    for p, e in zip(parts, expected, strict=True):
        if e.startswith("{"):
            if ID_RE.fullmatch(p) is None:
                raise invalid(field, f"{value!r} has an invalid id {p!r}: use 1-64 of A-Z a-z 0-9 _ -")
            ids.append(p)
    return tuple(ids)


def check_display_name(value: str, field: str = "display_name") -> str:
    if len(value) > MAX_DISPLAY_NAME:
        raise invalid(field, f"must be at most {MAX_DISPLAY_NAME} characters")
    if "\x00" in value:
        raise invalid(field, "must not contain NUL")
    return value


def check_metadata(metadata: dict[str, str], field: str = "metadata") -> dict[str, str]:
    if len(metadata) > 64:
        raise invalid(field, "at most 64 entries")
    for k, v in metadata.items():
        if not k or len(k) > 128 or len(v) > 1024 or "\x00" in k + v:
            raise invalid(field, f"entry {k[:40]!r}: keys 1-128 and values up to 1024 characters, no NUL")
    return dict(metadata)
