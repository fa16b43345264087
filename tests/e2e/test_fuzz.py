"""Garbage in, a deliberate answer out: random bytes and mutated messages to every public RPC
(through the gateway, with the account's key) and every internal one (on the services' own
ports, with the service token and without it). Every answer is a status a service chose — with
an ErrorInfo reason, never UNKNOWN or INTERNAL — no service dies, and memory stays bounded.
Hypothesis draws the inputs, derandomized, so a run is the same everywhere."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.agent.v1 import agent_pb2  # noqa: F401 - descriptors
from shoal.internal.v1 import scheduler_control_pb2, staging_pb2  # noqa: F401 - descriptors
from shoal.suite import LocalSuite
from shoal.v1 import (  # noqa: F401 - descriptors
    application_pb2,
    job_pb2,
    job_schedule_pb2,
    pool_pb2,
    storage_pb2,
    task_pb2,
)
from tests.support import start_suite

PUBLIC = ["shoal.v1.PoolService", "shoal.v1.JobService", "shoal.v1.TaskService",
          "shoal.v1.JobScheduleService", "shoal.v1.StorageService", "shoal.v1.ApplicationService"]
INTERNAL = {  # service -> the process that serves it
    "shoal.internal.v1.SchedulerControlService": "job-scheduler",
    "shoal.internal.v1.StagingService": "storage-stager",
    "shoal.agent.v1.AgentService": "job-scheduler",
    "shoal.agent.v1.NodeRegistryService": "pool-manager",
    **{s: owner for s, owner in (("shoal.v1.PoolService", "pool-manager"),
                                 ("shoal.v1.JobService", "job-scheduler"),
                                 ("shoal.v1.TaskService", "job-scheduler"),
                                 ("shoal.v1.StorageService", "storage-stager"))},
}
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
MEMORY_BOUND_MB = 400
CALL_TIMEOUT = 5.0


def methods(service: str) -> list[MethodDescriptor]:
    return list(descriptor_pool.Default().FindServiceByName(service).methods)


def _value(field: FieldDescriptor, rnd: random.Random, depth: int) -> object:
    t = field.type
    if t == FieldDescriptor.TYPE_MESSAGE:
        return None if depth > 2 else field.message_type
    if t == FieldDescriptor.TYPE_STRING:
        return rnd.choice(["", "a", "x" * rnd.randint(1, 80), "../../etc", "ünï", "jobs/j/tasks/t"])
    if t == FieldDescriptor.TYPE_BYTES:
        return rnd.randbytes(rnd.randint(0, 40))
    if t == FieldDescriptor.TYPE_BOOL:
        return rnd.random() < 0.5
    if t == FieldDescriptor.TYPE_ENUM:
        return rnd.choice([v.number for v in field.enum_type.values])
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rnd.choice([0.0, -1.0, 1e300, 3.5])
    if field.name in ("target_nodes", "target_dedicated_nodes", "count", "nodes"):
        return 0  # a fuzz run must not start agent processes by the thousand
    if field.cpp_type in (FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64):
        return rnd.choice([0, 1, 7, 2**31 - 1])
    return rnd.choice([0, 1, -1, 7, 2**31 - 1])


def fill(desc: Descriptor, rnd: random.Random, depth: int = 0) -> Message:
    """A message of `desc` with random values in a random half of its fields."""
    msg = GetMessageClass(desc)()
    for field in desc.fields:
        if rnd.random() < 0.5 or field.containing_oneof is not None and rnd.random() < 0.5:
            continue
        value = _value(field, rnd, depth)
        if value is None:
            continue
        repeated = field.is_repeated
        if isinstance(value, Descriptor):
            if field.message_type.GetOptions().map_entry:
                continue
            child = fill(value, rnd, depth + 1)
            if repeated:
                getattr(msg, field.name).add().CopyFrom(child)
            else:
                getattr(msg, field.name).CopyFrom(child)
        elif repeated:
            getattr(msg, field.name).append(value)
        else:
            setattr(msg, field.name, value)
    return msg


def mutate(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(3)
        if op == 0 and b:
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        elif op == 1 and b:
            del b[rnd.randrange(len(b)):]
        else:
            b[rnd.randrange(len(b) + 1):0] = rnd.randbytes(rnd.randint(1, 8))
    return bytes(b)


@st.composite
def bodies(draw: st.DrawFn, desc: Descriptor) -> bytes:
    kind = draw(st.sampled_from(["random", "valid", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=512))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    data = fill(desc, rnd).SerializeToString()
    return data if kind == "valid" else mutate(data, rnd)


def call(channel: grpc.Channel, method: MethodDescriptor, body: bytes,
         metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    ident = lambda b: b  # noqa: E731 - bytes in, bytes out
    try:
        if method.client_streaming and method.server_streaming:
            stream = channel.stream_stream(path, ident, ident)(
                iter([body, body]), metadata=metadata, timeout=CALL_TIMEOUT)
            for _ in stream:
                pass
        elif method.client_streaming:
            channel.stream_unary(path, ident, ident)(iter([body]), metadata=metadata,
                                                     timeout=CALL_TIMEOUT)
        elif method.server_streaming:
            for _ in channel.unary_stream(path, ident, ident)(body, metadata=metadata,
                                                              timeout=CALL_TIMEOUT):
                pass
        else:
            channel.unary_unary(path, ident, ident)(body, metadata=metadata, timeout=CALL_TIMEOUT)
    except grpc.RpcError as e:
        code = e.code()  # type: ignore[attr-defined]
        assert code not in NEVER, f"{path}: {code.name}: {e.details()}"  # type: ignore[attr-defined]
        if code not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            status = rpc_status.from_call(e)  # type: ignore[arg-type]
            assert status is not None and status.details, (
                f"{path}: {code.name} without an ErrorInfo: {e.details()}")  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuite]:
    s = start_suite(tmp_path_factory.mktemp("fuzz") / "state")
    try:
        yield s
    finally:
        s.stop()


def _rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) // 1024


def _fuzz(channel: grpc.Channel, method: MethodDescriptor,
          metadata: tuple[tuple[str, str], ...], examples: int) -> Callable[[], None]:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(bodies(method.input_type))
    def run(body: bytes) -> None:
        call(channel, method, body, metadata)

    return run


@pytest.mark.parametrize("service", PUBLIC)
def test_public_rpcs_answer_garbage_deliberately(fuzzed: LocalSuite, service: str) -> None:
    md = (("authorization", f"Bearer {fuzzed.client_config.key}"),)
    with grpc.insecure_channel(fuzzed.endpoint) as channel:
        for method in methods(service):
            _fuzz(channel, method, md, examples=12)()
    assert fuzzed.check() == []


@pytest.mark.parametrize("service", sorted(INTERNAL))
def test_internal_rpcs_answer_garbage_deliberately(fuzzed: LocalSuite, service: str) -> None:
    owner = INTERNAL[service]
    address = {"job-scheduler": fuzzed.config.job_scheduler_address,
               "pool-manager": fuzzed.config.pool_manager_address,
               "storage-stager": fuzzed.config.storage_stager_address}[owner]
    trusted = (("x-shoal-service-token", fuzzed.config.service_token), ("x-shoal-account", "fz"))
    with grpc.insecure_channel(address) as channel:
        for method in methods(service):
            _fuzz(channel, method, trusted, examples=8)()
            if service.startswith("shoal.agent."):
                continue  # agents authenticate inside the stream, by their node credential
            for md in ((), (("x-shoal-service-token", "wrong"), ("x-shoal-account", "fz"))):
                assert call(channel, method, b"\x0a\x03abc", md) == grpc.StatusCode.UNAUTHENTICATED
    assert fuzzed.check() == []


def test_an_unknown_caller_is_refused_before_its_body_is_read(fuzzed: LocalSuite) -> None:
    pid = fuzzed.pid("job-scheduler")
    assert pid is not None
    before = _rss_mb(pid)
    [create] = [m for m in methods("shoal.v1.TaskService") if m.name == "BatchCreateTasks"]
    body = b"\x0a" + b"\xff" * 60 * 1024 * 1024  # 60 MiB of nothing valid, no token
    with grpc.insecure_channel(fuzzed.config.job_scheduler_address, options=[
            ("grpc.max_send_message_length", 128 << 20)]) as channel:
        for _ in range(3):
            assert call(channel, create, body, ()) == grpc.StatusCode.UNAUTHENTICATED
    assert _rss_mb(pid) < before + 50, (before, _rss_mb(pid))


def test_memory_stays_bounded_after_the_fuzzing(fuzzed: LocalSuite) -> None:
    for service in ("gateway", "pool-manager", "job-scheduler", "storage-stager"):
        pid = fuzzed.pid(service)
        assert pid is not None
        assert _rss_mb(pid) < MEMORY_BOUND_MB, service
    assert fuzzed.check() == []
