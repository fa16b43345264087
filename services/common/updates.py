"""The rules every Update* call shares (UpdateJob, UpdatePool, UpdateTask), pure: field masks
(AIP-134) and entity tags with If-Match (AIP-154, Azure Batch's If-Match and ConditionNotMet).

An etag is `"<pk>.<revision>"`: the pk of the resource's row, which is never reused (so a
resource deleted and created again under its id never matches an etag of the old one), and a
revision its owner moves with every change of the resource's settings or state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.common.errors import ShoalError, failed_precondition, invalid

MAX_ETAG = 256
"""Longest if_match accepted: an etag is far shorter; anything longer is not one."""


def etag(pk: int, revision: int) -> str:
    """A version as an RFC 7232 entity tag, quotes included."""
    return f'"{pk}.{revision}"'


def matches(current: str, if_match: str) -> bool:
    """Whether an If-Match value names the version `current`: the etag with or without its
    quotes (a shell strips them), or `*` (any version)."""
    want = if_match.strip()
    return want == "*" or want.strip('"') == current.strip('"')


def check_if_match(if_match: str) -> str:
    """The request's if_match, checked for length only: what it must equal is the owner's."""
    if len(if_match) > MAX_ETAG:
        raise invalid("if_match", f"at most {MAX_ETAG} characters; send an etag read before")
    return if_match


def stale(what: str, current: str, if_match: str) -> ShoalError:
    """The error of an update whose if_match is not the resource's etag any more."""
    return failed_precondition(
        "CONDITION_NOT_MET",
        f"{what} has changed since it was read: its etag is {current}, not {if_match}; "
        "read it again")


def require(what: str, current: str, if_match: str) -> None:
    """Refuse an update whose if_match (when given) is not the etag `current`."""
    if if_match and not matches(current, if_match):
        raise stale(what, current, if_match)


def check_name(resource_name: str, request_name: str, field: str) -> None:
    """The resource in an update request may leave its name out, or repeat the request's."""
    if resource_name and resource_name != request_name:
        raise invalid(field, f"must be empty or {request_name!r}, got {resource_name!r}")


def mask_fields(paths: Iterable[str], table: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    """The model fields an update mask names. `table` maps each path a caller may send (`*`
    included) to the fields it changes. An empty mask, or a path not in `table`, is
    INVALID_ARGUMENT naming it and listing the paths there are."""
    paths = list(paths)
    known = ", ".join(table)
    if not paths:
        raise invalid("update_mask", "name the fields to update: " + known)
    fields: set[str] = set()
    for i, path in enumerate(paths):
        names = table.get(path)
        if names is None:
            raise invalid(f"update_mask.paths[{i}]",
                          f"{path[:100]!r} cannot be updated; the paths are {known}")
        fields.update(names)
    return frozenset(fields)
