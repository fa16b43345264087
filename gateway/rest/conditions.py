"""HTTP conditional headers as Azure Batch honours them, pure.

On a read, a condition that says "you already have it" (If-None-Match, If-Modified-Since) is
304 Not Modified; on a change, any condition not met is 412 ConditionNotMet and nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from gateway.rest.errors import RestError, condition_not_met, invalid_header

CONDITIONAL = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
NOT_MODIFIED = 304


def normalize(tag: str) -> str:
    """An entity tag without weakness marker or quotes."""
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


def _matches(header: str, etag: str) -> bool:
    wanted = {normalize(t) for t in header.split(",") if t.strip()}
    return "*" in wanted or normalize(etag) in wanted


def _date(headers: Mapping[str, str], name: str) -> datetime | None:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise invalid_header(name, raw, "must be an RFC 1123 date")
    return when


def has_conditions(headers: Mapping[str, str]) -> bool:
    return any(headers.get(h) for h in CONDITIONAL)


def evaluate(headers: Mapping[str, str], etag: str, modified: datetime | None, *, read: bool) -> int | None:
    """None when the request may go on; NOT_MODIFIED for a read the client need not repeat;
    RestError 412 for a condition not met. Header names lower-case; `modified` is the
    resource's Last-Modified (to the second, as HTTP dates are)."""
    if_match = headers.get("if-match")
    if if_match and not _matches(if_match, etag):
        raise condition_not_met(f"If-Match {if_match} is not the resource's ETag {etag}")
    unmodified = _date(headers, "if-unmodified-since")
    if unmodified is not None and modified is not None and _seconds(modified) > unmodified:
        raise condition_not_met(f"the resource was modified after {headers['if-unmodified-since']}")
    none_match = headers.get("if-none-match")
    if none_match and _matches(none_match, etag):
        if read:
            return NOT_MODIFIED
        raise condition_not_met(f"If-None-Match {none_match} matches the resource's ETag")
    since = _date(headers, "if-modified-since")
    if since is not None and modified is not None and _seconds(modified) <= since:
        if read:
            return NOT_MODIFIED
        raise condition_not_met(f"the resource was not modified since {headers['if-modified-since']}")
    return None


def _seconds(when: datetime) -> datetime:
    return when.replace(microsecond=0)


__all__ = ["RestError", "evaluate", "has_conditions", "normalize"]
