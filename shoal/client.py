"""A small typed, synchronous Python client for Shoal.

    from shoal import Client
    client = Client.discover()          # SHOAL_ENDPOINT/SHOAL_ACCOUNT_KEY, else ./.shoal/client.json
    client.create_pool("p1", target_nodes=2)
    client.create_job("j1", pool_id="p1", on_all_tasks_complete="terminate_job")
    client.add_tasks("j1", [{"id": f"t{i}", "command_line": f"echo {i}"} for i in range(100)])
    job = client.wait_job("j1")

Callers pass ids; the client builds resource names. Every failure is a `ShoalError`. Methods
return the protobuf messages of `shoal.v1` (typed by the generated .pyi stubs). `watch_job`
and `watch_nodes` follow changes as they happen (shoal/watch.py), and the `wait_*` methods
are built on them: nothing polls. Storage and
application-package methods (`upload_object`, `download_object`, ...) live in shoal/storage.py,
job schedule methods in shoal/job_schedules.py; `TaskSpec` in shoal/task_specs.py (both add
tasks); the typed resource file / output file / package helpers in shoal/specs.py.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shoal import profiles
from shoal.enums import enum_name
from shoal.errors import ClientConfigError, ShoalError, StatusCode, WaitTimeoutError
from shoal.job_schedules import JobScheduleMethods
from shoal.listing import MAX_PAGE, Listing
from shoal.specs import (
    NodeCommand,
    OutputFileLike,
    PackageLike,
    ResourceFileLike,
    SpecError,
    package_proto,
    spec_protos,
)
from shoal.storage import StorageMethods
from shoal.task_options import DependencyLike, ExitConditions, duration_proto
from shoal.task_specs import TaskSpec, create_task_request
from shoal.v1 import (
    application_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    pool_pb2,
    pool_pb2_grpc,
    storage_pb2_grpc,
    task_pb2,
    task_pb2_grpc,
)
from shoal.watch import WatchStream

SERVICES_BEHIND_GATEWAY = ("pool-manager", "job-scheduler", "storage-stager")
ACCOUNT_HEADER = "x-shoal-account"
"""Initial metadata of every answer of the gateway: the caller's account."""
ENV_ENDPOINT = "SHOAL_ENDPOINT"
ENV_KEY = "SHOAL_ACCOUNT_KEY"
ENV_STATE_DIR = "SHOAL_STATE_DIR"
DEFAULT_STATE_DIR = ".shoal"
CLIENT_FILE = "client.json"

# Large enough for a 100,000-task BatchCreateTasks call (the servers accept the same).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]

T = TypeVar("T")
JobEvent = job_pb2.JobEvent


def default_state_dir() -> Path:
    """$SHOAL_STATE_DIR, else ./.shoal — where `shoal up` keeps its state."""
    return Path(os.environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR)


@dataclass(frozen=True)
class ClientConfig:
    endpoint: str
    """host:port of the gateway."""
    key: str
    """The account key sent as `authorization: Bearer <key>`."""
    account: str = ""
    """The account's name, when known (informational)."""
    source: str = ""
    """Where these settings were found, for people."""


def read_client_file(state_dir: Path) -> ClientConfig | None:
    """The client settings `shoal up` wrote into `state_dir`, or None if there are none."""
    path = Path(state_dir) / CLIENT_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ClientConfigError(f"cannot read {path}: {e}") from None
    if not isinstance(raw, dict) or not raw.get("endpoint") or not raw.get("key"):
        raise ClientConfigError(f"{path} lacks 'endpoint' or 'key'; run `shoal up` to rewrite it")
    return ClientConfig(str(raw["endpoint"]), str(raw["key"]), str(raw.get("account", "")),
                        str(path))


def write_client_file(state_dir: Path, config: ClientConfig) -> Path:
    """Write client.json readable by its owner only: it holds the account key."""
    path = Path(state_dir) / CLIENT_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"endpoint": config.endpoint, "account": config.account, "key": config.key}, f)
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def resolve_config(
    state_dir: Path | str | None = None,
    *,
    endpoint: str | None = None,
    key: str | None = None,
    profile: str | None = None,
) -> ClientConfig:
    """Find the endpoint and key, each from the first of:

    1. the arguments;
    2. $SHOAL_ENDPOINT and $SHOAL_ACCOUNT_KEY;
    3. the profile named by `profile` or $SHOAL_PROFILE, in the config file (shoal.profiles);
    4. `<state_dir>/client.json`, state_dir from the argument or $SHOAL_STATE_DIR;
    5. ./.shoal/client.json, when there is one (a `shoal up` in this directory);
    6. the config file's default profile.

    `source` of the result says where they came from. ClientConfigError when nothing is found.
    """
    endpoint = endpoint or os.environ.get(ENV_ENDPOINT) or ""
    key = key or os.environ.get(ENV_KEY) or ""
    sources = ["--endpoint/--key or $" + ENV_ENDPOINT + "/$" + ENV_KEY] if endpoint or key else []
    account = ""
    if not (endpoint and key):
        for found in _config_sources(state_dir, profile):
            if found is None:
                continue
            endpoint = endpoint or found.endpoint
            key = key or found.key
            account = found.account
            sources.append(found.source)
            if endpoint and key:
                break
    if not endpoint or not key:
        missing = " and ".join(w for w, v in (("endpoint", endpoint), ("account key", key)) if not v)
        raise ClientConfigError(
            f"no Shoal to talk to: no {missing} (from --endpoint/--key, ${ENV_ENDPOINT}/"
            f"${ENV_KEY}, a profile of {profiles.config_path()} or ./{DEFAULT_STATE_DIR}/"
            f"{CLIENT_FILE}); start Shoal with `shoal up`, or add a profile with "
            f"`shoal profile set`"
        )
    return ClientConfig(endpoint, key, account, "; ".join(sources))


