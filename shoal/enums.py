"""Enum values as every client method takes them: by name in any case (with aliases such as
"terminate" for TERMINATE_JOB) or by number."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.errors import ShoalError, StatusCode


def enum_name(
    enum: Any, value: str | int, what: str, aliases: Mapping[str, str] | None = None
) -> str:
    """The canonical name of an enum value given by name (any case, with aliases) or number."""
    try:
        if isinstance(value, int):
            return str(enum.Name(value))
        text = value.strip().upper().replace("-", "_")
        text = (aliases or {}).get(text, text)
        enum.Value(text)
        return text
    except ValueError:
        names = [n.lower() for n in enum.keys() if not n.endswith("UNSPECIFIED")]
        raise ShoalError(
            StatusCode.INVALID_ARGUMENT,
            f"{what}: unknown value {value!r}; one of {', '.join(names)}",
            reason="INVALID_ARGUMENT",
            field=what,
        ) from None
