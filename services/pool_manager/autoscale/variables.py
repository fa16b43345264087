"""The names a formula finds defined: service variables, their aliases, and constants.

Service variables start with `$` and are case-sensitive, as Azure's documentation spells them.
A name not listed here is a user variable, with or without `$`.
"""

from __future__ import annotations

from services.pool_manager.autoscale.values import TimeInterval, Value

TARGET_DEDICATED = "$TargetDedicatedNodes"
TARGET_DEDICATED_ALIAS = "$TargetDedicated"
TARGET_LOW_PRIORITY = "$TargetLowPriorityNodes"
TARGET_LOW_PRIORITY_ALIAS = "$TargetLowPriority"
NODE_DEALLOCATION_OPTION = "$NodeDeallocationOption"

WRITABLE = frozenset({
    TARGET_DEDICATED, TARGET_DEDICATED_ALIAS, TARGET_LOW_PRIORITY, TARGET_LOW_PRIORITY_ALIAS,
    NODE_DEALLOCATION_OPTION,
})
"""Read-write service variables: the formula's outputs."""

ALIASES = {TARGET_DEDICATED_ALIAS: TARGET_DEDICATED, TARGET_LOW_PRIORITY_ALIAS: TARGET_LOW_PRIORITY}
"""Alias -> full name. When a formula sets both, the full name's value wins (as in Azure)."""

POOL_VALUES = {
    "$CurrentDedicatedNodes": "current_dedicated_nodes",
    "$CurrentDedicated": "current_dedicated_nodes",
    "$CurrentLowPriorityNodes": "current_low_priority_nodes",
    "$UsableNodeCount": "usable_node_count",
    "$TaskSlotsPerNode": "task_slots_per_node",
}
"""Read-only doubles taken from the pool as it is now -> the PoolSnapshot field."""

TASK_METRICS = (
    "$ActiveTasks", "$RunningTasks", "$PendingTasks", "$SucceededTasks", "$FailedTasks",
    # Shoal's: the same counts in task slots (a task that needs 2 slots counts 2).
    "$ActiveTaskSlots", "$RunningTaskSlots", "$PendingTaskSlots",
)
RESOURCE_METRICS = (
    "$CPUPercent", "$WallClockSeconds", "$MemoryBytes", "$DiskBytes", "$DiskReadBytes",
    "$DiskWriteBytes", "$DiskReadOps", "$DiskWriteOps", "$NetworkInBytes", "$NetworkOutBytes",
    "$SampleNodeCount", "$PreemptedNodeCount",
)
SAMPLED = frozenset(TASK_METRICS + RESOURCE_METRICS)
"""Read-only variables whose values are histories of samples, read through their methods."""

DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")
DEFAULT_DEALLOCATION_OPTION = "requeue"

CONSTANTS: dict[str, Value] = {
    "TimeInterval_Zero": TimeInterval(0.0),
    "TimeInterval_100ns": TimeInterval(1e-7),
    "TimeInterval_Microsecond": TimeInterval(1e-6),
    "TimeInterval_Millisecond": TimeInterval(1e-3),
    "TimeInterval_Second": TimeInterval(1.0),
    "TimeInterval_Minute": TimeInterval(60.0),
    "TimeInterval_Hour": TimeInterval(3_600.0),
    "TimeInterval_Day": TimeInterval(86_400.0),
    "TimeInterval_Week": TimeInterval(604_800.0),
    "TimeInterval_Year": TimeInterval(365 * 86_400.0),
    **{option: option for option in DEALLOCATION_OPTIONS},
}
"""Predefined names: the time units, and the words `$NodeDeallocationOption` takes."""


def is_defined(name: str) -> bool:
    """Whether `name` can be read before the formula assigns it."""
    return name in WRITABLE or name in POOL_VALUES or name in SAMPLED or name in CONSTANTS


def is_read_only(name: str) -> bool:
    return name in POOL_VALUES or name in SAMPLED or name in CONSTANTS
