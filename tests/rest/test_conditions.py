"""Conditional headers, pure: reads answer 304, changes 412, as Azure Batch does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.rest.conditions import NOT_MODIFIED, evaluate
from gateway.rest.errors import RestError

TAG = '"0xABC"'
MODIFIED = datetime(2026, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC)
BEFORE = "Fri, 01 May 2026 11:59:59 GMT"
AT = "Fri, 01 May 2026 12:00:00 GMT"


@pytest.mark.parametrize(
    "headers",
    [{}, {"if-match": TAG}, {"if-match": "0xABC"}, {"if-match": "*"}, {"if-match": '"0x1", "0xABC"'},
     {"if-none-match": '"0x1"'}, {"if-unmodified-since": AT}, {"if-modified-since": BEFORE}],
)
def test_conditions_met_let_the_request_go_on(headers: dict[str, str]) -> None:
    assert evaluate(headers, TAG, MODIFIED, read=False) is None
    assert evaluate(headers, TAG, MODIFIED, read=True) is None


@pytest.mark.parametrize(
    "headers",
    [{"if-match": '"0x1"'}, {"if-unmodified-since": BEFORE}],
)
def test_conditions_not_met_are_412_on_reads_and_changes(headers: dict[str, str]) -> None:
    for read in (True, False):
        with pytest.raises(RestError) as caught:
            evaluate(headers, TAG, MODIFIED, read=read)
        assert (caught.value.status, caught.value.code) == (412, "ConditionNotMet")


@pytest.mark.parametrize("headers", [{"if-none-match": TAG}, {"if-none-match": "*"},
                                     {"if-modified-since": AT}])
def test_you_have_it_already_is_304_on_a_read_and_412_on_a_change(headers: dict[str, str]) -> None:
    assert evaluate(headers, TAG, MODIFIED, read=True) == NOT_MODIFIED
    with pytest.raises(RestError) as caught:
        evaluate(headers, TAG, MODIFIED, read=False)
    assert caught.value.status == 412


def test_a_bad_date_is_invalid_header_value() -> None:
    with pytest.raises(RestError) as caught:
        evaluate({"if-modified-since": "soon"}, TAG, MODIFIED, read=True)
    assert (caught.value.status, caught.value.code) == (400, "InvalidHeaderValue")
