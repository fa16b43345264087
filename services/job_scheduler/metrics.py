"""The job-scheduler's Prometheus metrics, read from the core's state when Prometheus scrapes.

Nothing here runs per task: the core already keeps each job's task counts, its node sessions
and ready queues, and per pool the plain tallies of attempts, retries, requeues, heartbeats
and dispatch waits (`model.PoolTally`); a scrape turns them into metric families. Names and
labels are listed in deploy/README.md.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.metrics import counter_family, histogram_family
from services.common.timeutil import Clock
from services.job_scheduler.core import Core
from services.job_scheduler.model import JobState, Result

COMPLETED_SHOWN_FOR = 600.0
"""Seconds a completed job's task counts stay in the metrics: long enough for a dashboard to
see it reach 100 %, short enough that a cluster that ran a million jobs does not expose them
all."""

_TASK_STATES = ("active", "running", "completed")


class SchedulerCollector(Collector):
    def __init__(self, core: Core, clock: Clock) -> None:
        self._core = core
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the families depend on state: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._jobs()
        yield from self._pools()

    def _jobs(self) -> Iterator[Metric]:
        tasks = GaugeMetricFamily(
            "shoal_tasks", "Tasks of a job by state (PREPARING counts as running); completed "
            "jobs are shown for 10 minutes after they end.",
            labels=["account", "pool", "job", "state"])
        completed = GaugeMetricFamily(
            "shoal_tasks_completed", "Completed tasks of a job by result.",
            labels=["account", "pool", "job", "result"])
        jobs = GaugeMetricFamily("shoal_jobs", "Jobs by state.", labels=["account", "state"])
        by_state: dict[tuple[str, str], int] = {}
        shown_after = self._clock() - COMPLETED_SHOWN_FOR
        for job in self._core.jobs.values():
            k = (job.account, job.state.name.lower())
            by_state[k] = by_state.get(k, 0) + 1
            if job.state == JobState.COMPLETED and (job.end_time or 0) < shown_after:
                continue
            c = job.counts
            labels = [job.account, job.pool_id, job.id]
            for state, n in zip(_TASK_STATES, (c.active, c.running, c.completed), strict=True):
                tasks.add_metric([*labels, state], n)
            completed.add_metric([*labels, Result.SUCCESS.name.lower()], c.succeeded)
            completed.add_metric([*labels, Result.FAILURE.name.lower()], c.failed)
        for (account, state), n in sorted(by_state.items()):
            jobs.add_metric([account, state], n)
        return iter((tasks, completed, jobs))

    def _pools(self) -> Iterator[Metric]:
        core = self._core
        labels = ["account", "pool"]
        tallies = {(t.account, t.pool_id): t for t in core.tallies.values()}
        yield counter_family("shoal_task_attempts", "Attempts assigned to a node.", labels,
                             {k: t.attempts for k, t in tallies.items()})
        yield counter_family(
            "shoal_task_retries", "Attempts that failed and whose task is retried "
            "(max_task_retry_count).", labels, {k: t.retries for k, t in tallies.items()})
        yield counter_family(
            "shoal_task_requeues", "Attempts stopped by their node's loss, removal or "
            "disabling: the task waits again, not counted as a retry.", labels,
            {k: t.requeues for k, t in tallies.items()})
        yield counter_family(
            "shoal_node_heartbeats", "Agent messages that only said the node is alive.",
            labels, {k: t.heartbeats for k, t in tallies.items()})
        yield histogram_family(
            "shoal_task_dispatch_seconds", "From a task becoming ACTIVE (added, retried or "
            "requeued) to its assignment to a node.", labels,
            {k: t.dispatch_wait for k, t in tallies.items()})
        ready = GaugeMetricFamily(
            "shoal_tasks_ready", "Tasks in a pool's ready queue (runnable, waiting for a "
            "slot).", labels=labels)
        names = {j.pool_key: j.pool_id for j in core.jobs.values()}
        for (account, pool_key), queue in core.queues.items():
            ready.add_metric([account, names.get((account, pool_key), pool_key)], len(queue))
        yield ready
        slots = GaugeMetricFamily(
            "shoal_task_slots", "Task slots of a pool's connected nodes, used or free.",
            labels=[*labels, "state"])
        seen: dict[tuple[str, str], list[int]] = {}
        for s in core.sessions.values():
            if s.connected:
                used_total = seen.setdefault((s.key[0], s.pool_id), [0, 0])
                used_total[0] += s.used_slots
                used_total[1] += s.total_slots
        for (account, pool), (used, total) in sorted(seen.items()):
            slots.add_metric([account, pool, "used"], used)
            slots.add_metric([account, pool, "free"], max(0, total - used))
        yield slots

