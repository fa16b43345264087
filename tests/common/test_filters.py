"""The List calls' filter language (services.common.filters), pure."""

from __future__ import annotations

import pytest

from services.common.errors import Code, ShoalError
from services.common.filters import (
    ORDER,
    Field,
    Term,
    integer,
    one_of,
    parse_filter,
    parse_state_filter,
)

STATES = {"ACTIVE", "RUNNING", "COMPLETED"}
FIELDS = {
    "state": Field(one_of(STATES)),
    "exit_code": Field(integer, ORDER),
    "node": Field(str),
}


def test_or_binds_tighter_than_and() -> None:
    got = parse_filter("state = active OR state = RUNNING AND exit_code >= -2", FIELDS)
    assert got == [
        [Term("state", "=", "ACTIVE"), Term("state", "=", "RUNNING")],
        [Term("exit_code", ">=", -2)],
    ]
    assert parse_filter("(state = ACTIVE OR state = RUNNING) AND (node != n1)", FIELDS) == [
        [Term("state", "=", "ACTIVE"), Term("state", "=", "RUNNING")],
        [Term("node", "!=", "n1")],
    ]


def test_quoted_values_and_blank_filters() -> None:
    assert parse_filter('node = "pools/p/nodes/a \\"b\\""', FIELDS) == [
        [Term("node", "=", 'pools/p/nodes/a "b"')]]
    assert parse_filter("node=pools/p/nodes/n1", FIELDS) == [[Term("node", "=", "pools/p/nodes/n1")]]
    assert parse_filter("", FIELDS) == []
    assert parse_filter("   ", FIELDS) == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("state", "expected an operator after 'state'"),
        ("state =", "expected a value after state ="),
        ("state = ACTIVE OR", "expected a comparison at the end"),
        ("state = ACTIVE AND", "expected a comparison at the end"),
        ("state = ACTIVE state = RUNNING", "expected AND, OR or the end at 'state'"),
        ("(state = ACTIVE", "expected OR or ')' at the end"),
        ("state = ACTIVE)", "expected AND, OR or the end at ')'"),
        ("((state = ACTIVE))", "expected a comparison at '('"),
        ("color = red", "cannot filter on 'color'; fields: exit_code, node, state"),
        ("state = sleeping", "state: unknown value 'sleeping'; one of ACTIVE, COMPLETED, RUNNING"),
        ("state > ACTIVE", "state takes = or !=, not '>'"),
        ("exit_code = x", "exit_code: 'x' is not an integer"),
        ('node = "unterminated', "cannot parse"),
        ("state = ACTIVE or state = RUNNING", "expected AND, OR or the end at 'or'"),
    ],
)
def test_bad_filters_are_invalid_naming_the_field(text: str, says: str) -> None:
    with pytest.raises(ShoalError) as caught:
        parse_filter(text, FIELDS)
    e = caught.value
    assert (e.code, e.reason, e.field) == (Code.INVALID_ARGUMENT, "INVALID_ARGUMENT", "filter")
    assert e.message.startswith("filter: ") and says in e.message, e.message


def test_too_many_comparisons_are_refused() -> None:
    text = " OR ".join(["state = ACTIVE"] * 51)
    with pytest.raises(ShoalError, match="more than 50 comparisons"):
        parse_filter(text, FIELDS)


def test_state_filters_give_the_states_admitted() -> None:
    assert parse_state_filter("", STATES) is None
    assert parse_state_filter("state = ACTIVE OR state = running", STATES) == {"ACTIVE", "RUNNING"}
    assert parse_state_filter("state != COMPLETED", STATES) == {"ACTIVE", "RUNNING"}
    assert parse_state_filter("state != ACTIVE AND state != RUNNING", STATES) == {"COMPLETED"}
    with pytest.raises(ShoalError, match="cannot filter on 'node'"):
        parse_state_filter("node = n1", STATES)
