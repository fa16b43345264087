"""LocalSuite: the whole of Shoal on this machine, as four child processes.

Used by `shoal up`, `shoal demo` and the integration tests. It writes the cluster config and
the client settings into a state directory, starts the services in dependency order, waits
until each answers its gRPC health check, and stops them all (and nothing else) again —
also when the parent exits without calling stop().
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shoal.client import Client, ClientConfig, read_client_file, write_client_file
from shoal.cluster_config import (
    ClusterConfig,
    Limits,
    ObserveConfig,
    RestConfig,
    SchedulerTiming,
    StorageConfig,
    WatchConfig,
)
from shoal.dbfiles import LOCK_FILE
from shoal.errors import ClientConfigError

# Start order: each service's peers are up before it (the gateway last, so a client that can
# connect finds everything behind it ready).
SERVICES = ("storage-stager", "job-scheduler", "pool-manager", "gateway")
# Stop order: no new calls first; the scheduler before the pool-manager so it does not see the
# agents leave as nodes lost; the stager, which everyone uses, last.
STOP_ORDER = ("gateway", "job-scheduler", "pool-manager", "storage-stager")
MODULES = {
    "storage-stager": "services.storage_stager",
    "job-scheduler": "services.job_scheduler",
    "pool-manager": "services.pool_manager",
    "gateway": "gateway",
}
# Creates the default account and gives its key (see gateway/accounts.py).
ACCOUNTS_MODULE = "gateway.accounts"
DEFAULT_ACCOUNT = "default"
HOST = "127.0.0.1"
DEFAULT_METRICS_PORT = 9451
"""The gateway's /metrics; the pool-manager, job-scheduler and storage-stager take the next
three."""
DEFAULT_DASHBOARD_PORT = 8051
DEFAULT_REST_PORT = 50056
LOG_TAIL_LINES = 20
# Every process the suite starts carries this variable, with a value unique to the suite, and
# passes it on to what it starts (agents inherit their pool-manager's environment): stop()
# finds leftovers by it even after they left the service's process group or outlived it.
SUITE_ID_ENV = "SHOAL_SUITE_ID"
# gRPC backs off a second or more after a refused connection; a starting service is probed
# while it is not listening yet, so retry quickly instead.
PROBE_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]


class SuiteError(Exception):
    """A service of the local suite failed to start or died; `log_tail` holds its last lines."""

    def __init__(self, message: str, service: str | None = None, log_tail: str = "") -> None:
        full = message
        if log_tail:
            full += f"\n--- last lines of {service}.log ---\n{log_tail}"
        super().__init__(full)
        self.service = service
        self.log_tail = log_tail
        self.summary = message


def accounts_admin(config_path: Path, command: str, *args: str, stdin: str = "") -> str:
    """Run the gateway's account admin command on a cluster file; its stdout (a key, or JSON
    lines). The gateway owns the account table: its command is run, as the services are run,
    rather than server code imported into the client package. Keys go through stdin and
    stdout, never argv. SuiteError with the command's message when it fails."""
    argv = [sys.executable, "-m", ACCOUNTS_MODULE, command, "--config", str(config_path), *args]
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        raise SuiteError(f"{ACCOUNTS_MODULE} {command} did not finish within 60s") from None
    if done.returncode != 0:
        error = done.stderr.strip()
        if f"No module named {ACCOUNTS_MODULE.split('.')[0]!r}" in error:
            raise SuiteError(
                "cannot find Shoal's gateway package; install Shoal with its services "
                "(`pip install -e .` in the repository, or `python3 dev.py demo`)"
            )
        raise SuiteError(error.splitlines()[-1] if error else f"{command} failed")
    return done.stdout.strip()


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


PORT_SLICES = 16
"""Slices of the ports below the ephemeral range that `_stable_port` picks from, by process."""

