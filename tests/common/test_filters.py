"""The List calls' filter language (AIP-160 subset): fields joined by AND, values of one
field by OR, and a clear refusal naming `filter` for anything else."""

from __future__ import annotations

import pytest

from services.common.errors import ShoalError
from services.common.filters import Condition, Field, Kind, parse_filter, parse_state_filter

FIELDS = {
    "state": Field(Kind.ENUM, frozenset({"ACTIVE", "RUNNING", "COMPLETED"})),
    "result": Field(Kind.ENUM, frozenset({"SUCCESS", "FAILURE"})),
    "node": Field(Kind.WORD),
    "exit_code": Field(Kind.INT),
}


def test_groups_of_one_field_joined_by_and() -> None:
    got = parse_filter('state = COMPLETED AND result = failure AND node = "pools/p/nodes/n-1" '
                       'AND (exit_code = 3 OR exit_code = -1)', FIELDS)
    assert got == {
        "state": Condition(frozenset({"COMPLETED"})),
        "result": Condition(frozenset({"FAILURE"})),
        "node": Condition(frozenset({"n-1"})),
        "exit_code": Condition(frozenset({3, -1})),
    }
    assert parse_filter("exit_code != 0", FIELDS) == {
        "exit_code": Condition(frozenset({0}), negated=True)}
    assert parse_filter("  ", FIELDS) == {}


def test_a_state_filter_as_before() -> None:
    states = {"ACTIVE", "RUNNING", "COMPLETED"}
    assert parse_state_filter("state = ACTIVE OR state = RUNNING", states) == {"ACTIVE", "RUNNING"}
    assert parse_state_filter("state != ACTIVE", states) == {"RUNNING", "COMPLETED"}
    assert parse_state_filter("", states) is None
    with pytest.raises(ShoalError, match="cannot parse"):
        parse_state_filter("result = FAILURE", states)


@pytest.mark.parametrize("text, words", [
    ("colour = red", "cannot parse"),
    ("state = ACTIVE OR result = FAILURE", "OR joins values of one field"),
    ("state = ACTIVE AND state = RUNNING", "named twice"),
    ("state = SLEEPING", "unknown state"),
    ("exit_code = three", "must be an integer"),
    ("exit_code != 1 OR exit_code != 2", "one exit_code != X"),
    ('node = "a b"', "must be an id"),
    ("state == ACTIVE", "cannot parse"),
])
def test_bad_filters_name_the_field(text: str, words: str) -> None:
    with pytest.raises(ShoalError, match=words) as e:
        parse_filter(text, FIELDS)
    assert e.value.field == "filter"
