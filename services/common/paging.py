"""Page sizes and opaque page tokens (AIP-158), pure.

A token is the last id of the previous page, so paging is stable while rows are added.
"""

from __future__ import annotations

import base64
import binascii

from services.common.errors import invalid

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(value: int, field: str = "page_size") -> int:
    if value < 0:
        raise invalid(field, f"must not be negative, got {value}")
    if value == 0:
        return DEFAULT_PAGE_SIZE
    return min(value, MAX_PAGE_SIZE)


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
