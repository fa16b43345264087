"""The filter language of List calls: a tiny AIP-160 subset, pure.

A filter is comparisons `field = value` or `field != value`; comparisons of one field are
joined by OR, and those groups by AND (`state = ACTIVE OR state = RUNNING AND result =
FAILURE`: as in AIP-160, OR binds tighter than AND; a group may be in parentheses). Values
are words (`COMPLETED`, `-1`, `node-7`) or double-quoted strings. Each List call says which
fields it takes (most take only `state`); anything else is refused with a message that says
what is supported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from services.common.errors import invalid

_TERM = re.compile(r'\s*(\w+)\s*(=|!=)\s*("[^"]*"|[\w.-]+)\s*')


class Kind(Enum):
    ENUM = "enum"
    """One of a fixed set of upper-case names; `!=` admits the others."""
    INT = "int"
    WORD = "word"
    """An id: letters, digits, `_` and `-`."""


@dataclass(frozen=True)
class Field:
    kind: Kind
    values: frozenset[str] = frozenset()
    """For an ENUM: the names it takes."""


@dataclass(frozen=True)
class Condition:
    """What one field must be: one of `values`, or (negated) none of them."""

    values: frozenset[str | int]
    negated: bool = False


def parse_filter(
    text: str, fields: Mapping[str, Field], field: str = "filter"
) -> dict[str, Condition]:
    """The conditions a filter sets, by field name (a field it does not name is absent)."""
    out: dict[str, Condition] = {}
    if not text.strip():
        return out
    syntax = " and ".join(f"'{f} = X'" for f in fields)
    for group in re.split(r"\s+AND\s+", text.strip()):
        group = group.strip()
        if group.startswith("(") and group.endswith(")"):
            group = group[1:-1]
        terms = []
        for term in re.split(r"\s+OR\s+", group.strip()):
            m = _TERM.fullmatch(term)
            if m is None or m.group(1) not in fields:
                raise invalid(field, f"cannot parse {term.strip()!r}: use {syntax}; the "
                              "values of one field joined by OR, fields by AND")
            terms.append((m.group(1), m.group(2), m.group(3).strip('"')))
        name = terms[0][0]
        if any(t[0] != name for t in terms):
            raise invalid(field, f"cannot parse {group!r}: OR joins values of one field")
        if name in out:
            raise invalid(field, f"{name} is named twice: join its values with OR")
        out[name] = _condition(name, fields[name], terms, field)
    return out


def _condition(name: str, f: Field, terms: list[tuple[str, str, str]], field: str) -> Condition:
    if f.kind == Kind.ENUM:
        admitted: set[str] = set()
        for _, op, raw in terms:
            value = raw.upper()
            if value not in f.values:
                raise invalid(field, f"unknown {name} {raw!r}; one of {', '.join(sorted(f.values))}")
            admitted |= {value} if op == "=" else f.values - {value}
        return Condition(frozenset(admitted))
    ops = {op for _, op, _ in terms}
    if "!=" in ops and len(terms) > 1:
        raise invalid(field, f"{name}: use values joined by OR, or one {name} != X")
    values: set[str | int] = set()
    for _, _, raw in terms:
        if f.kind == Kind.INT:
            if not re.fullmatch(r"-?\d{1,10}", raw):
                raise invalid(field, f"{name} must be an integer, got {raw[:40]!r}")
            values.add(int(raw))
        else:
            word = raw.rsplit("/", 1)[-1]  # a resource name's last segment is its id
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", word):
                raise invalid(field, f"{name} must be an id (letters, digits, _ and -), "
                              f"got {raw[:80]!r}")
            values.add(word)
    return Condition(frozenset(values), negated=ops == {"!="})


def parse_state_filter(text: str, allowed: set[str], field: str = "filter") -> set[str] | None:
    """The states a filter on `state` alone admits, or None when it admits all."""
    found = parse_filter(text, {"state": Field(Kind.ENUM, frozenset(allowed))}, field)
    return {str(v) for v in found["state"].values} if "state" in found else None
