"""The cluster's configuration: one JSON file that every service process reads.

`shoal up` writes it into the state directory; on real deployments an operator writes it
(see deploy/). Frozen dataclasses, so a value can't change under a running service.

It lives in the client package because `shoal up` (shoal/suite.py) writes it and the client
must not import the services; the services read it from here, as they take the generated
stubs from here. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
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
    min_recurrence_interval: float = 60.0
    """Shortest recurrence interval a job schedule may have, in seconds (Azure Batch's is 1
    minute); tests set it lower."""
    staging_outage_timeout: float = 300.0
    """Seconds a node waits out a storage outage (the storage-stager down, the object store
    unreachable or answering 5xx) while staging a task's files — before its process, or
    after it with its outputs kept on the node — retrying with backoff, before the task fails
    (RESOURCE_FILE_DOWNLOAD_FAILED or OUTPUT_FILE_UPLOAD_FAILED, saying so). The scheduler
    tells each agent in its Welcome."""

    node_min_free_bytes: int = 1 << 30
    """A node whose root has less free space than this (its heartbeats say) takes no new
    tasks until space is back; it is shown UNUSABLE with a DISK_FULL error."""

    def check(self) -> SchedulerTiming:
        """Return self if the settings are usable; ValueError naming the setting if not."""
        if not self.staging_outage_timeout > 0:
            raise ValueError(
                f"timing.staging_outage_timeout must be a positive number of seconds, "
                f"got {self.staging_outage_timeout!r}")
        if not self.node_min_free_bytes >= 0:
            raise ValueError(
                f"timing.node_min_free_bytes must be a number of bytes (0: no floor), "
                f"got {self.node_min_free_bytes!r}")
        return self


@dataclass(frozen=True)
class Limits:
    """Quotas per account and limits per service. A call that would go past one is refused
    with RESOURCE_EXHAUSTED, an ErrorInfo reason naming the limit and metadata with the limit
    and the current use, and changes nothing. Azure Batch raises its quotas on a support
    request; Shoal's are raised here, in the cluster file, and read when a service starts."""

    pools_per_account: int = 100
    """Pools an account may have (Azure's default pool quota is 100)."""
    nodes_per_account: int = 1000
    """Target nodes summed over an account's pools that are not being deleted (Azure counts
    dedicated cores, by VM family; Shoal's local nodes have no size, so it counts nodes)."""
    nodes_per_pool: int = 1000
    """Target nodes of one pool; at most 1000, the ceiling of ResizePool's `target_nodes`."""
    active_tasks_per_account: int = 10_000_000
    """Tasks not yet completed (active, preparing or running) over all of an account's jobs.
    Azure has no such quota, only 100,000 tasks per AddTaskCollection; it is here so that one
    account cannot fill the scheduler's memory and disk."""
    calls_per_account: int = 64
    """Unary calls one account may have in progress at the gateway at once; one more is
    refused at once rather than queued."""
    streams_per_account: int = 32
    """Streaming calls (uploads, downloads, follows) one account may have open at once."""
    forwarded_calls_per_account: int = 4
    """Unary calls of one account the gateway has in progress at any one service at once; the
    account's further calls (up to calls_per_account) wait at the gateway, in order."""
    forwarded_calls_per_service: int = 32
    """Unary calls of all accounts together the gateway has in progress at any one service;
    when places free, the accounts with calls waiting take them in turn, one call each."""
    rpcs_per_service: int = 10_000
    """Calls each service process serves at once (grpc's maximum_concurrent_rpcs); beyond it
    grpc answers RESOURCE_EXHAUSTED itself. Every node's agent stream is one call at the
    job-scheduler, so this must exceed the nodes of all accounts together."""
    idle_connection_seconds: float = 300.0
    """A client connection with no call in progress for this long is closed (grpc's
    max_connection_idle_ms); clients reconnect on their next call."""

    def check(self) -> Limits:
        """Return self if every limit is positive; ValueError naming the setting if not."""
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"limits.{name} must be positive, got {value!r}")
        if self.nodes_per_pool > 1000:
            raise ValueError("limits.nodes_per_pool must be at most 1000 (a pool's largest target)")
        return self


