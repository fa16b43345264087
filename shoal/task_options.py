"""Typed helpers for what a task waits for and what its end does: dependencies, exit
conditions, and durations.

    from shoal.task_options import ExitConditions, ExitOptions
    client.add_task(
        "j1", "reduce", "python reduce.py",
        depends_on=["prepare", (1, 100)],            # task "prepare" and tasks "1".."100"
        exit_conditions=ExitConditions(
            exit_codes={3: ExitOptions(job_action="terminate", dependency_action="satisfy")},
            ranges=[(10, 20, ExitOptions(job_action="disable"))],
            default=ExitOptions(dependency_action="block"),
        ),
        retention_time=3600,
    )

As in shoal.specs, each helper also parses the one-line forms the `shoal` command and
JSON-lines files use (`ExitConditions.parse(["3=terminate,satisfy", "default=block"])`,
`parse_duration("1h30m")`). Parsing checks the shape only; the server checks the values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import duration_pb2

from shoal.specs import SpecError, _fields
from shoal.v1 import task_pb2

EXIT_CONDITION_SYNTAX = """\
WHEN=ACTION[,ACTION]  where WHEN is one of
  CODE                an exit code, e.g. 3
  START-END           exit codes from START to END, both included
  pre-processing      the task's files or packages could not be staged
  upload              its output files could not be uploaded
  default             any other end
and ACTION a job action (none, disable, terminate), a dependency action
(satisfy: its dependents run; block: they wait), or one of each.
Unset actions: no job action; satisfy on success, block on failure.
The first match wins: exact codes, ranges, staging errors, default.
e.g. 3=terminate,satisfy  10-20=disable  default=none,block"""

DURATION_SYNTAX = "seconds, or a duration such as 90s, 15m, 2h, 7d, 1h30m"

JOB_ACTIONS = {"none": "NONE", "disable": "DISABLE", "terminate": "TERMINATE"}
DEPENDENCY_ACTIONS = {"satisfy": "SATISFY", "block": "BLOCK"}
# The keys of the one-line forms that are not exit codes, with the spellings people try.
_EXIT_KEYS = {
    "pre-processing": "pre_processing_error",
    "preprocessing": "pre_processing_error",
    "pre-processing-error": "pre_processing_error",
    "upload": "file_upload_error",
    "file-upload": "file_upload_error",
    "file-upload-error": "file_upload_error",
    "default": "default",
}
_INT32 = (-(2**31), 2**31 - 1)
_CODE = re.compile(r"-?\d+")
_CODE_RANGE = re.compile(r"(-?\d+)-(-?\d+)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds from `90`, `1.5`, `90s`, `15m`, `2h`, `7d`, `1h30m`, `500ms`; ValueError says
    what is wrong."""
    s = text.strip().lower()
    try:
        seconds = float(s)
    except ValueError:
        pass
    else:
        if seconds < 0 or seconds != seconds or seconds == float("inf"):
            raise ValueError(f"{text!r} is not a duration: give {DURATION_SYNTAX}")
        return seconds
    parts = list(_DURATION_PART.finditer(s))
    if not s or "".join(p.group() for p in parts) != s:
        raise ValueError(f"{text!r} is not a duration: give {DURATION_SYNTAX}")
    return sum(float(p[1]) * _UNIT_SECONDS[p[2]] for p in parts)


