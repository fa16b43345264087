"""Dependencies, exit conditions, slots, priority, retention and durations as the client turns
them into the requests the server receives: pure parsing, no network."""

from __future__ import annotations

from typing import Any

import pytest

from shoal import Client, ShoalError, StatusCode, TaskSpec
from shoal.suite import free_port
from shoal.task_options import (
    ExitConditions,
    ExitOptions,
    dependencies_proto,
    parse_duration,
    parse_id_range,
)
from shoal.task_specs import create_task_request
from shoal.v1 import task_pb2

JobAction = task_pb2.ExitOptions.JobAction
DepAction = task_pb2.ExitOptions.DependencyAction


def opts(job: int = 0, dep: int = 0) -> task_pb2.ExitOptions:
    return task_pb2.ExitOptions(job_action=job, dependency_action=dep)  # type: ignore[arg-type]


# Durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5", 1.5), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800),
     ("1h30m", 5400), ("500ms", 0.5), (" 2H ", 7200), ("1w", 604800), ("0", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "forever", "-5", "1x", "h", "1h 30m", "2h-", "nan", "inf"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration: give seconds, or a duration such"):
        parse_duration(text)


# Dependencies


def test_dependencies_are_ids_and_ranges() -> None:
    deps = dependencies_proto(["prepare", (1, 100), task_pb2.TaskIdRange(start=200, end=200)])
    assert list(deps.task_ids) == ["prepare"]
    assert [(r.start, r.end) for r in deps.task_id_ranges] == [(1, 100), (200, 200)]
    assert parse_id_range("1-100") == (1, 100)
    assert parse_id_range(" 7-7 ") == (7, 7)


@pytest.mark.parametrize(
    ("text", "why"),
    [("5", "is not START-END"), ("a-b", "is not START-END"), ("-1-5", "is not START-END"),
     ("9-2", "START is greater than END"), ("1-99999999999", "out of range")],
)
def test_bad_id_ranges(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_id_range(text)


@pytest.mark.parametrize(
    ("item", "why"),
    [((5, 1), "need 0 <= start <= end"), ((True, 3), "neither a task id"), (7, "neither a task id"),
     ((1, 2, 3), "neither a task id")],
)
def test_bad_dependencies_name_the_item(item: Any, why: str) -> None:
    with pytest.raises(ValueError, match=rf"depends_on\[1\]: .*{why}"):
        dependencies_proto(["ok", item])


# Exit conditions


def test_exit_conditions_one_line_forms() -> None:
    e = ExitConditions.parse([
        "3=terminate,satisfy", "10-20=disable", "-1=block", "default=none,block",
        "pre-processing=terminate", "upload=satisfy,disable",
    ]).to_proto()
    assert e == task_pb2.ExitConditions(
        exit_codes=[
            task_pb2.ExitCodeMapping(code=3, exit_options=opts(JobAction.TERMINATE,
                                                               DepAction.SATISFY)),
            task_pb2.ExitCodeMapping(code=-1, exit_options=opts(dep=DepAction.BLOCK)),
        ],
        exit_code_ranges=[task_pb2.ExitCodeRangeMapping(
            start=10, end=20, exit_options=opts(JobAction.DISABLE))],
        pre_processing_error=opts(JobAction.TERMINATE),
        file_upload_error=opts(JobAction.DISABLE, DepAction.SATISFY),
        default=opts(JobAction.NONE, DepAction.BLOCK),
    )


def test_unset_parts_stay_unset() -> None:
    # The server tells "not given" (Azure's defaults) from an explicit choice.
    e = ExitConditions.parse(["2=block"]).to_proto()
    assert not e.HasField("default") and not e.HasField("pre_processing_error")
    assert e.exit_codes[0].exit_options.job_action == JobAction.JOB_ACTION_UNSPECIFIED


def test_the_typed_helper_takes_options_or_their_one_line_forms() -> None:
    typed = ExitConditions(
        exit_codes={3: ExitOptions(job_action="terminate", dependency_action="satisfy")},
        ranges=[(10, 20, ExitOptions(job_action="disable"))],
        pre_processing_error=ExitOptions(dependency_action="block"),
        file_upload_error="terminate",
        default=ExitOptions("none", "block"),
    )
    parsed = ExitConditions.parse(["3=terminate,satisfy", "10-20=disable",
                                   "pre-processing=block", "upload=terminate",
                                   "default=none,block"])
    assert typed.to_proto() == parsed.to_proto()


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        (["3"], "is not WHEN=ACTION"),
        (["3="], "is not WHEN=ACTION"),
        (["=block"], "is not WHEN=ACTION"),
        (["3=explode"], "got 'explode'"),
        (["3=terminate,disable"], "at most one of each"),
        (["3=block,satisfy"], "at most one of each"),
        (["3=block", "3=satisfy"], "exit code 3 is given twice"),
        (["default=block", "default=satisfy"], "default is given twice"),
        (["20-10=block"], "start is greater than its end"),
        (["sometimes=block"], "is not an exit code, a START-END range"),
        (["99999999999=block"], "out of range"),
    ],
)
def test_bad_exit_conditions_say_what_is_wrong(lines: list[str], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        ExitConditions.parse(lines)


def test_exit_options_refuse_unknown_actions() -> None:
    with pytest.raises(ValueError, match="one of none, disable, terminate"):
        ExitOptions(job_action="explode")
    with pytest.raises(ValueError, match="one of satisfy, block"):
        ExitOptions(dependency_action="maybe")


def test_exit_conditions_from_json_objects_or_lines() -> None:
    as_object = ExitConditions.from_dict({
        "exit_codes": [{"code": 3, "exit_options": {"job_action": "TERMINATE"}}],
        "exit_code_ranges": [{"start": 10, "end": 20, "exit_options": "disable,block"}],
        "default": {"dependency_action": "satisfy"},
    })
    as_lines = ExitConditions.from_dict(["3=terminate", "10-20=disable,block", "default=satisfy"])
    assert as_object.to_proto() == as_lines.to_proto()
    with pytest.raises(ValueError, match="unknown key 'exitcodes'"):
        ExitConditions.from_dict({"exitcodes": []})
    with pytest.raises(ValueError, match="'code' must be an integer"):
        ExitConditions.from_dict({"exit_codes": [{"code": "3"}]})


# TaskSpec and the request


def test_a_task_with_every_new_option_becomes_one_request() -> None:
    spec = TaskSpec(
        "reduce", "python reduce.py",
        depends_on=["prepare", (1, 3)],
        exit_conditions=ExitConditions.parse(["2=terminate"]),
        required_slots=2, priority=-5, retention_time=3600, max_task_retry_count=0,
    )
    t = create_task_request(spec).task
    assert list(t.depends_on.task_ids) == ["prepare"]
    assert [(r.start, r.end) for r in t.depends_on.task_id_ranges] == [(1, 3)]
    assert t.exit_conditions.exit_codes[0].exit_options.job_action == JobAction.TERMINATE
    assert (t.required_slots, t.priority) == (2, -5)
    assert t.constraints.retention_time.seconds == 3600
    # An explicit 0 retries is sent as such: it overrides the job's default.
    assert t.constraints.HasField("max_task_retry_count")
    assert t.constraints.max_task_retry_count == 0


def test_unset_options_are_not_sent() -> None:
    t = create_task_request(TaskSpec("t", "true")).task
    assert not t.HasField("depends_on") and not t.HasField("exit_conditions")
    assert not t.constraints.HasField("retention_time")
    # No retry count: the job's default applies.
    assert not t.constraints.HasField("max_task_retry_count")


def test_json_lines_take_the_same_keys() -> None:
    spec = TaskSpec.from_dict({
        "id": "r", "command_line": "run",
        "depends_on": ["a", [1, 10], {"start": 20, "end": 30}],
        "exit_conditions": ["3=terminate,satisfy", "default=block"],
        "required_slots": 4, "priority": 7, "retention_time": "1h30m",
        "max_wall_clock_time": "2m",
    })
    t = create_task_request(spec).task
    assert list(t.depends_on.task_ids) == ["a"]
    assert [(r.start, r.end) for r in t.depends_on.task_id_ranges] == [(1, 10), (20, 30)]
    assert t.exit_conditions.default.dependency_action == DepAction.BLOCK
    assert (t.required_slots, t.priority) == (4, 7)
    assert t.constraints.retention_time.seconds == 5400
    assert t.constraints.max_wall_clock_time.seconds == 120
    proto_form = TaskSpec.from_dict({
        "id": "r", "command_line": "run", "retention_time": 60,
        "depends_on": {"task_ids": ["a"], "task_id_ranges": [{"start": 1, "end": 10}]},
    })
    deps = create_task_request(proto_form).task.depends_on
    assert list(deps.task_ids) == ["a"] and deps.task_id_ranges[0].end == 10


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"depends_on": "a"}, "'depends_on' must be a list"),
        ({"depends_on": [[1]]}, r"depends_on\[0\]"),
        ({"depends_on": {"ids": []}}, "unknown key 'ids'"),
        ({"exit_conditions": ["3=explode"]}, "'exit_conditions': .*explode"),
        ({"exit_conditions": "3=block"}, "'exit_conditions': expected a list or an object"),
        ({"required_slots": "2"}, "'required_slots' must be an integer"),
        ({"priority": 1.5}, "'priority' must be an integer"),
        ({"retention_time": "forever"}, "is not a duration"),
        ({"retention_time": [1]}, "'retention_time' must be a number of seconds or a duration"),
        ({"max_task_retry_count": True}, "'max_task_retry_count' must be an integer"),
        ({"retention": "1h"}, "unknown key 'retention'"),
    ],
)
def test_bad_json_keys_say_what_is_wrong(bad: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        TaskSpec.from_dict({"id": "t1", "command_line": "run", **bad})


def test_a_bad_option_given_to_the_client_is_invalid_argument_naming_the_field() -> None:
    # Refused before anything is sent: nothing listens there.
    with Client(f"127.0.0.1:{free_port()}", "k", timeout=2) as c:
        with pytest.raises(ShoalError) as e:
            c.add_task("j", "t", "true", depends_on=["a", (3, 1)])
        assert e.value.code == StatusCode.INVALID_ARGUMENT
        assert e.value.field == "task.depends_on[1]"
        with pytest.raises(ShoalError) as e:
            c.add_task("j", "t", "true", exit_conditions=ExitConditions(default="explode"))
        assert e.value.field == "task.exit_conditions"
        with pytest.raises(ShoalError) as e:
            c.add_tasks("j", [{"id": "t", "command_line": "x", "priority": "high"}])
        assert e.value.field == "tasks[0]" and "'priority' must be an integer" in e.value.message
        with pytest.raises(ShoalError) as e:
            c.disable_job("j", "sometimes")
        assert e.value.field == "disable_tasks"
        with pytest.raises(ShoalError) as e:
            c.create_pool("p", target_nodes=0, node_fill_type="diagonal")
        assert e.value.field == "pool.node_fill_type" and "pack" in e.value.message
        with pytest.raises(ShoalError) as e:
            c.create_job("j", pool_id="p", on_task_failure="panic")
        assert e.value.field == "job.on_task_failure"

