"""TaskSpec, one task to add, and the CreateTaskRequest it becomes.

Shared by `Client.add_task(s)` and the job schedule methods (a schedule's job template carries
tasks too), so it lives apart from both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.specs import (
    OutputFile,
    OutputFileLike,
    PackageLike,
    PackageReference,
    ResourceFile,
    ResourceFileLike,
    json_items,
    output_file_proto,
    package_proto,
    resource_file_proto,
    spec_protos,
)
from shoal.task_options import (
    DependencyLike,
    ExitConditions,
    dependencies_proto,
    duration_proto,
    exit_conditions_proto,
    json_dependencies,
    json_duration,
)
from shoal.v1 import task_pb2


@dataclass(frozen=True)
class TaskSpec:
    """One task to add with `Client.add_tasks`."""

    id: str
    """Task id: 1-64 of [A-Za-z0-9_-], unique in the job ignoring case."""
    command_line: str
    """Program and arguments, split like a shell splits words but run without a shell."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables of the process."""
    max_wall_clock_time: float | None = None
    """Seconds after which the task is killed and fails; None for no limit."""
    max_task_retry_count: int | None = None
    """How often a non-zero exit is retried; None: the job's default."""
    display_name: str = ""
    """Free text shown to people."""
    resource_files: Sequence[ResourceFileLike] = ()
    """Files downloaded into the working directory before the task starts."""
    output_files: Sequence[OutputFileLike] = ()
    """Files uploaded when the task's process ends."""
    application_package_references: Sequence[PackageLike] = ()
    """Application packages installed on the node before the task starts."""
    depends_on: Sequence[DependencyLike] = ()
    """Tasks it waits for: ids, and (start, end) ranges of integer ids, both included. The
    job must be created with uses_task_dependencies."""
    exit_conditions: ExitConditions | task_pb2.ExitConditions | None = None
    """What its end does to its job and its dependents."""
    required_slots: int = 1
    """Slots it takes on a node, 1 to the pool's task_slots_per_node."""
    priority: int = 0
    """Order among the job's ready tasks, -1000 to 1000: higher first."""
    retention_time: float | None = None
    """Seconds its directory stays on the node after it ends; None: 7 days."""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TaskSpec:
        """Build from a JSON-like mapping; ValueError says what is wrong with it.

        `resource_files`, `output_files` and `application_package_references` are lists of
        the one-line forms of shoal.specs (strings) or of objects with the protos' fields.
        `depends_on` lists ids and [start, end] ranges; `exit_conditions` is a list of the
        one-line forms of shoal.task_options ("3=terminate,satisfy") or an object of the
        proto's fields; durations are seconds or strings such as "2h".
        """
        if not isinstance(raw, Mapping):
            raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
        # Types only: the server checks values and names the field it refuses.
        for required in ("id", "command_line"):
            if required not in raw:
                raise ValueError(f"missing {required!r}")
            if not isinstance(raw[required], str):
                raise ValueError(f"{required!r} must be a string")
        env = raw.get("environment") or {}
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ValueError("'environment' must be an object of string values")
        retries = raw.get("max_task_retry_count")
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)):
            raise ValueError("'max_task_retry_count' must be an integer")
        display = raw.get("display_name", "")
        if not isinstance(display, str):
            raise ValueError("'display_name' must be a string")
        for number in ("required_slots", "priority"):
            value = raw.get(number, 0)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{number!r} must be an integer")
        exits = raw.get("exit_conditions")
        if exits is not None:
            try:
                exits = ExitConditions.from_dict(exits)
            except ValueError as e:
                raise ValueError(f"'exit_conditions': {e}") from None
        return cls(
            raw["id"],
            raw["command_line"],
            dict(env),
            json_duration(raw, "max_wall_clock_time"),
            retries,
            display,
            json_items(raw, "resource_files", ResourceFile.from_dict),
            json_items(raw, "output_files", OutputFile.from_dict),
            json_items(raw, "application_package_references", PackageReference.from_dict),
            depends_on=json_dependencies(raw),
            exit_conditions=exits,
            required_slots=raw.get("required_slots", 1),
            priority=raw.get("priority", 0),
            retention_time=json_duration(raw, "retention_time"),
        )


def create_task_request(spec: TaskSpec) -> task_pb2.CreateTaskRequest:
    """The request for one task; SpecError names a bad item of it."""
    task = task_pb2.Task(
        command_line=spec.command_line,
        environment=dict(spec.environment),
        display_name=spec.display_name,
        constraints=task_pb2.TaskConstraints(
            max_wall_clock_time=duration_proto(spec.max_wall_clock_time),
            max_task_retry_count=spec.max_task_retry_count,
            retention_time=duration_proto(spec.retention_time),
        ),
        resource_files=spec_protos(spec.resource_files, resource_file_proto, "resource_files"),
        output_files=spec_protos(spec.output_files, output_file_proto, "output_files"),
        application_package_references=spec_protos(
            spec.application_package_references, package_proto, "application_package_references"
        ),
        required_slots=spec.required_slots,
        priority=spec.priority,
    )
    if spec.depends_on:
        task.depends_on.CopyFrom(dependencies_proto(spec.depends_on))
    if spec.exit_conditions is not None:
        task.exit_conditions.CopyFrom(exit_conditions_proto(spec.exit_conditions))
    return task_pb2.CreateTaskRequest(task_id=spec.id, task=task)
