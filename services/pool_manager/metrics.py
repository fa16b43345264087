"""The pool-manager's Prometheus metrics: pools and their nodes by state.

A node's state is derived from its row and the scheduler's session of it, as GetNode shows
it; that takes an await, so it is read once per scrape (`refresh`, run by the metrics
endpoint before it collects) and not kept up to date between scrapes. Names and labels are
listed in deploy/README.md.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.pool_manager.app import Census, PoolManager
from services.pool_manager.model import NodeState


class PoolCollector(Collector):
    def __init__(self, app: PoolManager) -> None:
        self._app = app
        self._census = Census([], {})

    async def refresh(self) -> None:
        self._census = await self._app.census()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the families depend on state: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        census = self._census
        pools = GaugeMetricFamily("shoal_pools", "Pools by state.", labels=["account", "state"])
        target = GaugeMetricFamily("shoal_pool_target_nodes", "Nodes a pool is asked to have.",
                                   labels=["account", "pool"])
        by_state: dict[tuple[str, str], int] = {}
        for p in census.pools:
            k = (p.account, p.state.value.lower())
            by_state[k] = by_state.get(k, 0) + 1
            target.add_metric([p.account, p.id], p.target_nodes)
        for (account, pool_state), n in sorted(by_state.items()):
            pools.add_metric([account, pool_state], n)
        nodes = GaugeMetricFamily(
            "shoal_nodes", "Nodes of a pool by state (idle, running, starting, unreachable, "
            "lost, leaving, unusable, start_task_failed), as GetNode shows them.",
            labels=["account", "pool", "state"])
        for p in census.pools:
            # Every state of every pool, zeros included: a node leaving a state must show as
            # the series going to 0, not as the series vanishing.
            for state in NodeState:
                n = census.node_states.get((p.account, p.id, state.value), 0)
                nodes.add_metric([p.account, p.id, state.value.lower()], n)
        return iter((pools, target, nodes))
