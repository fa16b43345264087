"""The OData query options of Azure Batch's List calls, pure: `$filter` parsed into a predicate
over the JSON an item is served as, `$select` trimming that JSON, `maxresults`.

The `$filter` language is the subset Azure Batch's own filters use:

    filter     := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | "(" or ")" | call | comparison
    call       := ("startswith" | "endswith") "(" property "," string ")"
    comparison := property ("eq" | "ne" | "gt" | "ge" | "lt" | "le") literal
    literal    := 'text' ('' inside for ') | number | true | false | datetime'2024-05-01T00:00:00Z'
    property   := name ("/" name)*                    e.g. executionInfo/exitCode

Each resource says which properties may be filtered on and what they hold (`Schema`); any
other property, a value of the wrong kind, an unknown state, or anything outside the grammar
is refused with Azure's 400 InvalidQueryParameterValue naming the part. `Filter.states`
tells the caller which states can match, so it can let the service do the cheap part.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.rest.errors import RestError, invalid_query

FILTER = "$filter"
SELECT = "$select"
MAXRESULTS = "maxresults"
MAX_RESULTS = 1000
"""Azure's largest page, and its default."""


@dataclass(frozen=True)
class Kind:
    """What a filterable property holds: "string", "int", "bool", "datetime", or an enum of
    `values`."""

    name: str
    values: frozenset[str] = frozenset()


STRING = Kind("string")
INT = Kind("int")
BOOL = Kind("bool")
DATETIME = Kind("datetime")


def enum(values: Iterable[str]) -> Kind:
    return Kind("enum", frozenset(values))


Schema = Mapping[str, Kind]
"""Filterable property path -> what it holds."""

