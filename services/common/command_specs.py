"""Validation of commands a node runs — a task's command line and environment, a pool's start
task, a job's preparation and release tasks (pure).

The checks a 100,000-task batch runs per task stay cheap: callers test the common case first
and come here for the full check and the error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from services.common.cmdline import split_command
from services.common.errors import invalid
from services.common.file_specs import check_resource_files
from services.common.timeutil import from_duration
from shoal.v1 import task_pb2

MAX_COMMAND_LINE = 8192
MAX_RETRIES = 100
MAX_WALL_CLOCK = 365 * 86400
MAX_ENV = 256
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
RESERVED_ENV_PREFIXES = ("SHOAL_", "AZ_BATCH_")


def check_command_line(cmd: str, field: str) -> str:
    if len(cmd) > MAX_COMMAND_LINE:
        raise invalid(field, f"must be at most {MAX_COMMAND_LINE} characters, got {len(cmd)}")
    if "\x00" in cmd:
        raise invalid(field, "must not contain NUL")
    try:
        words = split_command(cmd)
    except ValueError as e:
        raise invalid(field, f"cannot be split into words ({e}); it runs without a shell") from None
    if not words:
        raise invalid(field, "is required: the program to run and its arguments")
    return cmd


def check_environment(env: Mapping[str, str], field: str) -> dict[str, str]:
    if len(env) > MAX_ENV:
        raise invalid(field, f"at most {MAX_ENV} variables")
    for name, value in env.items():
        efield = f"{field}[{name!r}]"
        if ENV_NAME.fullmatch(name) is None:
            raise invalid(efield, "a name is letters, digits and _, not starting with a digit")
        if name.upper().startswith(RESERVED_ENV_PREFIXES):
            raise invalid(efield, "SHOAL_* and AZ_BATCH_* variables are set by Shoal")
        if "\x00" in value or len(value) > 32768:
            raise invalid(efield, "a value is at most 32768 characters, no NUL")
    return dict(env)


def check_retries(value: int, field: str) -> int:
    if not 0 <= value <= MAX_RETRIES:
        raise invalid(field, f"must be 0 to {MAX_RETRIES}, got {value}")
    return value


def check_wall_clock(d: object, field: str) -> float:
    wall = from_duration(d)  # type: ignore[arg-type]
    if not 0 < wall <= MAX_WALL_CLOCK:
        raise invalid(field, f"must be positive and at most {MAX_WALL_CLOCK // 86400} days")
    return wall


def check_node_command(
    spec: task_pb2.StartTask | task_pb2.JobPreparationTask | task_pb2.JobReleaseTask, field: str
) -> bytes:
    """A start, job preparation or release task, checked; returned serialized for storage."""
    check_command_line(spec.command_line, f"{field}.command_line")
    check_resource_files(spec.resource_files, f"{field}.resource_files")
    check_environment(spec.environment, f"{field}.environment")
    if hasattr(spec, "max_task_retry_count"):
        check_retries(spec.max_task_retry_count, f"{field}.max_task_retry_count")
    if spec.HasField("max_wall_clock_time"):
        check_wall_clock(spec.max_wall_clock_time, f"{field}.max_wall_clock_time")
    return spec.SerializeToString()
