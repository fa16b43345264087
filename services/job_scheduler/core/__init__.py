"""The job-scheduler's pure core: synchronous code with no asyncio, no gRPC and no SQL.

Each event — tasks added, an agent's hello or results, a node lost, a job terminated, a
dispatch round, a tick of time — is a method that takes what the engine read for it, decides
against the state the core owns, and returns a `Plan`: rows to write, messages for nodes, the
reply, and domain events. The engine (services/job_scheduler/engine.py) applies plans in
order: commit, then send. A method that refuses an event raises ShoalError before it changes
anything.
"""

from __future__ import annotations

from services.job_scheduler.core.attempts import AttemptEvents
from services.job_scheduler.core.explain import Explain, Explanation
from services.job_scheduler.core.jobs import JobEvents
from services.job_scheduler.core.load import Load, Snapshot
from services.job_scheduler.core.nodes import AgentReport, Hello, NodeEvents, Welcome
from services.job_scheduler.core.plan import Plan
from services.job_scheduler.core.tasks import TaskEvents


class Core(Load, Explain, NodeEvents, TaskEvents, JobEvents, AttemptEvents):
    """The whole core: each base holds the events of one kind; the state is CoreState's."""


__all__ = ["AgentReport", "Core", "Explanation", "Hello", "Plan", "Snapshot", "Welcome"]
