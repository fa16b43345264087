"""The cluster's configuration: one JSON file that every service process reads.

`shoal up` writes it into the state directory; on real deployments an operator writes it
(see deploy/). Frozen dataclasses, so a value can't change under a running service.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SchedulerTiming:
    heartbeat_interval: float = 2.0
    """Seconds between agent heartbeats; the scheduler tells each agent in Welcome."""
    unreachable_after: float = 6.0
    """Seconds of silence after which a node is shown UNREACHABLE."""
    lost_after: float = 20.0
    """Seconds of silence after which a node is LOST and its running attempts are requeued."""
    reconnect_grace: float = 20.0
    """After a scheduler start, seconds a node gets to reconnect before it can be declared lost."""
    max_requeue_count: int = 10
    """A task requeued this often completes as failed (NODE_REQUEUE_LIMIT) instead."""


@dataclass(frozen=True)
class ClusterConfig:
    state_dir: str
    """SQLite files, logs and the local nodes' roots live under here."""
    secret: str
    """Hex secret shared by the services: derives the service token and signs node credentials."""
    gateway_address: str = "127.0.0.1:50051"
    pool_manager_address: str = "127.0.0.1:50052"
    job_scheduler_address: str = "127.0.0.1:50053"
    storage_stager_address: str = "127.0.0.1:50054"
    timing: SchedulerTiming = field(default_factory=SchedulerTiming)
    log_level: str = "info"

    @property
    def service_token(self) -> str:
        """Token the services present to each other; clients never see it."""
        return hmac.new(bytes.fromhex(self.secret), b"service-token", hashlib.sha256).hexdigest()

    def sign(self, text: str) -> str:
        return hmac.new(bytes.fromhex(self.secret), text.encode(), hashlib.sha256).hexdigest()

    def verify(self, text: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(text), signature)

    def db_path(self, service: str) -> Path:
        return Path(self.state_dir) / f"{service}.db"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> ClusterConfig:
        raw = json.loads(Path(path).read_text())
        timing = SchedulerTiming(**raw.pop("timing", {}))
        return cls(timing=timing, **raw)

    @classmethod
    def new(cls, state_dir: Path, **overrides: object) -> ClusterConfig:
        return cls(state_dir=str(state_dir), secret=secrets.token_hex(32), **overrides)  # type: ignore[arg-type]
