"""The account's pool and node quotas (the cluster file's `limits`), as pure rules.

Like Azure Batch's pool and dedicated-core quotas, they bound what an account may ask for, not
what it has: a pool's target counts when it is set, before a node starts. Shrinking is always
allowed, so an account over a lowered quota can get back under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.errors import quota_exceeded
from shoal.cluster_config import Limits


@dataclass(frozen=True)
class Usage:
    pools: int
    """The account's pools, those being deleted included (their nodes are still there)."""
    target_nodes: int
    """Target nodes summed over the account's pools that are not being deleted."""


def check_new_pool(limits: Limits, usage: Usage, target: int) -> None:
    if usage.pools >= limits.pools_per_account:
        raise quota_exceeded("POOL_QUOTA_EXCEEDED", "pools_per_account", "pools of the account",
                             limits.pools_per_account, usage.pools)
    check_target_nodes(limits, usage, 0, target)


def check_target_nodes(limits: Limits, usage: Usage, old: int, new: int) -> None:
    """A pool's target going from `old` to `new`."""
    if new <= old:
        return
    if new > limits.nodes_per_pool:
        raise quota_exceeded("POOL_NODE_QUOTA_EXCEEDED", "nodes_per_pool",
                             "target nodes of one pool", limits.nodes_per_pool, old, new - old)
    if usage.target_nodes - old + new > limits.nodes_per_account:
        raise quota_exceeded("NODE_QUOTA_EXCEEDED", "nodes_per_account",
                             "target nodes of the account's pools", limits.nodes_per_account,
                             usage.target_nodes, new - old)
