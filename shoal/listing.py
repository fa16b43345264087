"""What the client's list calls return: every item, fetched a page at a time as it is
iterated, or one page of a chosen size with the token that continues it.

    for task in client.list_tasks("j1"):            # all of them
        ...
    page = client.list_tasks("j1").page(50)         # the first 50, and page.next_page_token
    more = client.list_tasks("j1", page_token=page.next_page_token).page(50)

A page token is opaque: pass it back to the same call with the same filter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

T = TypeVar("T", covariant=True)

MAX_PAGE = 1000
"""What the servers return at most per call (ListObjects: 5,000)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_page_token: str
    """Gives what follows to the same call's `page_token`; "" when nothing follows."""


class Listing(Iterator[T]):
    """A List call: iterate for every item, or take `page(limit)`."""

    def __init__(
        self, call: Callable[[Any], Any], request: Message, items: str, max_page: int = MAX_PAGE
    ) -> None:
        self._call = call
        self._request = request
        self._items = items
        self._max_page = max_page
        self._walk: Iterator[T] | None = None

    def __next__(self) -> T:
        if self._walk is None:
            self._walk = self._every()
        return next(self._walk)

    def _every(self) -> Iterator[T]:
        # Bounded by the server: an empty next_page_token ends the walk.
        request = self._copy()
        while True:
            response = self._call(request)
            yield from getattr(response, self._items)
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def at(self, page_token: str) -> Listing[T]:
        """The same call, from `page_token` on (a token from an earlier page)."""
        request = self._copy()
        request.page_token = page_token
        return Listing(self._call, request, self._items, self._max_page)

    def page(self, limit: int) -> Page[T]:
        """Up to `limit` items from the call's page token on, and the token of what follows.
        More than a server's page takes several calls; none is cut short, so the token
        continues right after the last item returned."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        request = self._copy()
        items: list[T] = []
        while True:
            request.page_size = min(limit - len(items), self._max_page)  # type: ignore[attr-defined]
            response = self._call(request)
            items.extend(getattr(response, self._items))
            token: str = response.next_page_token
            if not token or len(items) >= limit:
                return Page(items, token)
            request.page_token = token  # type: ignore[attr-defined]

    def _copy(self) -> Any:
        request = type(self._request)()
        request.CopyFrom(self._request)
        return request
