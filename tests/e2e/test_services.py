"""Each service is a real process: gRPC health and reflection, structlog JSON logs with
context bound once, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from shoal.suite import LocalSuite
from tests.support import wait_for

ADDRESSES = {
    "gateway": "gateway_address",
    "pool-manager": "pool_manager_address",
    "job-scheduler": "job_scheduler_address",
    "storage-stager": "storage_stager_address",
}


def test_every_service_answers_health_and_reflection(shared_suite: LocalSuite) -> None:
    listed = {}
    for service, attr in ADDRESSES.items():
        with grpc.insecure_channel(getattr(shared_suite.config, attr)) as ch:
            health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING, service
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            [reply] = list(stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
            listed[service] = {s.name for s in reply.list_services_response.service}
    assert {"shoal.v1.PoolService", "shoal.v1.JobService", "shoal.v1.TaskService"} <= listed["gateway"]
    assert "shoal.agent.v1.AgentService" in listed["job-scheduler"]
    assert "shoal.agent.v1.NodeRegistryService" in listed["pool-manager"]
    assert "grpc.health.v1.Health" in listed["storage-stager"]


def _reflect_v1(channel: grpc.Channel, *requests: reflection_pb2.ServerReflectionRequest
                ) -> list[reflection_pb2.ServerReflectionResponse]:
    """A reflection client speaking grpc.reflection.v1: the same messages as v1alpha (the
    protocol only moved package), sent to v1's method."""
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return list(call(iter(requests), timeout=5))


def test_the_gateway_serves_reflection_v1_and_v1alpha(shared_suite: LocalSuite) -> None:
    with grpc.insecure_channel(shared_suite.endpoint) as ch:
        # v1alpha, through grpcio-reflection's own client.
        db = ProtoReflectionDescriptorDatabase(ch)
        services = set(db.get_services())
        assert {"shoal.v1.TaskService", "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection"} <= services
        task_file = descriptor_pool.DescriptorPool(db).FindServiceByName("shoal.v1.TaskService")
        assert "ListTasks" in task_file.methods_by_name

        listed, described, own = _reflect_v1(
            ch,
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="shoal.v1.TaskService"),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="grpc.reflection.v1.ServerReflection"),
        )
    assert {s.name for s in listed.list_services_response.service} == services
    files = [descriptor_pb2.FileDescriptorProto.FromString(b)
             for b in described.file_descriptor_response.file_descriptor_proto]
    task = next(f for f in files if f.name == "shoal/v1/task.proto")
    assert [m.name for m in task.service[0].method][:4] == [
        "CreateTask", "BatchCreateTasks", "GetTask", "ListTasks"]
    assert task.options.go_package and task.options.java_package == "dev.shoal.v1"
    (v1,) = [descriptor_pb2.FileDescriptorProto.FromString(b)
             for b in own.file_descriptor_response.file_descriptor_proto]
    assert (v1.package, v1.service[0].name) == ("grpc.reflection.v1", "ServerReflection")


def test_the_gateways_health_follows_the_services_behind_it(suite: LocalSuite) -> None:
    def status(name: str) -> int:
        with grpc.insecure_channel(suite.endpoint) as ch:
            return health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=name), timeout=5).status

    serving = health_pb2.HealthCheckResponse.SERVING
    for name in ("", "pool-manager", "job-scheduler", "storage-stager", "shoal.v1.TaskService"):
        wait_for(lambda name=name: status(name) == serving, f"{name or 'gateway'} serving", 30)
    suite.kill("job-scheduler")
    down = health_pb2.HealthCheckResponse.NOT_SERVING
    wait_for(lambda: status("job-scheduler") == down, "the scheduler seen down", 30)
    assert status("shoal.v1.TaskService") == down and status("shoal.v1.JobService") == down
    assert status("pool-manager") == serving and status("") == serving
    suite.restart("job-scheduler")
    wait_for(lambda: status("shoal.v1.JobService") == serving, "the scheduler seen back", 30)


def test_internal_services_refuse_calls_without_the_service_token(shared_suite: LocalSuite) -> None:
    from shoal.v1 import job_pb2, job_pb2_grpc

    with grpc.insecure_channel(shared_suite.config.job_scheduler_address) as ch:
        stub = job_pb2_grpc.JobServiceStub(ch)
        try:
            stub.ListJobs(job_pb2.ListJobsRequest(), metadata=[("x-shoal-account", "default")], timeout=5)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAUTHENTICATED
        else:
            raise AssertionError("the scheduler answered a call that skipped the gateway")


def test_client_metadata_cannot_choose_the_account(shared_suite: LocalSuite) -> None:
    from shoal.v1 import pool_pb2, pool_pb2_grpc

    c = shared_suite.client()
    c.create_pool("mine", target_nodes=0)
    with grpc.insecure_channel(shared_suite.endpoint) as ch:
        stub = pool_pb2_grpc.PoolServiceStub(ch)
        md = [("authorization", f"Bearer {shared_suite.client_config.key}"),
              ("x-shoal-account", "someone-else"), ("x-shoal-service-token", "guess")]
        got = stub.GetPool(pool_pb2.GetPoolRequest(name="pools/mine"), metadata=md, timeout=5)
        assert got.name == "pools/mine"  # still the caller's own account


def test_logs_are_json_lines_with_bound_context(shared_suite: LocalSuite) -> None:
    c = shared_suite.client()
    c.create_pool("logs", target_nodes=0)
    c.create_job("logged-job", pool_id="logs")

    def created() -> dict[str, str] | None:
        for line in (shared_suite.logs_dir / "job-scheduler.log").read_text().splitlines():
            entry = json.loads(line)
            if entry.get("event") == "job created" and entry.get("job") == "logged-job":
                return entry
        return None

    entry = wait_for(created, "the scheduler to log the job")
    assert (entry["service"], entry["rpc"], entry["account"]) == ("job-scheduler", "CreateJob", "default")
    for service in ADDRESSES:
        for line in (shared_suite.logs_dir / f"{service}.log").read_text().splitlines():
            assert json.loads(line)["service"] == service


def test_sigterm_stops_each_service_cleanly_and_it_comes_back(suite: LocalSuite) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1)
    c.create_job("j", pool_id="p")
    for service in ("gateway", "job-scheduler", "pool-manager", "storage-stager"):
        os.kill(suite.pid(service), signal.SIGTERM)  # type: ignore[arg-type]
        assert wait_for(lambda s=service: suite.exit_code(s) is not None, f"{service} to exit",
                        timeout=30)
        assert suite.exit_code(service) == 0, service
        suite.restart(service)
    c = suite.client()
    c.add_task("j", "after", "echo back")
    wait_for(lambda: c.get_task("j", "after").execution_info.result == 1, "a task after the restarts")
