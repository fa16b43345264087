"""What every resource's JSON mapping shares, pure: reading a request body with errors that
name Azure's property, times and durations in Azure's formats, name/value lists, and the
pieces of tasks that several resources carry (resource files, environment, packages).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.rest.errors import (
    invalid_property,
    missing_property,
    unsupported_property,
)
from shoal.v1 import application_pb2, task_pb2

T = TypeVar("T")

# Azure writes "no limit" as .NET's TimeSpan.MaxValue; anything this long is no limit.
UNLIMITED = timedelta(days=10_000)


@dataclass(frozen=True)
class Body:
    """A JSON object of a request, at `path` (for messages: `startTask.resourceFiles[2]`)."""

    raw: Mapping[str, Any]
    path: str = ""

    @classmethod
    def of(cls, value: Any, path: str = "") -> Body:
        if not isinstance(value, Mapping):
            raise invalid_property(path or "body", "must be a JSON object")
        return cls(value, path)

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def _get(self, key: str, kinds: type | tuple[type, ...], what: str, required: bool) -> Any:
        value = self.raw.get(key)
        if value is None:
            if required:
                raise missing_property(self.name(key))
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
            raise invalid_property(self.name(key), f"must be {what}")
        return value

    def string(self, key: str, *, required: bool = False) -> str | None:
        return self._get(key, str, "a string", required)

    def text(self, key: str, default: str = "") -> str:
        found = self.string(key)
        return default if found is None else found

    def integer(self, key: str, *, required: bool = False) -> int | None:
        value = self._get(key, int, "a whole number", required)
        if value is not None and not -(2**31) <= value < 2**31:
            raise invalid_property(self.name(key), "is out of range")
        return value

    def flag(self, key: str) -> bool | None:
        return self._get(key, bool, "true or false", False)

    def obj(self, key: str, *, required: bool = False) -> Body | None:
        value = self._get(key, Mapping, "a JSON object", required)
        return None if value is None else Body(value, self.name(key))

    def items(self, key: str) -> list[Any]:
        return self._get(key, list, "a JSON array", False) or []

    def objs(self, key: str) -> list[Body]:
        return [Body.of(v, f"{self.name(key)}[{i}]") for i, v in enumerate(self.items(key))]

    def time(self, key: str) -> Timestamp | None:
        raw = self.string(key)
        if raw is None:
            return None
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise invalid_property(self.name(key), "must be a UTC date and time (2024-05-01T00:00:00Z)")
        ts = Timestamp()
        ts.FromDatetime(when.astimezone(UTC))
        return ts

    def duration(self, key: str) -> Duration | None:
        """An ISO 8601 duration; None when absent or "no limit"."""
        raw = self.string(key)
        if raw is None:
            return None
        span = parse_duration(raw)
        if span is None:
            raise invalid_property(self.name(key), "must be an ISO 8601 duration such as PT1H30M")
        if span >= UNLIMITED:
            return None
        d = Duration()
        d.FromTimedelta(span)
        return d

    def choice(self, key: str, table: Mapping[str, T], default: T) -> T:
        """An enum, spelled as Azure spells it (case does not matter), mapped by `table`."""
        raw = self.string(key)
        if raw is None:
            return default
        found = {k.lower(): v for k, v in table.items()}.get(raw.lower())
        if found is None:
            raise invalid_property(self.name(key), f"must be one of {', '.join(table)}")
        return found

    def refuse(self, key: str, reason: str, *, unless: Any = None) -> None:
        """UnsupportedProperty for a property whose effect Shoal cannot give, unless it is
        absent or holds the harmless `unless` (false, 0, an empty list)."""
        value = self.raw.get(key)
        if value is not None and value != unless and value not in ([], {}):
            raise unsupported_property(self.name(key), reason)


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


_DURATION = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


def parse_duration(text: str) -> timedelta | None:
    m = _DURATION.fullmatch(text.strip())
    if m is None or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        return None
    parts = {k: float(v) for k, v in m.groupdict().items() if v}
    return timedelta(weeks=parts.get("w", 0), days=parts.get("d", 0), hours=parts.get("h", 0),
                     minutes=parts.get("m", 0), seconds=parts.get("s", 0))


def format_duration(d: Duration) -> str:
    total = d.ToTimedelta()
    days, rest = total.days, total - timedelta(days=total.days)
    seconds = rest.total_seconds()
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (f"{int(h)}H" if h else "") + (f"{int(m)}M" if m else "")
    if s or not (days or clock):
        clock += f"{s:g}S"
    return out + ("T" + clock if clock else "")


def duration_field(message: Any, field: str) -> str | None:
    """A message's optional Duration field in Azure's format; None when unset."""
    return format_duration(getattr(message, field)) if message.HasField(field) else None


def format_time(ts: Timestamp) -> str | None:
    """RFC 3339 in UTC with a Z, as Azure writes times; None for an unset time."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def http_date(ts: Timestamp) -> str:
    """RFC 1123, for Last-Modified."""
    return f"{ts.ToDatetime(tzinfo=UTC):%a, %d %b %Y %H:%M:%S GMT}"