@dataclass(frozen=True)
class WatchConfig:
    """The watch API (WatchJob, WatchNodes): how much history a service keeps for clients
    that resume, and how often an idle stream says it is alive."""

    history: int = 100_000
    """Changes kept per account (per service; up to 1/16 more, as the oldest are dropped in
    chunks): a client may resume from a revision at least this many changes old; an older
    one is answered OUT_OF_RANGE (REVISION_COMPACTED)."""
    progress_interval: float = 5.0
    """Seconds an idle watch stream waits before it sends a progress message (no changes,
    the current revision), so a client knows the stream is alive."""
    summary_interval: float = 0.5
    """Seconds between two messages of a WatchJob stream with `job_summary`: the job's
    latest state at most this often, however fast it changes."""

    def check(self) -> WatchConfig:
        """Return self if the settings are usable; ValueError naming the setting if not."""
        if self.history < 1:
            raise ValueError("watch.history must be at least 1")
        if self.progress_interval <= 0:
            raise ValueError("watch.progress_interval must be positive")
        if self.summary_interval < 0:
            raise ValueError("watch.summary_interval must not be negative")
        return self


STORAGE_BACKENDS = ("local", "s3")


@dataclass(frozen=True)
class StorageConfig:
    """Where the storage-stager keeps objects. Secrets are left out of repr() so that a
    logged config never shows them."""

    backend: str = "local"
    """Either "local" (a directory on the stager's host) or "s3" (AWS S3 or S3-compatible)."""
    local_root: str = ""
    """local: the directory of the blobs; empty means `{state_dir}/storage`."""
    http_address: str = "127.0.0.1:50055"
    """local: host:port the stager's HTTP server listens on for signed URLs. Port 0 is refused
    when the file is loaded (agents must know the port); LocalSuite picks a free one."""
    public_url: str = ""
    """local: base URL agents use to reach that server; empty means `http://{http_address}`."""
    endpoint_url: str = ""
    """s3: the endpoint, e.g. http://minio:9000; empty means AWS S3."""
    region: str = ""
    """s3: the region; empty leaves it to the standard AWS configuration (else us-east-1)."""
    access_key_id: str = field(default="", repr=False)
    """s3: empty means the standard AWS credential chain (environment, profile, instance role)."""
    secret_access_key: str = field(default="", repr=False)
    bucket: str = ""
    """s3: the bucket; created at start if missing and allowed."""
    prefix: str = ""
    """s3: a key prefix inside the bucket, to share one bucket with other users."""
    url_ttl_seconds: int = 900
    """How long a staging URL (presigned or signed) stays valid."""

    def check(self) -> StorageConfig:
        """Return self if the settings are usable; ValueError naming the setting if not."""
        if self.backend not in STORAGE_BACKENDS:
            raise ValueError(f"storage.backend must be one of {STORAGE_BACKENDS}, got {self.backend!r}")
        if self.url_ttl_seconds <= 0:
            raise ValueError("storage.url_ttl_seconds must be positive")
        if self.backend == "s3" and not self.bucket:
            raise ValueError("storage.bucket is required for the s3 backend")
        if self.backend == "local":
            check_address(self.http_address, "storage.http_address")
        return self

    def root(self, state_dir: str) -> Path:
        return Path(self.local_root or Path(state_dir) / "storage")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.http_address}").rstrip("/")


@dataclass(frozen=True)
class ObserveConfig:
    """Where operators and people look at the cluster: each service's Prometheus endpoint
    and the gateway's web dashboard. Loopback by default: metrics name accounts, pools and
    jobs, and the dashboard speaks plain HTTP (put a TLS proxy in front to open it to a
    network: the dashboard takes only a loopback address). An empty address turns that
    endpoint off; port 0 is refused when the file is loaded (Prometheus must know where to
    scrape); LocalSuite picks free ports."""

    gateway_metrics: str = "127.0.0.1:9451"
    """host:port of the gateway's /metrics."""
    pool_manager_metrics: str = "127.0.0.1:9452"
    job_scheduler_metrics: str = "127.0.0.1:9453"
    storage_stager_metrics: str = "127.0.0.1:9454"
    dashboard: str = "127.0.0.1:8051"
    """host:port of the web dashboard, served by the gateway behind the account key."""

    def metrics_address(self, service: str) -> str:
        """The /metrics address of a service by its name (`job-scheduler`)."""
        return str(getattr(self, service.replace("-", "_") + "_metrics"))

    def check(self) -> ObserveConfig:
        """Return self if every address is usable; ValueError naming the setting if not."""
        for name in ("gateway_metrics", "pool_manager_metrics", "job_scheduler_metrics",
                     "storage_stager_metrics", "dashboard"):
            if getattr(self, name):
                check_address(getattr(self, name), f"observe.{name}")
        if self.dashboard and not is_loopback(_host_port(self.dashboard, "")[0]):
            # Signing in sends the account key: over plain HTTP on a network it could be read.
            raise ValueError(
                f"observe.dashboard {self.dashboard!r} is not a loopback address: the dashboard "
                "speaks plain HTTP; open it to a network through a TLS-terminating proxy on "
                "this host")
        return self