def _config_sources(
    state_dir: Path | str | None, profile: str | None
) -> Iterator[ClientConfig | None]:
    """What steps 3 to 6 of resolve_config find, each read only when it is needed."""
    named = profile or os.environ.get(profiles.ENV_PROFILE)
    if named:
        yield _from_profile(profiles.read_profiles().get(named))
    directory = state_dir if state_dir is not None else os.environ.get(ENV_STATE_DIR) or None
    if directory is not None:
        saved = read_client_file(Path(directory))
        if saved is None and not named:
            raise ClientConfigError(
                f"no Shoal to talk to: no {Path(directory) / CLIENT_FILE}; start Shoal with "
                f"`shoal up` (or point --state-dir at the directory it uses)")
        yield saved
    if not named and directory is None:
        yield read_client_file(Path(DEFAULT_STATE_DIR))
        config = profiles.read_profiles()
        if config.default:
            yield _from_profile(config.get(config.default))


def _from_profile(p: profiles.Profile) -> ClientConfig:
    where = f"profile {p.name!r} of {profiles.config_path()}"
    if p.state_dir:
        saved = read_client_file(Path(p.state_dir))
        if saved is None:
            raise ClientConfigError(
                f"{where}: no {Path(p.state_dir) / CLIENT_FILE}; is its `shoal up` gone?")
        return ClientConfig(p.endpoint or saved.endpoint, p.key or saved.key,
                            p.account or saved.account, f"{where} ({saved.source})")
    return ClientConfig(p.endpoint, p.key, p.account, where)


def pool_name(pool_id: str) -> str:
    return f"pools/{pool_id}"


def node_name(pool_id: str, node_id: str) -> str:
    return f"pools/{pool_id}/nodes/{node_id}"


def job_name(job_id: str) -> str:
    return f"jobs/{job_id}"


def task_name(job_id: str, task_id: str) -> str:
    return f"jobs/{job_id}/tasks/{task_id}"


def last_segment(name: str) -> str:
    """The id at the end of a resource name: `pools/p/nodes/n` -> `n`."""
    return name.rsplit("/", 1)[-1]


def state_filter(states: str | int | Sequence[str | int] | None, enum: Any) -> str:
    """`state = A OR state = B` for the List calls' filter; empty for all states."""
    if states is None:
        return ""
    items = [states] if isinstance(states, str | int) else list(states)
    names = [enum_name(enum, s, "state") for s in items]
    return " OR ".join(f"state = {n}" for n in names)


TASK_RESULTS = {"SUCCEEDED": "result = SUCCESS", "FAILED": "result = FAILURE"}
"""What people call states and the API calls results (az batch: executionInfo/result)."""
_COMPARISON = re.compile(r"\s*(<=|>=|!=|=|<|>)?\s*(-?\d+)\s*")


def task_filter(
    state: str | int | Sequence[str | int] | None = None,
    node: str | None = None,
    exit_code: int | str | None = None,
    filter: str = "",
) -> str:
    """ListTasks' filter for `Client.list_tasks`' arguments (each narrows the others)."""
    parts = [filter.strip()] if filter.strip() else []
    if state is not None:
        items = [state] if isinstance(state, str | int) else list(state)
        terms = []
        for item in items:
            if isinstance(item, str) and item.upper() in TASK_RESULTS:
                terms.append(TASK_RESULTS[item.upper()])
            else:
                terms.append(f"state = {enum_name(task_pb2.Task.State, item, 'state')}")
        if terms:
            parts.append(" OR ".join(dict.fromkeys(terms)))
    if node is not None:
        if not node or '"' in node or "\\" in node:
            raise _invalid("node", f"{node!r} is not a node id or name")
        parts.append(f'node = "{node}"')
    if exit_code is not None:
        try:
            op, number = comparison(exit_code)
        except ValueError as e:
            raise _invalid("exit_code", str(e)) from None
        parts.append(f"exit_code {op} {number}")
    return " AND ".join(parts)


def comparison(value: int | str) -> tuple[str, int]:
    """3, "3", "!=0", ">1", "<= 2" as (operator, number); ValueError for anything else."""
    m = _COMPARISON.fullmatch(str(value))
    if m is None:
        raise ValueError(f"{value!r} is not a number or a comparison such as !=0 or >1")
    return m.group(1) or "=", int(m.group(2))


def _deallocation(value: str | int, field: str) -> str:
    """A NodeDeallocationOption by name ("requeue", "terminate", "taskcompletion") or number."""
    return enum_name(pool_pb2.NodeDeallocationOption, value, field,
                      {"TASKCOMPLETION": "TASK_COMPLETION"})


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _left(deadline: float | None) -> float | None:
    """Seconds to a deadline, at least a moment (the watch then raises DEADLINE_EXCEEDED)."""
    return None if deadline is None else max(0.001, deadline - time.monotonic())


def _job_done(job: job_pb2.Job) -> bool:
    c = job.task_counts
    return job.state == job_pb2.Job.COMPLETED or (c.active == 0 and c.running == 0)
_COMPLETION_ALIASES = {"TERMINATE": "TERMINATE_JOB", "TERMINATEJOB": "TERMINATE_JOB",
                       "NOACTION": "NO_ACTION"}
"""OnAllTasksComplete by the names people use: ours, and az batch's (noaction, terminatejob)."""


def _node_setup(
    pool: pool_pb2.Pool, start_task: NodeCommand | None, packages: Sequence[PackageLike]
) -> None:
    """Fill what a pool's nodes set up when they join: its start task and packages."""
    try:
        if start_task is not None:
            pool.start_task.CopyFrom(start_task.start_task())
        pool.application_package_references.extend(
            spec_protos(packages, package_proto, "pool.application_package_references"))
    except SpecError as e:
        raise _invalid(e.field, e.why) from None