Item = Mapping[str, Any]
Predicate = Callable[[Item], bool]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^']|'')*')
    | (?P<dt>datetime'[^']*')
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_$][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_CALLS = {"startswith", "endswith"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            at = len(text) - len(text[pos:].lstrip())
            raise _bad(text, f"cannot read {text[at:][:20]!r} at position {at}")
        kind = m.lastgroup or ""
        out.append(_Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def _bad(text: str, reason: str) -> RestError:
    return invalid_query(FILTER, text, reason)


# The parsed filter: nodes evaluate an item and say which states they admit.

@dataclass(frozen=True)
class _Compare:
    path: str
    op: str
    value: Any

    def __call__(self, item: Item) -> bool:
        found = _lookup(item, self.path)
        if found is None:
            return self.op == "ne" and self.value is not None
        if isinstance(self.value, datetime):
            found = _datetime(found)
            if found is None:
                return False
        if isinstance(self.value, (int, float)) and not isinstance(found, (int, float)):
            return False
        return _OPS[self.op](found, self.value)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class _Call:
    name: str
    path: str
    value: str

    def __call__(self, item: Item) -> bool:
        found = _lookup(item, self.path)
        if not isinstance(found, str):
            return False
        return found.startswith(self.value) if self.name == "startswith" else found.endswith(self.value)


@dataclass(frozen=True)
class _Bool:
    op: str
    parts: tuple[Any, ...]

    def __call__(self, item: Item) -> bool:
        if self.op == "not":
            return not self.parts[0](item)
        if self.op == "and":
            return all(p(item) for p in self.parts)
        return any(p(item) for p in self.parts)


def _lookup(item: Item, path: str) -> Any:
    value: Any = item
    for part in path.split("/"):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class _Parser:
    def __init__(self, text: str, schema: Schema) -> None:
        self.text = text
        self.schema = schema
        self.tokens = _tokens(text)
        self.i = 0

    def parse(self) -> Any:
        node = self.or_()
        if self.i < len(self.tokens):
            t = self.tokens[self.i]
            raise _bad(self.text, f"unexpected {t.text!r} at position {t.pos}")
        return node

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, what: str) -> _Token:
        t = self.peek()
        if t is None:
            raise _bad(self.text, f"the filter ends where {what} was expected")
        self.i += 1
        return t

    def word(self, *words: str) -> bool:
        t = self.peek()
        if t is not None and t.kind == "word" and t.text in words:
            self.i += 1
            return True
        return False

    def or_(self) -> Any:
        parts = [self.and_()]
        while self.word("or"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else _Bool("or", tuple(parts))

    def and_(self) -> Any:
        parts = [self.unary()]
        while self.word("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else _Bool("and", tuple(parts))

    def unary(self) -> Any:
        if self.word("not"):
            return _Bool("not", (self.unary(),))
        t = self.take("a comparison")
        if t.text == "(":
            node = self.or_()
            self.expect(")")
            return node
        if t.kind != "word":
            raise _bad(self.text, f"expected a property name at position {t.pos}, found {t.text!r}")
        if t.text in _CALLS:
            return self.call(t)
        kind = self.property(t)
        op = self.take("an operator (eq, ne, gt, ge, lt, le)")
        if op.kind != "word" or op.text not in _COMPARE:
            raise _bad(self.text, f"{op.text!r} at position {op.pos} is not an operator; "
                                  "use eq, ne, gt, ge, lt, le")
        return _Compare(t.text, op.text, self.literal(t.text, kind))

    def call(self, name: _Token) -> Any:
        self.expect("(")
        prop = self.take("a property name")
        kind = self.property(prop)
        if kind.name not in ("string", "enum"):
            raise _bad(self.text, f"{name.text}() takes a text property; {prop.text} is not one")
        self.expect(",")
        value = self.take("a quoted string")
        if value.kind != "str":
            raise _bad(self.text, f"{name.text}() takes a quoted string, found {value.text!r}")
        self.expect(")")
        return _Call(name.text, prop.text, _unquote(value.text))

    def expect(self, punct: str) -> None:
        t = self.take(repr(punct))
        if t.text != punct:
            raise _bad(self.text, f"expected {punct!r} at position {t.pos}, found {t.text!r}")

    def property(self, t: _Token) -> Kind:
        if t.kind != "word" or t.text in ("and", "or", "not"):
            raise _bad(self.text, f"expected a property name at position {t.pos}, found {t.text!r}")
        kind = self.schema.get(t.text)
        if kind is None:
            known = ", ".join(sorted(self.schema))
            raise _bad(self.text, f"cannot filter on {t.text!r}; filterable properties: {known}")
        return kind

    def literal(self, prop: str, kind: Kind) -> Any:
        t = self.take(f"a value for {prop}")
        if kind.name in ("string", "enum"):
            if t.kind != "str":
                raise _bad(self.text, f"{prop} takes a quoted string, found {t.text!r}")
            value = _unquote(t.text)
            if kind.name == "enum" and value not in kind.values:
                raise _bad(self.text, f"invalid {prop} {value!r}; one of {', '.join(sorted(kind.values))}")
            return value
        if kind.name == "int":
            if t.kind != "num" or "." in t.text:
                raise _bad(self.text, f"{prop} takes an integer, found {t.text!r}")
            return int(t.text)
        if kind.name == "bool":
            if t.text not in ("true", "false"):
                raise _bad(self.text, f"{prop} takes true or false, found {t.text!r}")
            return t.text == "true"
        if t.kind != "dt":
            raise _bad(self.text, f"{prop} takes datetime'...', found {t.text!r}")
        when = _datetime(t.text[len("datetime'"):-1])
        if when is None or when.tzinfo is None:
            raise _bad(self.text, f"{t.text} is not a UTC date and time (2024-05-01T00:00:00Z)")
        return when


def _unquote(text: str) -> str:
    return text[1:-1].replace("''", "'")


@dataclass(frozen=True)
class Filter:
    """A parsed `$filter`: call it on an item's JSON."""

    text: str
    node: Any

    def __call__(self, item: Item) -> bool:
        return bool(self.node(item))

    def states(self, prop: str, every: frozenset[str]) -> frozenset[str]:
        """The values of the enum `prop` an item may have and still match (all of `every` when
        the filter does not narrow them): the caller can ask the service for those only."""
        return _admits(self.node, prop, every)[0]


def _admits(node: Any, prop: str, every: frozenset[str]) -> tuple[frozenset[str], bool]:
    """(values of `prop` for which `node` may be true, whether that set is exact)."""
    if isinstance(node, _Compare) and node.path == prop and node.op in ("eq", "ne"):
        return (frozenset({node.value}) if node.op == "eq" else every - {node.value}), True
    if isinstance(node, _Bool):
        parts = [_admits(p, prop, every) for p in node.parts]
        if node.op == "not":
            admitted, exact = parts[0]
            return (every - admitted, True) if exact else (every, False)
        exact = all(e for _, e in parts)
        if node.op == "and":
            return frozenset.intersection(*(s for s, _ in parts)), exact
        return frozenset.union(*(s for s, _ in parts)), exact
    return every, False


def parse_filter(text: str | None, schema: Schema) -> Filter | None:
    """The `$filter` of a request, or None when it has none."""
    if text is None or not text.strip():
        return None
    return Filter(text, _Parser(text, schema).parse())


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def parse_select(text: str | None) -> tuple[str, ...] | None:
    """The top-level properties `$select` keeps, or None to keep all."""
    if text is None or not text.strip():
        return None
    names = tuple(n.strip() for n in text.split(","))
    for n in names:
        if not _NAME.fullmatch(n):
            raise invalid_query(SELECT, text, f"{n!r} is not a property name")
    return names


def select(item: Mapping[str, Any], names: tuple[str, ...] | None) -> dict[str, Any]:
    """`item` with only the properties `names` keeps (and its odata annotations)."""
    if names is None:
        return dict(item)
    return {k: v for k, v in item.items() if k in names or k.startswith("odata.")}


def parse_maxresults(text: str | None) -> int:
    if text is None or text == "":
        return MAX_RESULTS
    if not text.isdigit():
        raise invalid_query(MAXRESULTS, text, "must be a whole number")
    value = int(text)
    if not 1 <= value <= MAX_RESULTS:
        raise RestError(
            400, "OutOfRangeQueryParameterValue",
            f"The value of maxresults must be from 1 to {MAX_RESULTS}",
            (("QueryParameterName", MAXRESULTS), ("QueryParameterValue", text)),
        )
    return value