def json_duration(raw: Mapping[str, Any], key: str) -> float | None:
    """A duration of a JSON task: a number of seconds or a string such as "2h"."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key!r} must be a number of seconds or a duration such as \"2h\"")
    return float(value)


def duration_proto(seconds: float | None) -> duration_pb2.Duration | None:
    """A protobuf Duration of `seconds`; None stays None (the field is left unset)."""
    if seconds is None:
        return None
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(round(seconds * 1e9)))
    return d


def _int32(text: str, what: str) -> int:
    value = int(text)
    if not _INT32[0] <= value <= _INT32[1]:
        raise ValueError(f"{what} {text} is out of range")
    return value


def parse_id_range(text: str) -> tuple[int, int]:
    """`START-END` (both included, START <= END) for tasks whose ids are integers."""
    m = re.fullmatch(r"(\d+)-(\d+)", text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not START-END (two integers, e.g. 1-100)")
    start, end = _int32(m[1], "start"), _int32(m[2], "end")
    if start > end:
        raise ValueError(f"{text!r}: START is greater than END")
    return start, end


DependencyLike = str | tuple[int, int] | task_pb2.TaskIdRange
"""A task id, or an inclusive range of integer task ids as (start, end)."""


def dependencies_proto(items: Iterable[DependencyLike]) -> task_pb2.TaskDependencies:
    """Task ids and ranges as the TaskDependencies proto; SpecError names a bad item."""
    deps = task_pb2.TaskDependencies()
    for i, item in enumerate(items):
        if isinstance(item, str):
            deps.task_ids.append(item)
        elif isinstance(item, task_pb2.TaskIdRange):
            deps.task_id_ranges.append(item)
        elif (
            isinstance(item, tuple | list)
            and len(item) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            start, end = item
            if start > end or start < 0 or end > _INT32[1]:
                raise SpecError(f"depends_on[{i}]", f"range {start}-{end}: need 0 <= start <= end")
            deps.task_id_ranges.append(task_pb2.TaskIdRange(start=start, end=end))
        else:
            raise SpecError(
                f"depends_on[{i}]", f"{item!r} is neither a task id nor a (start, end) range"
            )
    return deps


def json_dependencies(raw: Mapping[str, Any]) -> tuple[DependencyLike, ...]:
    """`depends_on` of a JSON task: ids (strings) and ranges ([start, end] or {"start": ..,
    "end": ..}), or the proto's object ({"task_ids": [..], "task_id_ranges": [..]})."""
    value = raw.get("depends_on") or []
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"task_ids", "task_id_ranges"})
        if unknown:
            raise ValueError(f"'depends_on': unknown key {unknown[0]!r}")
        value = [*(value.get("task_ids") or []), *(value.get("task_id_ranges") or [])]
    if not isinstance(value, list):
        raise ValueError("'depends_on' must be a list of task ids and [start, end] ranges")
    items: list[DependencyLike] = []
    for item in value:
        if isinstance(item, Mapping) and set(item) <= {"start", "end"}:
            item = [item.get("start", 0), item.get("end", 0)]
        if isinstance(item, list):
            item = tuple(item)
        items.append(item)
    dependencies_proto(items)  # checks each item; SpecError (a ValueError) names a bad one
    return tuple(items)


@dataclass(frozen=True)
class ExitOptions:
    """What one way of ending does: to the job (`job_action`) and to the task's dependents
    (`dependency_action`)."""

    job_action: str = ""
    """none, disable or terminate; empty: none. Applied to a failure only when the job's
    on_task_failure is perform-exit-options-job-action."""
    dependency_action: str = ""
    """satisfy (dependents run) or block (they wait); empty: satisfy on success, block on
    failure."""

    def __post_init__(self) -> None:
        if self.job_action and self.job_action.lower() not in JOB_ACTIONS:
            raise ValueError(f"job action {self.job_action!r}: one of none, disable, terminate")
        if self.dependency_action and self.dependency_action.lower() not in DEPENDENCY_ACTIONS:
            raise ValueError(
                f"dependency action {self.dependency_action!r}: one of satisfy, block")

    @classmethod
    def parse(cls, text: str) -> ExitOptions:
        """`terminate`, `block`, `terminate,satisfy`, `none,block`: a job action, a dependency
        action, or one of each, in any order."""
        job = dep = ""
        for word in (w.strip().lower() for w in text.split(",")):
            if word in JOB_ACTIONS and not job:
                job = word
            elif word in DEPENDENCY_ACTIONS and not dep:
                dep = word
            else:
                raise ValueError(
                    f"{text!r}: expected a job action (none, disable, terminate) and/or a "
                    f"dependency action (satisfy, block), at most one of each; got {word!r}"
                )
        return cls(job, dep)

    @classmethod
    def from_dict(cls, raw: Any) -> ExitOptions:
        """From JSON: the one-line form, or {"job_action": .., "dependency_action": ..}."""
        if isinstance(raw, str):
            return cls.parse(raw)
        return cls(**_fields(cls, raw))

    def to_proto(self) -> task_pb2.ExitOptions:
        msg = task_pb2.ExitOptions()
        if self.job_action:
            msg.job_action = getattr(task_pb2.ExitOptions, JOB_ACTIONS[self.job_action.lower()])
        if self.dependency_action:
            msg.dependency_action = getattr(
                task_pb2.ExitOptions, DEPENDENCY_ACTIONS[self.dependency_action.lower()])
        return msg


ExitOptionsLike = ExitOptions | str