def _port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR as servers set it, so a port in TIME_WAIT from our last run counts as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a text file; empty if it does not exist."""
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip("\n")
    except FileNotFoundError:
        return ""


class LocalSuite:
    """Shoal's four services on this machine, state under `state_dir`.

    Ports of 0 are replaced by free loopback ports, the local storage backend's HTTP port
    included (`storage` defaults to the local backend under the state dir, on a free port),
    and the REST face's (`rest` defaults to 127.0.0.1:50056, or a free port when the gateway's
    port is 0). `metrics_port` is the gateway's Prometheus endpoint; the pool-manager,
    job-scheduler and storage-stager take the next three (each a free port when it is 0);
    `dashboard_port` is the gateway's web dashboard. Unset, they are 9451 and 8051, or free
    ports when the gateway's port is 0.
    `commands` maps a service name to the argv that starts it (without `--config PATH`, which
    is appended); tests use it to run stand-ins, everyone else gets `python -m <module>`.
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        gateway_port: int = 50051,
        pool_manager_port: int = 50052,
        scheduler_port: int = 50053,
        stager_port: int = 50054,
        metrics_port: int | None = None,
        dashboard_port: int | None = None,
        timing: SchedulerTiming | None = None,
        storage: StorageConfig | None = None,
        limits: Limits | None = None,
        rest: RestConfig | None = None,
        log_level: str = "info",
        commands: Mapping[str, Sequence[str]] | None = None,
        watch: WatchConfig | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.config_path = self.state_dir / "cluster.json"
        self.logs_dir = self.state_dir / "logs"
        self._ports = {
            "gateway": gateway_port,
            "pool-manager": pool_manager_port,
            "job-scheduler": scheduler_port,
            "storage-stager": stager_port,
        }
        # As the REST face's: the defaults, or free ports when the gateway's port is free.
        if metrics_port is None:
            metrics_port = DEFAULT_METRICS_PORT if gateway_port else 0
        if dashboard_port is None:
            dashboard_port = DEFAULT_DASHBOARD_PORT if gateway_port else 0
        self._observe_ports = {
            **{f"{s}-metrics": metrics_port + i if metrics_port else 0
               for i, s in enumerate(("gateway", "pool-manager", "job-scheduler",
                                      "storage-stager"))},
            "dashboard": dashboard_port,
        }
        self._timing = timing or SchedulerTiming()
        self._storage = storage or StorageConfig(http_address=f"{HOST}:0")
        self._limits = limits
        """None keeps the limits of an existing cluster file (an operator's edits)."""
        self._rest = rest or RestConfig(address=f"{HOST}:{DEFAULT_REST_PORT if gateway_port else 0}")
        self._log_level = log_level
        self._watch = watch or WatchConfig()
        unknown = set(commands or {}) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services in commands: {sorted(unknown)}")
        self._commands = {s: [sys.executable, "-m", MODULES[s]] for s in SERVICES}
        for service, argv in (commands or {}).items():
            self._commands[service] = list(argv)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._picked: set[int] = set()
        # Process groups of killed instances: whatever they left behind is swept at stop().
        self._old_groups: set[int] = set()
        self._config: ClusterConfig | None = None
        self._client_config: ClientConfig | None = None
        self._atexit_registered = False
        self._lock: int | None = None
        self.suite_id = secrets.token_hex(12)
        self.leftovers_stopped = 0
        """Processes of an earlier suite on this state dir that start() had to stop."""

    # Set-up

    @property
    def config(self) -> ClusterConfig:
        if self._config is None:
            raise SuiteError("the suite has not been started")
        return self._config

    @property
    def endpoint(self) -> str:
        """host:port of the gateway."""
        return self.config.gateway_address

    @property
    def rest_endpoint(self) -> str:
        """The URL Azure Batch's SDKs take as the endpoint (empty when the REST face is off)."""
        return self.config.rest.endpoint

    @property
    def client_config(self) -> ClientConfig:
        if self._client_config is None:
            raise SuiteError("the suite has not been started")
        return self._client_config

    def client(self, *, timeout: float = 30) -> Client:
        """A client for the `default` account."""
        cc = self.client_config
        return Client(cc.endpoint, cc.key, timeout=timeout)

    def log_path(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def log_tail(self, service: str, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self.log_path(service), lines)

    @property
    def dashboard_url(self) -> str:
        """Where the web dashboard is (empty when it is turned off)."""
        address = self.config.observe.dashboard
        return f"http://{address}/" if address else ""

    def metrics_url(self, service: str) -> str:
        """Where a service serves Prometheus' /metrics (empty when it is turned off)."""
        address = self.config.observe.metrics_address(service)
        return f"http://{address}/metrics" if address else ""

    def _address(self, service: str) -> str:
        config = self.config
        return {
            "gateway": config.gateway_address,
            "pool-manager": config.pool_manager_address,
            "job-scheduler": config.job_scheduler_address,
            "storage-stager": config.storage_stager_address,
        }[service]

    def _take_lock(self) -> None:
        # Two suites on one state dir would share SQLite files and overwrite each other's
        # client.json; the lock is released by the OS however this process ends.
        fd = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").split()
            os.close(fd)
            raise SuiteError(
                f"another Shoal (pid {holder[0] if holder else '?'}) is running with state dir "
                f"{self.state_dir}; stop it first or use another --state-dir"
            ) from None
        previous = os.read(fd, 64).decode(errors="replace").split()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.suite_id}\n".encode(), 0)
        self._lock = fd
        if len(previous) == 2:
            # The last suite here ended without stop() (its parent was SIGKILLed): its
            # services may still run, holding the ports and the databases.
            self.leftovers_stopped = terminate_all(tagged_processes(previous[1]))

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _prepare(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        self._take_lock()
        self._picked.clear()
        ports: dict[str, int] = {}
        for service, port in {**self._ports, **self._observe_ports}.items():
            if port == 0:
                port = self._stable_port(HOST)
            elif _port_in_use(port):
                raise SuiteError(
                    f"cannot start {service}: port {port} on {HOST} is in use "
                    f"(is another `shoal up` running? choose other ports)",
                    service,
                )
            ports[service] = port
        addresses = {
            "gateway_address": f"{HOST}:{ports['gateway']}",
            "pool_manager_address": f"{HOST}:{ports['pool-manager']}",
            "job_scheduler_address": f"{HOST}:{ports['job-scheduler']}",
            "storage_stager_address": f"{HOST}:{ports['storage-stager']}",
        }
        observe = ObserveConfig(**{
            f"{s.replace('-', '_')}_metrics": f"{HOST}:{ports[f'{s}-metrics']}"
            for s in ("gateway", "pool-manager", "job-scheduler", "storage-stager")
        }, dashboard=f"{HOST}:{ports['dashboard']}")
        storage = self._storage
        http_host, _, http_port = storage.http_address.rpartition(":")
        if storage.backend == "local" and http_port == "0":
            storage = replace(storage, http_address=f"{http_host}:{self._stable_port(http_host)}")
        rest = self._rest_config()
        if self.config_path.exists():
            try:
                previous = ClusterConfig.load(self.config_path)
            except (OSError, ValueError, TypeError) as e:
                raise SuiteError(f"cannot read {self.config_path}: {e}") from None
            # Keep the secret: node credentials and agents' state derive from it.
            config = replace(
                previous,
                state_dir=str(self.state_dir),
                timing=self._timing,
                storage=storage,
                limits=self._limits or previous.limits,
                rest=rest,
                observe=observe,
                log_level=self._log_level,
                watch=self._watch,
                **addresses,
            )
        else:
            config = ClusterConfig.new(
                self.state_dir, timing=self._timing, storage=storage, rest=rest,
                limits=self._limits or Limits(), observe=observe,
                log_level=self._log_level, watch=self._watch, **addresses,
            )
        config.save(self.config_path)
        self._config = config
        self._client_config = self._ensure_account(config)

    def _free_port(self, host: str) -> int:
        # The OS may hand the same free port out twice in a row: the suite's ports must differ.
        while (port := free_port(host)) in self._picked:
            pass
        self._picked.add(port)
        return port

    def _stable_port(self, host: str) -> int:
        """A free port below the ephemeral range, which no outgoing connection on this machine
        can take as its source port while the gateway restarts (a port the OS picked can be);
        the ephemeral kind if none is found."""
        low = _ephemeral_low()
        # Suites started at once by other processes (test workers, a benchmark) pick from a
        # slice of the range chosen by process id, so two of them seldom pick from the same
        # ports between one's check and its bind (seen: a dashboard port taken that way).
        base = max(1024, low - 12_000)
        width = (low - base) // PORT_SLICES
        start = base + (os.getpid() % PORT_SLICES) * width
        for n in range(50):
            port = random.randrange(start, start + width) if n < 40 else random.randrange(base, low)
            if port not in self._picked and not _port_in_use(port, host):
                self._picked.add(port)
                return port
        return self._free_port(host)

    def _rest_config(self) -> RestConfig:
        rest = self._rest
        if not rest.address:
            return rest
        host, _, port = rest.address.rpartition(":")
        bare = host.strip("[]")
        if port == "0":
            rest = replace(rest, address=f"{host}:{self._stable_port(bare)}")
        elif _port_in_use(int(port), bare):
            raise SuiteError(
                f"cannot start the REST face: port {port} on {bare} is in use "
                f"(is another `shoal up` running? choose another --rest-port)",
                "gateway",
            )
        try:
            return rest.check()
        except ValueError as e:
            raise SuiteError(str(e), "gateway") from None

    def _ensure_account(self, config: ClusterConfig) -> ClientConfig:
        try:
            saved = read_client_file(self.state_dir)
        except ClientConfigError:
            saved = None
        key = self._account_key(saved.key if saved is not None else "")
        cc = ClientConfig(config.gateway_address, key, DEFAULT_ACCOUNT)
        write_client_file(self.state_dir, cc)
        return cc

    def _account_key(self, current: str) -> str:
        try:
            return accounts_admin(self.config_path, "ensure-key", "--account", DEFAULT_ACCOUNT,
                                  stdin=current)
        except SuiteError as e:
            raise SuiteError(f"cannot set up the {DEFAULT_ACCOUNT!r} account: {e.summary}",
                             "gateway") from None

    # Processes

    def start(self, timeout: float = 30) -> LocalSuite:
        """Start all four services and wait until each is healthy; SuiteError if one is not
        (the others are stopped again)."""
        if self._procs:
            raise SuiteError("the suite is already started")
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True
        try:
            self._prepare()
            for service in SERVICES:
                self._launch(service, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, service: str, timeout: float) -> None:
        argv = [*self._commands[service], "--config", str(self.config_path)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[SUITE_ID_ENV] = self.suite_id
        with open(self.log_path(service), "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                # Its own session: a Ctrl-C in the terminal reaches `shoal up` only, which
                # then stops the services in order; and stop() can sweep the whole group.
                start_new_session=True,
            )
        self._procs[service] = proc
        self._wait_healthy(service, proc, timeout)

    def _wait_healthy(self, service: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self._address(service), options=PROBE_OPTIONS) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                code = proc.poll()
                if code is not None:
                    raise SuiteError(
                        f"{service} exited with code {code} while starting; "
                        f"see {self.log_path(service)}",
                        service,
                        self.log_tail(service),
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SuiteError(
                        f"{service} did not become healthy at {self._address(service)} within "
                        f"{timeout:g}s; see {self.log_path(service)}",
                        service,
                        self.log_tail(service),
                    )
                try:
                    reply = stub.Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=min(1, left)
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass  # not listening yet
                time.sleep(min(0.05, max(left, 0)))

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM each service in turn (SIGKILL after `timeout`), then sweep their process
        groups so nothing they started outlives them. Safe to call more than once."""
        for service in STOP_ORDER:
            proc = self._procs.pop(service, None)
            if proc is None:
                continue
            _terminate(proc, timeout)
            _kill_group(proc.pid)
        for group in self._old_groups:
            _kill_group(group)
        self._old_groups.clear()
        for pid in tagged_processes(self.suite_id):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._release_lock()
        if self._atexit_registered:
            atexit.unregister(self._stop_at_exit)
            self._atexit_registered = False

    def _stop_at_exit(self) -> None:
        self.stop(timeout=5)

    def kill(self, service: str) -> None:
        """SIGKILL one service (as a crash would); what it started is left running (until
        stop())."""
        proc = self._proc(service)
        proc.kill()
        proc.wait()
        self._old_groups.add(proc.pid)

    def restart(self, service: str, timeout: float = 30) -> None:
        """Start a service again (stopping it first if it still runs) and wait until healthy."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        proc = self._procs.pop(service, None)
        if proc is not None:
            if proc.poll() is None:
                _terminate(proc, timeout)
            self._old_groups.add(proc.pid)
        self._launch(service, timeout)

    def _proc(self, service: str) -> subprocess.Popen[bytes]:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        proc = self._procs.get(service)
        if proc is None:
            raise SuiteError(f"{service} is not started")
        return proc

    def pid(self, service: str) -> int | None:
        """Process id of a started service (even if it has died since), None if not started."""
        proc = self._procs.get(service)
        return proc.pid if proc is not None else None

    def check(self) -> list[str]:
        """Names of started services whose process has exited."""
        return [s for s in SERVICES if s in self._procs and self._procs[s].poll() is not None]

    def exit_code(self, service: str) -> int | None:
        proc = self._procs.get(service)
        return proc.poll() if proc is not None else None

    def __enter__(self) -> LocalSuite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _kill_group(pgid: int) -> None:
    # The group is the service's own session (start_new_session); after its leader has
    # exited, anything left in it is a straggler it started.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def terminate_all(pids: list[int], timeout: float = 10) -> int:
    """SIGTERM the processes, SIGKILL those still there after `timeout`; return how many."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return len(pids)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def tagged_processes(suite_id: str) -> list[int]:
    """Pids of this user's processes whose environment carries the suite's id."""
    marker = f"{SUITE_ID_ENV}={suite_id}".encode()
    me, uid = os.getpid(), os.getuid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found
