"""Paging (services.common.paging), pure: one request decoded, one way to cut a page."""

from __future__ import annotations

import pytest

from services.common.errors import Code, ShoalError
from services.common.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageRequest


def test_pages_follow_each_other_to_the_end() -> None:
    ids = [f"id{i:02}" for i in range(7)]
    seen, token = [], ""
    for _ in range(10):
        want = PageRequest.of(3, token)
        fetched = [i for i in ids if want.after is None or i > want.after][: want.limit]
        page, token = want.page(fetched, lambda i: i)
        seen += page
        if not token:
            break
    assert seen == ids
    assert PageRequest.of(3, "").page(ids[:3], lambda i: i) == (ids[:3], "")  # exactly a page


def test_sizes_default_and_cap() -> None:
    assert PageRequest.of(0, "").size == DEFAULT_PAGE_SIZE
    assert PageRequest.of(10**6, "").size == MAX_PAGE_SIZE
    assert PageRequest.of(0, "", default=7, maximum=9).size == 7
    assert PageRequest.of(50, "", default=7, maximum=9).limit == 10


@pytest.mark.parametrize(("size", "token", "field"), [(-1, "", "page_size"), (1, "bogus!", "page_token")])
def test_a_bad_page_names_its_field(size: int, token: str, field: str) -> None:
    with pytest.raises(ShoalError) as e:
        PageRequest.of(size, token)
    assert (e.value.code, e.value.field) == (Code.INVALID_ARGUMENT, field)
