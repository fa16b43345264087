"""$filter, $select and maxresults, pure: what each filter admits, the states it lets the
service filter, and the 400 naming the part it cannot take."""

from __future__ import annotations

import pytest

from gateway.rest import odata
from gateway.rest.errors import RestError
from gateway.rest.listing import shoal_filter
from gateway.rest.wire.tasks import TASK_FILTER

TASKS = [
    {"id": "t1", "state": "completed", "creationTime": "2026-05-01T10:00:00.000000Z",
     "executionInfo": {"exitCode": 0, "result": "success"}},
    {"id": "t2", "state": "completed", "creationTime": "2026-05-01T11:00:00.000000Z",
     "executionInfo": {"exitCode": 3, "result": "failure"}},
    {"id": "render-1", "state": "running", "creationTime": "2026-05-01T12:00:00.000000Z",
     "executionInfo": {}},
    {"id": "render-2", "state": "active", "creationTime": "2026-05-01T13:00:00.000000Z"},
]
SHOAL = {"active": ["ACTIVE"], "preparing": ["PREPARING"], "running": ["RUNNING"],
         "completed": ["COMPLETED"]}


def matching(text: str) -> list[str]:
    flt = odata.parse_filter(text, TASK_FILTER)
    assert flt is not None
    return [t["id"] for t in TASKS if flt(t)]


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("state eq 'completed'", ["t1", "t2"]),
        ("state ne 'completed'", ["render-1", "render-2"]),
        ("state eq 'running' or state eq 'active'", ["render-1", "render-2"]),
        ("startswith(id,'render')", ["render-1", "render-2"]),
        ("startswith(id, 'render') and state eq 'active'", ["render-2"]),
        ("state eq 'completed' and executionInfo/exitCode ne 0", ["t2"]),
        ("executionInfo/result eq 'failure'", ["t2"]),
        ("not (state eq 'completed')", ["render-1", "render-2"]),
        ("(state eq 'completed' or state eq 'active') and not startswith(id,'t')", ["render-2"]),
        ("creationTime ge datetime'2026-05-01T11:00:00Z' and creationTime lt datetime'2026-05-01T13:00:00Z'",
         ["t2", "render-1"]),
        ("id eq 't1' or id eq 'render-2'", ["t1", "render-2"]),
        ("endswith(id,'-2')", ["render-2"]),
        ("id eq 'it''s'", []),
    ],
)
def test_filters_admit_what_azure_s_would(text: str, ids: list[str]) -> None:
    assert matching(text) == ids


@pytest.mark.parametrize(
    ("text", "pushed"),
    [
        ("state eq 'completed'", "state = COMPLETED"),
        ("state eq 'running' or state eq 'active'", "state = ACTIVE OR state = RUNNING"),
        ("state ne 'completed'", "state = ACTIVE OR state = PREPARING OR state = RUNNING"),
        ("startswith(id,'r') and state eq 'active'", "state = ACTIVE"),
        # An or with a part the service cannot filter: all states, filtered here.
        ("startswith(id,'r') or state eq 'active'", ""),
        ("not (state eq 'active' or state eq 'running')", "state = COMPLETED OR state = PREPARING"),
        ("not startswith(id,'r')", ""),
    ],
)
def test_the_state_part_goes_to_the_service(text: str, pushed: str) -> None:
    assert shoal_filter(odata.parse_filter(text, TASK_FILTER), SHOAL) == pushed


def test_a_filter_no_state_can_match_asks_the_service_nothing() -> None:
    flt = odata.parse_filter("state eq 'active' and state eq 'running'", TASK_FILTER)
    assert shoal_filter(flt, SHOAL) is None


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("state eq 'deleted'", "invalid state 'deleted'"),
        ("colour eq 'red'", "cannot filter on 'colour'"),
        ("state = 'active'", "at position 6"),
        ("state eq active", "quoted string"),
        ("executionInfo/exitCode eq '0'", "integer"),
        ("substringof('x', id)", "cannot filter on 'substringof'"),
        ("state eq 'active' and", "ends where"),
        ("(state eq 'active'", "ends where"),
        ("creationTime gt '2026'", "datetime'...'"),
        ("creationTime gt datetime'yesterday'", "not a UTC date"),
        ("startswith(executionInfo/exitCode,'1')", "text property"),
        ("state eq 'active' % 2", "cannot read '% 2'"),
    ],
)
def test_what_it_cannot_take_is_400_naming_the_part(text: str, names: str) -> None:
    with pytest.raises(RestError) as caught:
        odata.parse_filter(text, TASK_FILTER)
    e = caught.value
    assert (e.status, e.code) == (400, "InvalidQueryParameterValue")
    values = dict(e.values)
    assert values["QueryParameterName"] == "$filter" and values["QueryParameterValue"] == text
    assert names in values["Reason"], values["Reason"]


def test_an_empty_filter_is_none() -> None:
    assert odata.parse_filter(None, TASK_FILTER) is None
    assert odata.parse_filter("  ", TASK_FILTER) is None


def test_select_keeps_the_named_properties_and_annotations() -> None:
    item = {"odata.metadata": "m", "id": "t1", "state": "active", "url": "u", "eTag": "e"}
    names = odata.parse_select("id, state")
    assert odata.select(item, names) == {"odata.metadata": "m", "id": "t1", "state": "active"}
    assert odata.select(item, odata.parse_select(None)) == item
    with pytest.raises(RestError) as caught:
        odata.parse_select("id,executionInfo/exitCode")
    assert dict(caught.value.values)["QueryParameterName"] == "$select"


@pytest.mark.parametrize(("text", "size"), [(None, 1000), ("", 1000), ("1", 1), ("1000", 1000)])
def test_maxresults(text: str | None, size: int) -> None:
    assert odata.parse_maxresults(text) == size


@pytest.mark.parametrize(("text", "code"), [("0", "OutOfRangeQueryParameterValue"),
                                           ("1001", "OutOfRangeQueryParameterValue"),
                                           ("ten", "InvalidQueryParameterValue"),
                                           ("-1", "InvalidQueryParameterValue")])
def test_bad_maxresults(text: str, code: str) -> None:
    with pytest.raises(RestError) as caught:
        odata.parse_maxresults(text)
    assert (caught.value.status, caught.value.code) == (400, code)