def has_time(ts: Timestamp) -> bool:
    return bool(ts.seconds or ts.nanos)


def latest(*times: Timestamp) -> Timestamp:
    """The latest of some times (unset ones ignored)."""
    return max(times, key=lambda t: (t.seconds, t.nanos))


def compact(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Drop what Azure leaves out: None, empty lists and empty objects."""
    return {k: v for k, v in obj.items() if v is not None and v != [] and v != {}}


def name_values(items: Iterable[Body], path: str) -> dict[str, str]:
    """Azure's [{"name": n, "value": v}] lists (metadata, environment settings) as a map."""
    out: dict[str, str] = {}
    for item in items:
        name = item.string("name", required=True) or ""
        if name in out:
            raise invalid_property(item.name("name"), f"{name!r} appears twice in {path}")
        out[name] = item.text("value")
    return out


def name_value_list(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


def last_segment(name: str) -> str:
    """`jobs/j1/tasks/t1` -> `t1`."""
    return name.rsplit("/", 1)[-1]


# Pieces of tasks that pools (start task) and jobs (preparation, release) share.

def resource_files_in(body: Body, key: str = "resourceFiles") -> list[task_pb2.ResourceFile]:
    out = []
    for item in body.objs(key):
        item.refuse("storageContainerUrl", "name a Shoal container with autoStorageContainerName")
        item.refuse("identityReference", "Shoal's nodes reach storage through signed URLs")
        container = item.string("autoStorageContainerName")
        url = item.string("httpUrl")
        if (container is None) == (url is None):
            raise invalid_property(item.path, "give exactly one of autoStorageContainerName and httpUrl")
        out.append(task_pb2.ResourceFile(
            container=container or "", blob_prefix=item.text("blobPrefix"), http_url=url or "",
            file_path=item.text("filePath"), file_mode=item.text("fileMode"),
        ))
    return out


def resource_files_out(files: Iterable[task_pb2.ResourceFile]) -> list[dict[str, Any]]:
    out = []
    for f in files:
        source: dict[str, Any] = (
            {"httpUrl": f.http_url} if f.http_url
            # One object is Shoal's own form; as Azure has none, it is shown as the prefix
            # that is exactly its key.
            else {"autoStorageContainerName": f.container, "blobPrefix": f.object_key or f.blob_prefix or None}
        )
        out.append(compact({**source, "filePath": f.file_path or None, "fileMode": f.file_mode or None}))
    return out


def environment_in(body: Body, key: str = "environmentSettings") -> dict[str, str]:
    return name_values(body.objs(key), body.name(key))


def packages_in(body: Body) -> list[application_pb2.ApplicationPackageReference]:
    return [
        application_pb2.ApplicationPackageReference(
            application_id=item.string("applicationId", required=True) or "",
            version=item.text("version"),
        )
        for item in body.objs("applicationPackageReferences")
    ]


def packages_out(refs: Iterable[application_pb2.ApplicationPackageReference]) -> list[dict[str, Any]]:
    return [compact({"applicationId": r.application_id, "version": r.version or None}) for r in refs]


def refuse_containers(body: Body) -> None:
    """Properties of every kind of task whose effect Shoal cannot give."""
    body.refuse("containerSettings", "Shoal runs tasks as processes on the node, not in containers")


def etag(served: Mapping[str, Any]) -> str:
    """An entity tag for a resource Shoal keeps no version of: a hash of the JSON it is served
    as, so it changes exactly when what a client sees changes."""
    digest = hashlib.sha256(json.dumps(served, sort_keys=True).encode()).hexdigest()
    return f'"0x{digest[:16].upper()}"'