def _options(value: ExitOptionsLike) -> ExitOptions:
    return ExitOptions.parse(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class ExitConditions:
    """How a task's end affects its job and its dependents (Azure Batch's ExitConditions).

        ExitConditions(exit_codes={3: ExitOptions("terminate", "satisfy")},
                       ranges=[(10, 20, "disable")], default=ExitOptions(dependency_action="block"))

    Options may be given as ExitOptions or in their one-line form ("terminate,satisfy").
    """

    exit_codes: Mapping[int, ExitOptionsLike] = field(default_factory=dict)
    """Exact exit codes."""
    ranges: Sequence[tuple[int, int, ExitOptionsLike]] = ()
    """(start, end, options): exit codes from start to end, both included."""
    pre_processing_error: ExitOptionsLike | None = None
    """Its resource files or packages could not be staged."""
    file_upload_error: ExitOptionsLike | None = None
    """Its output files could not be uploaded."""
    default: ExitOptionsLike | None = None
    """Any other end."""

    @classmethod
    def parse(cls, lines: Iterable[str]) -> ExitConditions:
        """From one-line forms (see EXIT_CONDITION_SYNTAX), one condition each; ValueError
        says which is wrong."""
        codes: dict[int, ExitOptions] = {}
        ranges: list[tuple[int, int, ExitOptions]] = []
        named: dict[str, ExitOptions] = {}
        for line in lines:
            when, sep, actions = line.partition("=")
            when = when.strip().lower().replace("_", "-")
            if not sep or not when or not actions.strip():
                raise ValueError(f"{line!r} is not WHEN=ACTION[,ACTION]")
            options = ExitOptions.parse(actions)
            if _CODE.fullmatch(when):
                code = _int32(when, "exit code")
                if code in codes:
                    raise ValueError(f"{line!r}: exit code {code} is given twice")
                codes[code] = options
            elif m := _CODE_RANGE.fullmatch(when):
                start, end = _int32(m[1], "exit code"), _int32(m[2], "exit code")
                if start > end:
                    raise ValueError(f"{line!r}: the range's start is greater than its end")
                ranges.append((start, end, options))
            elif when in _EXIT_KEYS:
                key = _EXIT_KEYS[when]
                if key in named:
                    raise ValueError(f"{line!r}: {when} is given twice")
                named[key] = options
            else:
                raise ValueError(
                    f"{line!r}: {when!r} is not an exit code, a START-END range, "
                    "pre-processing, upload or default"
                )
        return cls(codes, tuple(ranges), **named)

    @classmethod
    def from_dict(cls, raw: Any) -> ExitConditions:
        """From JSON: a list of one-line forms, or an object of the proto's fields
        ({"exit_codes": [{"code": 3, "exit_options": "terminate"}], "default": "block"}),
        where options are one-line forms or {"job_action": .., "dependency_action": ..}."""
        if isinstance(raw, list):
            if not all(isinstance(line, str) for line in raw):
                raise ValueError("a list of exit conditions holds strings like '3=terminate'")
            return cls.parse(raw)
        if not isinstance(raw, Mapping):
            raise ValueError(f"expected a list or an object, got {type(raw).__name__}")
        allowed = {"exit_codes", "exit_code_ranges", *_EXIT_KEYS.values()}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
        codes = {
            _json_int(m, "code"): ExitOptions.from_dict(m.get("exit_options", {}))
            for m in _json_list(raw, "exit_codes")
        }
        ranges = tuple(
            (_json_int(m, "start"), _json_int(m, "end"),
             ExitOptions.from_dict(m.get("exit_options", {})))
            for m in _json_list(raw, "exit_code_ranges")
        )
        named = {k: ExitOptions.from_dict(raw[k]) for k in _EXIT_KEYS.values() if k in raw}
        return cls(codes, ranges, **named)

    def to_proto(self) -> task_pb2.ExitConditions:
        msg = task_pb2.ExitConditions(
            exit_codes=[
                task_pb2.ExitCodeMapping(code=code, exit_options=_options(o).to_proto())
                for code, o in self.exit_codes.items()
            ],
            exit_code_ranges=[
                task_pb2.ExitCodeRangeMapping(
                    start=start, end=end, exit_options=_options(o).to_proto())
                for start, end, o in self.ranges
            ],
        )
        for key in ("pre_processing_error", "file_upload_error", "default"):
            value = getattr(self, key)
            if value is not None:
                getattr(msg, key).CopyFrom(_options(value).to_proto())
        return msg


def exit_conditions_proto(
    value: ExitConditions | task_pb2.ExitConditions,
) -> task_pb2.ExitConditions:
    """The proto of the helper (or the proto itself); SpecError says what is wrong."""
    if isinstance(value, task_pb2.ExitConditions):
        return value
    try:
        return value.to_proto()
    except (ValueError, TypeError) as e:  # a bad one-line option, or a code out of range
        raise SpecError("exit_conditions", str(e)) from None


def _json_list(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    values = raw.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, Mapping) for v in values):
        raise ValueError(f"{key!r} must be a list of objects")
    return values


def _json_int(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key!r} must be an integer")
    return value