def _invalid(field: str, message: str) -> ShoalError:
    return ShoalError(
        StatusCode.INVALID_ARGUMENT, f"{field}: {message}", reason="INVALID_ARGUMENT", field=field
    )


class Client(StorageMethods, JobScheduleMethods):
    """A connection to Shoal's gateway, authenticated as one account."""

    def __init__(self, endpoint: str, key: str, *, timeout: float = 30) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {key}"),)
        self._channel = grpc.insecure_channel(endpoint, options=CHANNEL_OPTIONS)
        self._pools = pool_pb2_grpc.PoolServiceStub(self._channel)
        self._jobs = job_pb2_grpc.JobServiceStub(self._channel)
        self._tasks = task_pb2_grpc.TaskServiceStub(self._channel)
        self._storage = storage_pb2_grpc.StorageServiceStub(self._channel)
        self._apps = application_pb2_grpc.ApplicationServiceStub(self._channel)

    @classmethod
    def from_env(cls, *, timeout: float = 30) -> Client:
        """Same as `discover()`: the environment first, then ./.shoal/client.json."""
        return cls.discover(timeout=timeout)

    @classmethod
    def discover(
        cls,
        state_dir: Path | str | None = None,
        *,
        endpoint: str | None = None,
        key: str | None = None,
        profile: str | None = None,
        timeout: float = 30,
    ) -> Client:
        """Connect as `resolve_config` finds; ClientConfigError when nothing is found."""
        config = resolve_config(state_dir, endpoint=endpoint, key=key, profile=profile)
        return cls(config.endpoint, config.key, timeout=timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.endpoint!r})"

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None = None) -> T:
        try:
            return method(request, metadata=self._metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise ShoalError.from_rpc_error(e) from None

    def _pages(
        self, method: Callable[..., Any], request: Any, items: str, max_page: int = MAX_PAGE
    ) -> Listing[Any]:
        return Listing(lambda r: self._call(method, r), request, items, max_page)

    # The service

    def health(self) -> dict[str, str]:
        """How the gateway and each service behind it are: "SERVING", "NOT_SERVING", or
        "UNKNOWN" when the gateway does not know the name. ShoalError when the gateway cannot
        be reached. Needs no valid key."""
        stub = health_pb2_grpc.HealthStub(self._channel)
        out = {}
        for name in ("gateway", *SERVICES_BEHIND_GATEWAY):
            request = health_pb2.HealthCheckRequest(service="" if name == "gateway" else name)
            try:
                reply = stub.Check(request, timeout=self.timeout)
                out[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as e:
                if isinstance(e, grpc.Call) and e.code() == grpc.StatusCode.NOT_FOUND:
                    out[name] = "UNKNOWN"
                else:
                    raise ShoalError.from_rpc_error(e) from None
        return out

    def account(self) -> str:
        """The name of the account the key belongs to (the gateway says it with every answer)."""
        request = pool_pb2.ListPoolsRequest(page_size=1)
        try:
            _, call = self._pools.ListPools.with_call(
                request, metadata=self._metadata, timeout=self.timeout)
        except grpc.RpcError as e:
            raise ShoalError.from_rpc_error(e) from None
        return dict(call.initial_metadata() or ()).get(ACCOUNT_HEADER, "")

    # Pools and nodes

    def create_pool(
        self,
        pool_id: str,
        *,
        target_nodes: int,
        task_slots_per_node: int = 1,
        display_name: str = "",
        metadata: Mapping[str, str] | None = None,
        application_package_references: Sequence[PackageLike] = (),
        start_task: NodeCommand | None = None,
        node_fill_type: str | int | None = None,
    ) -> pool_pb2.Pool:
        """`application_package_references`: PackageReference, "APP[:VERSION]" or the proto;
        every node installs them when it joins, then runs `start_task`. `node_fill_type`:
        "spread" (the default: each task to the node with the most free slots) or "pack"
        (fill one node's slots before using the next)."""
        pool = pool_pb2.Pool(
            target_nodes=target_nodes,
            task_slots_per_node=task_slots_per_node,
            display_name=display_name,
            metadata=dict(metadata or {}),
        )
        if node_fill_type is not None:
            pool.node_fill_type = enum_name(  # type: ignore[assignment]
                pool_pb2.NodeFillType, node_fill_type, "pool.node_fill_type")
        _node_setup(pool, start_task, application_package_references)
        return self._call(
            self._pools.CreatePool, pool_pb2.CreatePoolRequest(pool_id=pool_id, pool=pool)
        )

    def update_pool(
        self,
        pool_id: str,
        *,
        start_task: NodeCommand | None = None,
        clear_start_task: bool = False,
        application_package_references: Sequence[PackageLike] | None = None,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> pool_pb2.Pool:
        """Change some of a pool's settings; the others stay as they are (Azure Batch's Pool -
        Patch). Only the arguments given change: `start_task` (or `clear_start_task` to
        remove it), `application_package_references` (the whole list; [] removes them all),
        `metadata` (the whole map). As in Azure Batch, a new start task or package list
        reaches nodes as they join the pool or are rebooted (reboot_node), not the nodes
        running now.

        With `if_match` (a pool's `etag`, as read), the update is made only if the pool has
        not changed since: otherwise a ShoalError with reason CONDITION_NOT_MET, and nothing
        changes. Returns the pool as updated, with its new etag.
        """
        if start_task is not None and clear_start_task:
            raise _invalid("pool.start_task", "give a start task or clear it, not both")
        pool = pool_pb2.Pool(metadata=dict(metadata or {}))
        _node_setup(pool, start_task, application_package_references or ())
        paths = [path for path, given in (
            ("start_task", start_task is not None or clear_start_task),
            ("application_package_references", application_package_references is not None),
            ("metadata", metadata is not None),
        ) if given]
        if not paths:
            raise _invalid("update_mask", "give at least one setting to change")
        request = pool_pb2.UpdatePoolRequest(
            name=pool_name(pool_id), pool=pool, update_mask=field_mask_pb2.FieldMask(paths=paths),
            if_match=if_match or "")
        return self._call(self._pools.UpdatePool, request)

    def get_pool(self, pool_id: str) -> pool_pb2.Pool:
        return self._call(self._pools.GetPool, pool_pb2.GetPoolRequest(name=pool_name(pool_id)))

    def list_pools(
        self, *, filter: str = "", page_size: int = 0, page_token: str = ""
    ) -> Listing[pool_pb2.Pool]:
        """Pools by id: iterate for all, or `.page(n)` for n and the token that continues."""
        request = pool_pb2.ListPoolsRequest(
            filter=filter, page_size=page_size, page_token=page_token)
        return self._pages(self._pools.ListPools, request, "pools")

    def resize_pool(
        self, pool_id: str, target_nodes: int, *, node_deallocation_option: str | int = "requeue"
    ) -> pool_pb2.Pool:
        option = enum_name(
            pool_pb2.NodeDeallocationOption,
            node_deallocation_option,
            "node_deallocation_option",
            {"TASKCOMPLETION": "TASK_COMPLETION"},
        )
        request = pool_pb2.ResizePoolRequest(
            name=pool_name(pool_id), target_nodes=target_nodes, node_deallocation_option=option
        )
        return self._call(self._pools.ResizePool, request)

    def delete_pool(self, pool_id: str) -> None:
        self._call(self._pools.DeletePool, pool_pb2.DeletePoolRequest(name=pool_name(pool_id)))

    def list_nodes(
        self, pool_id: str, *, filter: str = "", page_size: int = 0, page_token: str = ""
    ) -> Listing[pool_pb2.Node]:
        request = pool_pb2.ListNodesRequest(
            parent=pool_name(pool_id), filter=filter, page_size=page_size, page_token=page_token
        )
        return self._pages(self._pools.ListNodes, request, "nodes")

    def get_node(self, pool_id: str, node_id: str) -> pool_pb2.Node:
        request = pool_pb2.GetNodeRequest(name=node_name(pool_id, node_id))
        return self._call(self._pools.GetNode, request)

    def disable_node_scheduling(
        self, pool_id: str, node_id: str, option: str | int = "requeue"
    ) -> pool_pb2.Node:
        """The node takes no new task until enable_node_scheduling. Its running tasks are
        requeued ("requeue", the default; not a retry), terminated ("terminate": they fail
        with NODE_SCHEDULING_DISABLED) or let finish ("taskcompletion")."""
        request = pool_pb2.DisableNodeSchedulingRequest(
            name=node_name(pool_id, node_id),
            node_disable_scheduling_option=_deallocation(option, "node_disable_scheduling_option"),
        )
        return self._call(self._pools.DisableNodeScheduling, request)

    def enable_node_scheduling(self, pool_id: str, node_id: str) -> pool_pb2.Node:
        """Let a node whose scheduling was disabled take tasks again."""
        request = pool_pb2.EnableNodeSchedulingRequest(name=node_name(pool_id, node_id))
        return self._call(self._pools.EnableNodeScheduling, request)

    def reboot_node(self, pool_id: str, node_id: str) -> pool_pb2.Node:
        """Restart the node's agent. Its running tasks are requeued (not a retry) and its
        start task runs again; the node is STARTING until the agent is back."""
        request = pool_pb2.RebootNodeRequest(name=node_name(pool_id, node_id))
        return self._call(self._pools.RebootNode, request)

    def remove_nodes(
        self,
        pool_id: str,
        node_ids: Sequence[str],
        *,
        node_deallocation_option: str | int = "requeue",
    ) -> pool_pb2.Pool:
        """Remove exactly these nodes (1 to 100 ids) and lower the pool's target by as many.
        Their running tasks are requeued, terminated or let finish as the option says."""
        request = pool_pb2.RemoveNodesRequest(
            parent=pool_name(pool_id),
            # One id given as a string means that node, not its characters.
            node_ids=[node_ids] if isinstance(node_ids, str) else list(node_ids),
            node_deallocation_option=_deallocation(
                node_deallocation_option, "node_deallocation_option"),
        )
        return self._call(self._pools.RemoveNodes, request)

    # Jobs

    def create_job(
        self,
        job_id: str,
        *,
        pool_id: str,
        priority: int = 0,
        on_all_tasks_complete: str | int = "no_action",
        display_name: str = "",
        metadata: Mapping[str, str] | None = None,
        job_preparation_task: NodeCommand | None = None,
        job_release_task: NodeCommand | None = None,
        uses_task_dependencies: bool = False,
        max_parallel_tasks: int = 0,
        max_wall_clock_time: float | None = None,
        max_task_retry_count: int = 0,
        on_task_failure: str | int | None = None,
    ) -> job_pb2.Job:
        """`job_preparation_task` runs on each node before the job's first task there;
        `job_release_task` on each node that ran the job, when the job ends.

        `uses_task_dependencies` lets its tasks depend on each other; `max_parallel_tasks`
        bounds how many run at once (0: no limit); `max_wall_clock_time` (seconds) terminates
        the job when it has existed that long; `max_task_retry_count` is the retries of tasks
        that set none; `on_task_failure`: "no_action" (the default) or
        "perform_exit_options_job_action" (a failed task's exit conditions act on the job).
        """
        completion = enum_name(
            job_pb2.OnAllTasksComplete,
            on_all_tasks_complete,
            "on_all_tasks_complete",
            _COMPLETION_ALIASES,
        )
        job = job_pb2.Job(
            pool=pool_name(pool_id),
            priority=priority,
            on_all_tasks_complete=completion,
            display_name=display_name,
            metadata=dict(metadata or {}),
            uses_task_dependencies=uses_task_dependencies,
            max_parallel_tasks=max_parallel_tasks,
            constraints=job_pb2.JobConstraints(
                max_wall_clock_time=duration_proto(max_wall_clock_time),
                max_task_retry_count=max_task_retry_count,
            ),
        )
        if on_task_failure is not None:
            job.on_task_failure = enum_name(  # type: ignore[assignment]
                job_pb2.OnTaskFailure,
                on_task_failure,
                "job.on_task_failure",
                {"NO_ACTION": "NO_ACTION_ON_FAILURE",
                 "PERFORM_EXIT_OPTIONS": "PERFORM_EXIT_OPTIONS_JOB_ACTION"},
            )
        try:
            if job_preparation_task is not None:
                job.job_preparation_task.CopyFrom(job_preparation_task.job_preparation_task())
            if job_release_task is not None:
                job.job_release_task.CopyFrom(job_release_task.job_release_task())
        except SpecError as e:
            raise _invalid(e.field, e.why) from None
        return self._call(self._jobs.CreateJob, job_pb2.CreateJobRequest(job_id=job_id, job=job))

    def update_job(
        self,
        job_id: str,
        *,
        priority: int | None = None,
        on_all_tasks_complete: str | int | None = None,
        max_parallel_tasks: int | None = None,
        max_wall_clock_time: float | None = None,
        max_task_retry_count: int | None = None,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> job_pb2.Job:
        """Change some of a job's settings; the others stay as they are (Azure Batch's Job -
        Patch). Only the arguments given (not None) change: `max_parallel_tasks=0` and
        `max_wall_clock_time=0` remove the limit, `metadata` replaces the whole map, and
        `on_all_tasks_complete` cannot go back from "terminate_job" to "no_action".

        With `if_match` (a job's `etag`, as read), the update is made only if the job has not
        changed since: otherwise a ShoalError with reason CONDITION_NOT_MET, and nothing
        changes. Returns the job as updated, with its new etag.
        """
        job = job_pb2.Job(metadata=dict(metadata or {}))
        paths: list[str] = []
        if priority is not None:
            job.priority = priority
            paths.append("priority")
        if on_all_tasks_complete is not None:
            job.on_all_tasks_complete = enum_name(  # type: ignore[assignment]
                job_pb2.OnAllTasksComplete, on_all_tasks_complete, "on_all_tasks_complete",
                _COMPLETION_ALIASES)
            paths.append("on_all_tasks_complete")
        if max_parallel_tasks is not None:
            job.max_parallel_tasks = max_parallel_tasks
            paths.append("max_parallel_tasks")
        if max_wall_clock_time is not None:
            # 0 leaves the field unset: no limit.
            wall = duration_proto(max_wall_clock_time) if max_wall_clock_time else None
            if wall is not None:
                job.constraints.max_wall_clock_time.CopyFrom(wall)
            paths.append("constraints.max_wall_clock_time")
        if max_task_retry_count is not None:
            job.constraints.max_task_retry_count = max_task_retry_count
            paths.append("constraints.max_task_retry_count")
        if metadata is not None:
            paths.append("metadata")
        if not paths:
            raise _invalid("update_mask", "give at least one setting to change")
        request = job_pb2.UpdateJobRequest(
            name=job_name(job_id), job=job, update_mask=field_mask_pb2.FieldMask(paths=paths),
            if_match=if_match or "")
        return self._call(self._jobs.UpdateJob, request)

    def get_job(self, job_id: str) -> job_pb2.Job:
        return self._call(self._jobs.GetJob, job_pb2.GetJobRequest(name=job_name(job_id)))

    def list_jobs(
        self, *, filter: str = "", page_size: int = 0, page_token: str = ""
    ) -> Listing[job_pb2.Job]:
        request = job_pb2.ListJobsRequest(filter=filter, page_size=page_size, page_token=page_token)
        return self._pages(self._jobs.ListJobs, request, "jobs")

    def terminate_job(self, job_id: str, reason: str = "") -> job_pb2.Job:
        request = job_pb2.TerminateJobRequest(name=job_name(job_id), reason=reason)
        return self._call(self._jobs.TerminateJob, request)

    def delete_job(self, job_id: str) -> None:
        self._call(self._jobs.DeleteJob, job_pb2.DeleteJobRequest(name=job_name(job_id)))

    def disable_job(self, job_id: str, option: str | int = "requeue") -> job_pb2.Job:
        """No task of the job starts until enable_job. Its running tasks are requeued
        ("requeue", the default), terminated ("terminate") or let finish ("wait"; the job is
        DISABLING until they have)."""
        disable = enum_name(
            job_pb2.DisableJobOption,
            option,
            "disable_tasks",
            {"REQUEUE": "DISABLE_REQUEUE", "TERMINATE": "DISABLE_TERMINATE",
             "WAIT": "DISABLE_WAIT"},
        )
        request = job_pb2.DisableJobRequest(name=job_name(job_id), disable_tasks=disable)
        return self._call(self._jobs.DisableJob, request)

    def enable_job(self, job_id: str) -> job_pb2.Job:
        """Schedule a disabled job's tasks again."""
        return self._call(self._jobs.EnableJob, job_pb2.EnableJobRequest(name=job_name(job_id)))

    def watch_job(
        self,
        job_id: str,
        from_revision: int | None = None,
        *,
        task_state: str | int | Sequence[str | int] | None = None,
        job_only: bool = False,
        summary: bool = False,
        timeout: float | None = None,
        reconnect_for: float = 60.0,
    ) -> WatchStream[job_pb2.JobEvent]:
        """The changes of a job and of its tasks as they happen: JobEvents, oldest first.

        `from_revision`: the `revision` of a List or Get answer (or of an earlier watch) to
        miss nothing after it; None starts now, with the job as it is (type CURRENT).
        `task_state` sends only task changes into those states (deletions always);
        `job_only` sends none (the job's own changes carry its task counts). `summary`
        sends the job's latest state at most twice a second instead of each change (no task
        changes; not with `task_state`): a busy job's progress at a fixed small cost. The stream
        resumes by itself from where it was after a lost connection (trying for
        `reconnect_for` seconds), so no change is missed or repeated; `.revision` is where
        it is. A revision the service no longer keeps (it restarted, or the reader fell
        far behind) raises ShoalError with reason REVISION_COMPACTED: list again and watch
        from there. `timeout` ends the watch with DEADLINE_EXCEEDED. `close()` ends it.
        """
        request = job_pb2.WatchJobRequest(
            name=job_name(job_id), task_filter=state_filter(task_state, task_pb2.Task.State),
            job_only=job_only, job_summary=summary,
        )

        def open(revision: int, left: float | None) -> Any:
            request.from_revision = revision
            return self._jobs.WatchJob(request, metadata=self._metadata, timeout=left)

        return WatchStream(open, from_revision or 0, reconnect_for=reconnect_for,
                           deadline=_deadline(timeout))

    def wait_job(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_progress: Callable[[job_pb2.TaskCounts], None] | None = None,
    ) -> job_pb2.Job:
        """Wait until no task is active or running (or the job is COMPLETED); return the job.
        Follows the job's changes as they happen (watch_job): `on_progress(task_counts)` is
        called with each. WaitTimeoutError when `timeout` seconds pass first."""
        deadline = _deadline(timeout)
        job: job_pb2.Job | None = None
        while True:
            try:
                with self.watch_job(job_id, job_only=True, timeout=_left(deadline)) as events:
                    for event in events:
                        if event.type == JobEvent.DELETED:
                            raise ShoalError(StatusCode.NOT_FOUND, f"job {job_id!r} was deleted",
                                             reason="JOB_NOT_FOUND")
                        job = event.job
                        if on_progress is not None:
                            on_progress(job.task_counts)
                        if _job_done(job):
                            return job
            except ShoalError as e:
                if e.code == StatusCode.DEADLINE_EXCEEDED:
                    c = job.task_counts if job is not None else job_pb2.TaskCounts()
                    raise WaitTimeoutError(
                        f"job {job_id!r} still has {c.active} active and {c.running} running "
                        f"tasks after {timeout:g}s"
                    ) from None
                if e.reason != "REVISION_COMPACTED":
                    raise
                # The scheduler restarted: follow on from the job as it is now.

    def watch_nodes(
        self,
        pool_id: str,
        from_revision: int | None = None,
        *,
        timeout: float | None = None,
        reconnect_for: float = 60.0,
    ) -> WatchStream[pool_pb2.NodeEvent]:
        """The changes of a pool's nodes as they happen: NodeEvents, oldest first. None
        starts now with every node as it is (type CURRENT); otherwise as watch_job."""
        request = pool_pb2.WatchNodesRequest(parent=pool_name(pool_id))

        def open(revision: int, left: float | None) -> Any:
            request.from_revision = revision
            return self._pools.WatchNodes(request, metadata=self._metadata, timeout=left)

        return WatchStream(open, from_revision or 0, reconnect_for=reconnect_for,
                           deadline=_deadline(timeout))

    # Tasks

    def add_task(
        self,
        job_id: str,
        task_id: str,
        command_line: str,
        *,
        environment: Mapping[str, str] | None = None,
        max_wall_clock_time: float | None = None,
        max_task_retry_count: int | None = None,
        display_name: str = "",
        resource_files: Sequence[ResourceFileLike] = (),
        output_files: Sequence[OutputFileLike] = (),
        application_package_references: Sequence[PackageLike] = (),
        depends_on: Sequence[DependencyLike] = (),
        exit_conditions: ExitConditions | task_pb2.ExitConditions | None = None,
        required_slots: int = 1,
        priority: int = 0,
        retention_time: float | None = None,
    ) -> task_pb2.Task:
        """Add one task. Resource files, output files and packages may be given as the
        helpers of shoal.specs, their one-line string forms, or the protos; see TaskSpec for
        the rest (`depends_on=["t1", (1, 100)]`, exit conditions of shoal.task_options)."""
        spec = TaskSpec(
            task_id,
            command_line,
            dict(environment or {}),
            max_wall_clock_time,
            max_task_retry_count,
            display_name,
            tuple(resource_files),
            tuple(output_files),
            tuple(application_package_references),
            depends_on=tuple(depends_on),
            exit_conditions=exit_conditions,
            required_slots=required_slots,
            priority=priority,
            retention_time=retention_time,
        )
        try:
            request = create_task_request(spec)
        except SpecError as e:
            raise _invalid(f"task.{e.field}", e.why) from None
        request.parent = job_name(job_id)
        return self._call(self._tasks.CreateTask, request)

    def add_tasks(
        self,
        job_id: str,
        tasks: Iterable[TaskSpec | Mapping[str, Any]],
        chunk: int = 10_000,
        *,
        on_chunk: Callable[[int], None] | None = None,
    ) -> int:
        """Add tasks in BatchCreateTasks calls of `chunk` tasks; return how many were added.

        Each call is all-or-nothing, the whole iterable is not: when a later chunk fails, the
        earlier chunks stay added (the ShoalError says which task of that chunk was bad).
        `on_chunk(added_so_far)` is called after each chunk.
        """
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        parent = job_name(job_id)
        added = 0
        batch: list[task_pb2.CreateTaskRequest] = []

        def send() -> None:
            nonlocal added
            request = task_pb2.BatchCreateTasksRequest(parent=parent, requests=batch)
            # Big batches take the server a while; scale the deadline with the batch.
            timeout = self.timeout + len(batch) / 1000
            response = self._call(self._tasks.BatchCreateTasks, request, timeout=timeout)
            added += response.created_count
            batch.clear()
            if on_chunk is not None:
                on_chunk(added)

        for index, item in enumerate(tasks):
            try:
                spec = item if isinstance(item, TaskSpec) else TaskSpec.from_dict(item)
                batch.append(create_task_request(spec))
            except ValueError as e:
                raise ShoalError(
                    StatusCode.INVALID_ARGUMENT,
                    f"tasks[{index}]: {e}",
                    reason="INVALID_ARGUMENT",
                    field=f"tasks[{index}]",
                ) from None
            if len(batch) >= chunk:
                send()
        if batch:
            send()
        return added

    def get_task(self, job_id: str, task_id: str) -> task_pb2.Task:
        request = task_pb2.GetTaskRequest(name=task_name(job_id, task_id))
        return self._call(self._tasks.GetTask, request)

    def terminate_task(self, job_id: str, task_id: str) -> task_pb2.Task:
        """Stop a task: a running one is killed, an active one never runs. It completes as
        failed with TASK_TERMINATED."""
        request = task_pb2.TerminateTaskRequest(name=task_name(job_id, task_id))
        return self._call(self._tasks.TerminateTask, request)

    def update_task(
        self,
        job_id: str,
        task_id: str,
        *,
        max_wall_clock_time: float | None = None,
        max_task_retry_count: int | str | None = None,
        retention_time: float | None = None,
        if_match: str | None = None,
    ) -> task_pb2.Task:
        """Change a task's constraints (Azure Batch's Task - Update); the others stay as they
        are. Only the arguments given (not None) change, and they act at once:
        `max_wall_clock_time` applies to the attempt running now, counted from its start (0
        removes the limit), `max_task_retry_count` to its next failure ("job": the job's
        count again), `retention_time` to the directories of attempts that end from now on
        (0: the default, 7 days). A completed task cannot be updated (TASK_COMPLETED).

        With `if_match` (a task's `etag`, as read), the update is made only if the task has
        not changed since: otherwise a ShoalError with reason CONDITION_NOT_MET, and nothing
        changes. Returns the task as updated, with its new etag.
        """
        paths: list[str] = []
        retries: int | None = None
        if max_wall_clock_time is not None:
            paths.append("constraints.max_wall_clock_time")
        if max_task_retry_count is not None:
            paths.append("constraints.max_task_retry_count")
            if max_task_retry_count != "job":  # unset: the job's
                if not isinstance(max_task_retry_count, int):
                    raise _invalid("task.constraints.max_task_retry_count",
                                   f"a count or 'job', got {max_task_retry_count!r}")
                retries = max_task_retry_count
        if retention_time is not None:
            paths.append("constraints.retention_time")
        # 0 leaves a duration unset: no wall clock, the default retention.
        c = task_pb2.TaskConstraints(
            max_wall_clock_time=duration_proto(max_wall_clock_time or None),
            max_task_retry_count=retries, retention_time=duration_proto(retention_time or None))
        if not paths:
            raise _invalid("update_mask", "give at least one constraint to change")
        request = task_pb2.UpdateTaskRequest(
            name=task_name(job_id, task_id), task=task_pb2.Task(constraints=c),
            update_mask=field_mask_pb2.FieldMask(paths=paths), if_match=if_match or "")
        return self._call(self._tasks.UpdateTask, request)

    def reactivate_task(self, job_id: str, task_id: str) -> task_pb2.Task:
        """Put a failed task back to ACTIVE with its retry count reset."""
        request = task_pb2.ReactivateTaskRequest(name=task_name(job_id, task_id))
        return self._call(self._tasks.ReactivateTask, request)

    def delete_task(self, job_id: str, task_id: str) -> None:
        """Delete a task (a running one is killed first) and its files on the nodes."""
        request = task_pb2.DeleteTaskRequest(name=task_name(job_id, task_id))
        self._call(self._tasks.DeleteTask, request)

    def unblock_task(self, job_id: str, task_id: str) -> task_pb2.Task:
        """Run a task blocked by a failed dependency anyway."""
        request = task_pb2.UnblockTaskRequest(name=task_name(job_id, task_id))
        return self._call(self._tasks.UnblockTask, request)

    def explain_task(self, job_id: str, task_id: str) -> task_pb2.TaskExplanation:
        """Why the task is where it is: a summary line, reasons (codes such as
        DEPENDENCIES_PENDING or NO_FREE_SLOT) and details."""
        request = task_pb2.ExplainTaskRequest(name=task_name(job_id, task_id))
        return self._call(self._tasks.ExplainTask, request)

    def wait_task(
        self, job_id: str, task_id: str, *, timeout: float | None = None
    ) -> task_pb2.Task:
        """Wait until the task is COMPLETED; return it. Follows the job's task changes as
        they happen. WaitTimeoutError when `timeout` seconds pass first."""
        (task,) = self.wait_for_tasks(job_id, [task_id], timeout=timeout)
        return task

    def wait_for_tasks(
        self,
        job_id: str,
        task_ids: Iterable[str] | None = None,
        *,
        timeout: float | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[task_pb2.Task]:
        """Wait until every one of these tasks (None: every task the job has now) is
        COMPLETED; return them in id order (as GetTask shows them when named, as ListTasks
        does otherwise). Lists the tasks, then follows their completions from the list's
        revision (watch_job), so none is missed. `on_progress(completed, total)` is called
        as they complete. NOT_FOUND when one does not exist or is deleted meanwhile;
        WaitTimeoutError when `timeout` passes first."""
        deadline = _deadline(timeout)
        wanted = None if task_ids is None else {t.lower(): t for t in task_ids}
        while True:
            request = task_pb2.ListTasksRequest(parent=job_name(job_id), page_size=1000)
            first = self._call(self._tasks.ListTasks, request)
            listed = list(first.tasks)
            if first.next_page_token:
                request.page_token = first.next_page_token
                listed += self._pages(self._tasks.ListTasks, request, "tasks")
            tasks = {last_segment(t.name).lower(): t for t in listed}
            if wanted is not None:
                missing = sorted(set(wanted) - set(tasks))
                if missing:
                    raise ShoalError(StatusCode.NOT_FOUND,
                                     f"task {wanted[missing[0]]!r} not found in job {job_id!r}",
                                     reason="TASK_NOT_FOUND")
                tasks = {k: tasks[k] for k in wanted}
            pending = {k for k, t in tasks.items() if t.state != task_pb2.Task.COMPLETED}
            try:
                self._follow_completions(job_id, first.revision, tasks, pending, deadline,
                                         on_progress)
            except ShoalError as e:
                if e.code == StatusCode.DEADLINE_EXCEEDED:
                    raise WaitTimeoutError(
                        f"{len(pending)} of {len(tasks)} tasks of job {job_id!r} had not "
                        f"completed after {timeout:g}s"
                    ) from None
                if e.reason != "REVISION_COMPACTED":
                    raise
                continue  # the scheduler restarted: list again
            # Read again: the watch sent only completions, not everything since the list.
            if wanted is not None:
                return [self.get_task(job_id, wanted[k]) for k in sorted(tasks)]
            return sorted(self.list_tasks(job_id), key=lambda t: last_segment(t.name).lower())

    def _follow_completions(
        self, job_id: str, revision: int, tasks: dict[str, task_pb2.Task], pending: set[str],
        deadline: float | None, on_progress: Callable[[int, int], None] | None,
    ) -> None:
        """Take completions (and deletions) of `tasks` until `pending` is empty."""
        if on_progress is not None:
            on_progress(len(tasks) - len(pending), len(tasks))
        if not pending:
            return
        with self.watch_job(job_id, revision, task_state="completed",
                            timeout=_left(deadline)) as events:
            for event in events:
                if event.HasField("job"):
                    if event.type == JobEvent.DELETED:
                        raise ShoalError(StatusCode.NOT_FOUND, f"job {job_id!r} was deleted",
                                         reason="JOB_NOT_FOUND")
                    continue
                key = last_segment(event.task.name).lower()
                if key not in tasks:
                    continue
                if event.type == JobEvent.DELETED:
                    raise ShoalError(StatusCode.NOT_FOUND,
                                     f"task {last_segment(event.task.name)!r} was deleted",
                                     reason="TASK_NOT_FOUND")
                if key in pending:
                    pending.discard(key)
                    if on_progress is not None:
                        on_progress(len(tasks) - len(pending), len(tasks))
                    if not pending:
                        return

    def list_tasks(
        self,
        job_id: str,
        *,
        state: str | int | Sequence[str | int] | None = None,
        node: str | None = None,
        exit_code: int | str | None = None,
        filter: str = "",
        page_size: int = 1000,
        page_token: str = "",
    ) -> Listing[task_pb2.Task]:
        """A job's tasks by id (iterate for all, fetched `page_size` at a time; or `.page(n)`).

        `state`: one or more of active, preparing, running, completed, and — as people mean
        them — succeeded and failed (completed with that result); `node`: the node of the
        current or last attempt (an id, or pools/{pool}/nodes/{node}); `exit_code`: a number,
        or a comparison such as "!=0" or ">1". Each narrows the others; `filter` is the
        API's filter text (see ListTasksRequest) and narrows them too.
        """
        request = task_pb2.ListTasksRequest(
            parent=job_name(job_id),
            filter=task_filter(state, node, exit_code, filter),
            page_size=page_size,
            page_token=page_token,
        )
        return self._pages(self._tasks.ListTasks, request, "tasks")

    def read_task_file(
        self, job_id: str, task_id: str, path: str = "stdout.txt", offset: int = 0,
        *, tail: int | None = None,
    ) -> bytes:
        """The whole of a task's stdout.txt or stderr.txt from `offset` on (or its last `tail`
        lines)."""
        return b"".join(self._task_file(job_id, task_id, path, offset, tail, follow=False))

    def follow_task_file(
        self, job_id: str, task_id: str, path: str = "stdout.txt", offset: int = 0,
        *, tail: int | None = None, timeout: float | None = None,
    ) -> Iterator[bytes]:
        """A task's stdout.txt or stderr.txt as the task writes it, until its attempt ends (a
        task not started yet is waited for): `shoal task logs -f`. `timeout` bounds the
        whole call (None: no bound)."""
        return self._task_file(job_id, task_id, path, offset, tail, follow=True, timeout=timeout)

    def _task_file(
        self, job_id: str, task_id: str, path: str, offset: int, tail: int | None,
        *, follow: bool, timeout: float | None = None,
    ) -> Iterator[bytes]:
        request = task_pb2.ReadTaskFileRequest(
            name=task_name(job_id, task_id), path=path, offset=offset, follow=follow,
            tail_lines=tail or 0,
        )
        try:
            for chunk in self._tasks.ReadTaskFile(
                request, metadata=self._metadata, timeout=timeout if follow else self.timeout
            ):
                yield chunk.data
        except grpc.RpcError as e:
            raise ShoalError.from_rpc_error(e) from None
