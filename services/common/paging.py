"""Page sizes and opaque page tokens (AIP-158), pure.

A token is the last key of the previous page, so paging is stable while rows are added. Every
List call pages the same way: its servicer decodes the request's page into a `PageRequest`;
whoever reads reads `limit` items (one more than a page) after `after`, and `page` cuts them
to the page and the next page's token:

    want = PageRequest.of(request.page_size, request.page_token)
    rows = await store.list_things(account, want.after, want.limit)
    things, next_page_token = want.page(rows, lambda t: t.id.lower())
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from services.common.errors import invalid

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """The page a List call asks for."""

    size: int
    """Items on the page: the request's page_size, its default when 0, at most the maximum."""
    after: str | None
    """The key the page starts after (the page token's); None for the first page."""

    @classmethod
    def of(
        cls, page_size: int, page_token: str, *, default: int = DEFAULT_PAGE_SIZE,
        maximum: int = MAX_PAGE_SIZE,
    ) -> PageRequest:
        """Decode a request's page_size and page_token; ShoalError(INVALID_ARGUMENT) naming
        the field for a negative size or a token this server did not issue."""
        return cls(_size(page_size, "page_size", default, maximum), decode_token(page_token))

    @property
    def limit(self) -> int:
        """How many items to read: one more than a page tells whether another follows."""
        return self.size + 1

    def page(self, fetched: Sequence[T], key: Callable[[T], str]) -> tuple[list[T], str]:
        """The page of what was read (in key order after `after`: `limit` items are enough)
        and the next page's token: `key` of its last item, or "" when nothing follows."""
        items = list(fetched[: self.size])
        return items, encode_token(key(items[-1])) if len(fetched) > self.size else ""


def _size(value: int, field: str, default: int, maximum: int) -> int:
    if value < 0:
        raise invalid(field, f"must not be negative, got {value}")
    if value == 0:
        return default
    return min(value, maximum)


def encode_token(last_key: str) -> str:
    return base64.urlsafe_b64encode(("v1:" + last_key).encode()).decode()


def decode_token(token: str, field: str = "page_token") -> str | None:
    """The key after which the page starts, or None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid(field, "is not a token this server issued") from None
    if not raw.startswith("v1:"):
        raise invalid(field, "is not a token this server issued")
    return raw[3:]
