"""Node credentials: minted by the pool-manager at registration, checked by the scheduler
when the agent opens its stream — with no call between the two services.

A credential is `{account}:{slots}:{hmac}`, the HMAC over account, pool, node and slots under
the cluster secret, so an agent can neither claim another node nor more slots.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from shoal.cluster_config import ClusterConfig


@dataclass(frozen=True)
class NodeIdentity:
    account: str
    pool: str
    node: str
    slots: int


def _text(account: str, pool: str, node: str, slots: int) -> str:
    return f"node-credential/{account}/{pool}/{node}/{slots}"


def _sign(config: ClusterConfig, text: str) -> str:
    return hmac.new(bytes.fromhex(config.secret), text.encode(), hashlib.sha256).hexdigest()


def mint(config: ClusterConfig, ident: NodeIdentity) -> str:
    sig = _sign(config, _text(ident.account, ident.pool, ident.node, ident.slots))
    return f"{ident.account}:{ident.slots}:{sig}"


def verify(config: ClusterConfig, pool: str, node: str, credential: str) -> NodeIdentity | None:
    """The identity a credential proves for `pools/{pool}/nodes/{node}`, or None."""
    try:
        account, slots_text, sig = credential.split(":")
        slots = int(slots_text)
    except ValueError:
        return None
    if not hmac.compare_digest(_sign(config, _text(account, pool, node, slots)), sig):
        return None
    return NodeIdentity(account, pool, node, slots)
