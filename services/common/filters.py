"""The filter language of List calls: a small AIP-160 subset, pure.

A filter is comparisons `FIELD OP VALUE` joined by `OR` and `AND`; as in AIP-160, OR binds
tighter than AND, so `state = ACTIVE OR state = RUNNING AND node = n1` means
`(state = ACTIVE OR state = RUNNING) AND node = n1`. Parentheses around a group of ORs are
allowed. Operators: `=`, `!=`, and for numbers `<`, `<=`, `>`, `>=`. A value is a word, an
integer, or a double-quoted string (`node = "pools/p/nodes/n1"`).

Each List call says which fields it takes and what their values may be (`Field`); anything
else is refused with INVALID_ARGUMENT naming the `filter` field and saying what is supported.
What a filter means is the caller's: `parse_filter` returns the comparisons, typed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.errors import ShoalError, invalid

_TOKEN = re.compile(
    r'\s*(?:(?P<quoted>"(?:[^"\\]|\\.)*")|(?P<op><=|>=|!=|=|<|>)|(?P<paren>[()])'
    r"|(?P<word>[^\s()=!<>\"]+))"
)
EQUALITY = ("=", "!=")
ORDER = ("=", "!=", "<", "<=", ">", ">=")
MAX_TERMS = 50


@dataclass(frozen=True)
class Field:
    """A field a List call filters on."""

    convert: Callable[[str], Any]
    """The value as the caller's type; ValueError (its message says what is allowed)."""
    ops: tuple[str, ...] = EQUALITY


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    value: Any


Filter = list[list[Term]]
"""Groups joined by AND; the terms of a group are joined by OR. Empty: everything."""


def one_of(allowed: set[str]) -> Callable[[str], str]:
    """An enum field: any of `allowed`, matched ignoring case, as its upper-case name."""

    def convert(text: str) -> str:
        value = text.upper()
        if value not in allowed:
            raise ValueError(f"unknown value {text!r}; one of {', '.join(sorted(allowed))}")
        return value

    return convert


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def _tokens(text: str, field: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise invalid(field, f"cannot parse {text[pos:].strip()[:40]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "quoted":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        pos = m.end()
    return out


def parse_filter(text: str, fields: Mapping[str, Field], field: str = "filter") -> Filter:
    """The comparisons of `text` in AND-groups of OR-ed terms; ShoalError(INVALID_ARGUMENT)
    naming `field` when it is not in the language or names a field or value not allowed."""
    return _Parser(_tokens(text, field), fields, field).filter()


class _Parser:
    """filter := group (AND group)*;  group := term (OR term)* | '(' term (OR term)* ')';
    term := FIELD OP VALUE."""

    def __init__(self, tokens: list[tuple[str, str]], fields: Mapping[str, Field], field: str):
        self.tokens = tokens
        self.fields = fields
        self.field = field
        self.i = 0

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def _take(self, kind: str, value: str | None = None) -> str | None:
        k, v = self._peek()
        if k == kind and (value is None or v == value):
            self.i += 1
            return v
        return None

    def _fail(self, what: str) -> ShoalError:
        k, v = self._peek()
        at = "the end" if k == "end" else repr(v)
        syntax = (f"use FIELD OP VALUE joined by OR and AND, FIELD one of "
                  f"{', '.join(sorted(self.fields))} (e.g. 'state = ACTIVE OR state = RUNNING')")
        return invalid(self.field, f"expected {what} at {at}: {syntax}")

    def filter(self) -> Filter:
        if self._peek()[0] == "end":
            return []
        groups = [self._group()]
        while self._take("word", "AND") is not None:
            groups.append(self._group())
        if self._peek()[0] != "end":
            raise self._fail("AND, OR or the end")
        if sum(len(g) for g in groups) > MAX_TERMS:
            raise invalid(self.field, f"has more than {MAX_TERMS} comparisons")
        return groups

    def _group(self) -> list[Term]:
        parens = self._take("paren", "(") is not None
        terms = [self._term()]
        while self._take("word", "OR") is not None:
            terms.append(self._term())
        if parens and self._take("paren", ")") is None:
            raise self._fail("OR or ')'")
        return terms

    def _term(self) -> Term:
        name = self._take("word")
        if name is None or name in ("AND", "OR"):
            raise self._fail("a comparison")
        op = self._take("op")
        if op is None:
            raise self._fail(f"an operator after {name!r}")
        raw = self._take("word")
        if raw is None:
            raw = self._take("quoted")
        if raw is None:
            raise self._fail(f"a value after {name} {op}")
        spec = self.fields.get(name)
        if spec is None:
            raise invalid(self.field, f"cannot filter on {name!r}; fields: "
                                      f"{', '.join(sorted(self.fields))}")
        if op not in spec.ops:
            raise invalid(self.field, f"{name} takes {' or '.join(spec.ops)}, not {op!r}")
        try:
            value = spec.convert(raw)
        except ValueError as e:
            raise invalid(self.field, f"{name}: {e}") from None
        return Term(name, op, value)


def parse_state_filter(text: str, allowed: set[str], field: str = "filter") -> set[str] | None:
    """For List calls that filter on `state` alone: the set of states the filter admits, or
    None when it admits all."""
    groups = parse_filter(text, {"state": Field(one_of(allowed))}, field)
    if not groups:
        return None
    admitted = set(allowed)
    for group in groups:
        admitted &= set().union(*({t.value} if t.op == "=" else allowed - {t.value} for t in group))
    return admitted