def check_address(value: str, setting: str) -> None:
    """ValueError naming the setting unless `value` is host:port with a port from 1 to
    65535 (0 is refused: clients must know where to connect)."""
    if _host_port(value, setting)[1] == 0:
        raise ValueError(f"{setting} must be host:port with a port from 1 to 65535, "
                         f"got {value!r}")

def _host_port(address: str, setting: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{setting} must be host:port with a port from 1 to 65535, "
                         f"got {address!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RestConfig:
    """The Azure Batch REST face, served by the gateway process on a port of its own."""

    address: str = "127.0.0.1:50056"
    """host:port it listens on; empty turns the REST face off. LocalSuite replaces port 0 with
    a free port."""
    tls_cert_file: str = ""
    """PEM certificate (chain) for HTTPS; with `tls_key_file`. Both empty: plain HTTP, which is
    allowed on a loopback address only."""
    tls_key_file: str = ""
    """PEM private key of `tls_cert_file`."""

    def check(self) -> RestConfig:
        """Return self if the settings are usable; ValueError naming the setting if not."""
        if not self.address:
            return self
        host, _ = _host_port(self.address, "rest.address")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("rest.tls_cert_file and rest.tls_key_file go together: set both or neither")
        if not self.tls and not is_loopback(host):
            # Shared Key signs requests but does not hide them: jobs, command lines and task
            # output would cross the network readable (and replayable for 15 minutes).
            raise ValueError(
                f"rest.address {self.address!r} is not a loopback address: serving the REST "
                "face beyond this host needs HTTPS (set rest.tls_cert_file and rest.tls_key_file)"
            )
        return self

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)

    @property
    def endpoint(self) -> str:
        """The URL clients give Azure's SDKs, e.g. http://127.0.0.1:50056."""
        return f"{'https' if self.tls else 'http'}://{self.address}" if self.address else ""


@dataclass(frozen=True)
class ClusterConfig:
    state_dir: str
    """SQLite files, logs and the local nodes' roots live under here."""
    secret: str = field(repr=False)
    """Hex secret shared by the services: derives the service token and signs node credentials."""
    gateway_address: str = "127.0.0.1:50051"
    pool_manager_address: str = "127.0.0.1:50052"
    job_scheduler_address: str = "127.0.0.1:50053"
    storage_stager_address: str = "127.0.0.1:50054"
    timing: SchedulerTiming = field(default_factory=SchedulerTiming)
    storage: StorageConfig = field(default_factory=StorageConfig)
    limits: Limits = field(default_factory=Limits)
    rest: RestConfig = field(default_factory=RestConfig)
    observe: ObserveConfig = field(default_factory=ObserveConfig)
    log_level: str = "info"
    watch: WatchConfig = field(default_factory=WatchConfig)

    @property
    def service_token(self) -> str:
        """Token the services present to each other; clients never see it."""
        return hmac.new(bytes.fromhex(self.secret), b"service-token", hashlib.sha256).hexdigest()

    def db_path(self, service: str) -> Path:
        return Path(self.state_dir) / f"{service}.db"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> ClusterConfig:
        raw = json.loads(Path(path).read_text())
        timing = SchedulerTiming(**raw.pop("timing", {})).check()
        storage = StorageConfig(**raw.pop("storage", {})).check()
        limits = Limits(**raw.pop("limits", {})).check()
        rest = RestConfig(**raw.pop("rest", {})).check()
        watch = WatchConfig(**raw.pop("watch", {})).check()
        observe = ObserveConfig(**raw.pop("observe", {})).check()
        return cls(timing=timing, storage=storage, limits=limits, rest=rest, watch=watch, observe=observe,
                   **raw)

    @classmethod
    def new(cls, state_dir: Path, **overrides: object) -> ClusterConfig:
        return cls(state_dir=str(state_dir), secret=secrets.token_hex(32), **overrides)  # type: ignore[arg-type]
