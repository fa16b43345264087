"""The filter language of List calls: a tiny AIP-160 subset, pure.

Supported: `state = X`, several joined by OR (`state = ACTIVE OR state = RUNNING`), and
`state != X`. Anything else is refused with a message that says what is supported.
"""

from __future__ import annotations

import re

from services.common.errors import invalid

_TERM = re.compile(r"\s*(\w+)\s*(=|!=)\s*(\w+)\s*")


def parse_state_filter(text: str, allowed: set[str], field: str = "filter") -> set[str] | None:
    """Return the set of states the filter admits, or None when it admits all."""
    if not text.strip():
        return None
    admitted: set[str] = set()
    for term in re.split(r"\s+OR\s+", text.strip()):
        m = _TERM.fullmatch(term)
        if m is None or m.group(1) != "state":
            raise invalid(field, f"cannot parse {term!r}: use 'state = X' joined by OR")
        op, value = m.group(2), m.group(3).upper()
        if value not in allowed:
            raise invalid(field, f"unknown state {m.group(3)!r}; one of {', '.join(sorted(allowed))}")
        admitted |= {value} if op == "=" else allowed - {value}
    return admitted
