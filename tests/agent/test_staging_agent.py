"""Staging through the real agent process (`python -m agent`): the scheduler's side is the
agent tests' stand-in on a real grpc.aio server, answering StagingRequests with grants whose
URLs are presigned on the real S3 server. The pool's packages at registration, a setup
failure, and an attempt that stays PREPARING across a reconnect."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2
from tests.agent.conftest import ControlPlane, FakeRegistry, Stream
from tests.agent.staging_support import Bucket, package_grant, tar_gz
from tests.storage_support import MotoServer

DOWN, UP = agent_pb2.DOWNLOADS, agent_pb2.UPLOADS


class PoolRegistry(FakeRegistry):
    """The registry stand-in, also handing out the pool's package grants."""

    def __init__(self) -> None:
        super().__init__()
        self.packages: list[agent_pb2.PackageGrant] = []
        self.setup_failure: task_pb2.FailureInfo | None = None

    async def RegisterNode(self, request: Any, context: Any) -> agent_pb2.RegisterNodeResponse:
        resp = await super().RegisterNode(request, context)
        resp.application_packages.extend(self.packages)
        if self.setup_failure is not None:
            resp.setup_failure.CopyFrom(self.setup_failure)
        return resp


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> Iterator[Bucket]:
    yield Bucket(moto_s3)


@pytest.fixture
async def plane() -> AsyncIterator[tuple[ControlPlane, PoolRegistry]]:
    cp = ControlPlane()
    registry = PoolRegistry()
    cp.registry = registry
    cp.scheduler.registry = registry
    cp.scheduler.upload_logs = True  # as the real scheduler does when storage is configured
    await cp.start()
    yield cp, registry
    await cp.stop()


def requests(s: Stream) -> list[agent_pb2.StagingRequest]:
    return [r for m in s.received for r in m.staging_requests]


async def test_pool_packages_then_a_staged_task_across_a_reconnect(
    plane: tuple[ControlPlane, PoolRegistry], start_agent: Any, bucket: Bucket, tmp_path: Path,
    wait_for: Any,
) -> None:
    cp, registry = plane
    registry.packages = [package_grant(bucket, "Tools", "1.0", tar_gz(
        {"hello.sh": (b"#!/bin/sh\necho hello from tools\n", 0o755)}), is_default=True)]
    node = tmp_path / "node"
    await start_agent(cp, node)
    s1 = await cp.stream(1)
    assert not s1.hello.HasField("setup_failure")
    assert (node / "applications/tools/1.0/hello.sh").exists()  # installed before the hello

    data = bucket.put("inputs/numbers.txt", b"1\n2\n3\n")
    data.file_path = "numbers.txt"
    a = agent_pb2.Assignment(
        attempt_id="s1", job_id="j1", task_id="t1", required_slots=1, attempt_number=1,
        command_line="/bin/sh -c '$SHOAL_APP_PACKAGE_TOOLS/hello.sh; wc -l < numbers.txt'",
    )
    a.files.resource_files.add(container="inputs", object_key="numbers.txt", file_path="numbers.txt")
    s1.send(assignments=[a])
    [req] = await wait_for(lambda: requests(s1), "a DOWNLOADS request")
    assert (req.attempt_id, req.kind) == ("s1", DOWN)

    # The stream breaks while the attempt is PREPARING: it is still this node's, and its
    # request comes again on the next stream.
    s1.close()
    s2 = await cp.stream(2)
    assert list(s2.hello.running_attempts) == ["s1"]
    [again] = await wait_for(lambda: requests(s2), "the request resent")
    assert (again.attempt_id, again.kind) == ("s1", DOWN)
    s2.send(staging_grants=[agent_pb2.StagingGrant(attempt_id="s1", kind=DOWN, downloads=[data])])

    up = await wait_for(lambda: [r for r in requests(s2) if r.kind == UP], "an UPLOADS request")
    assert [(u.container, u.key) for u in up[0].uploads] == [("", "stdout.txt")]
    assert "s1" not in s2.results()  # the result waits for the uploads
    s2.send(staging_grants=[agent_pb2.StagingGrant(
        attempt_id="s1", kind=UP, upload_urls=[bucket.put_url("logs/s1/stdout.txt")])])
    result = (await wait_for(lambda: s2.results().get("s1"), "the result"))
    assert result.exit_code == 0 and not result.HasField("failure_info")
    assert bucket.read("logs/s1/stdout.txt") == b"hello from tools\n3\n"


async def test_a_pool_package_that_cannot_install_is_a_setup_failure(
    plane: tuple[ControlPlane, PoolRegistry], start_agent: Any, bucket: Bucket, tmp_path: Path,
    wait_for: Any,
) -> None:
    cp, registry = plane
    registry.packages = [package_grant(bucket, "broken", "2", b"not an archive")]
    await start_agent(cp, tmp_path / "node")
    s1 = await cp.stream(1)
    failure = s1.hello.setup_failure
    assert failure.code == "APPLICATION_PACKAGE_FAILED" and "'broken'" in failure.message
    beat = await wait_for(lambda: s1.heartbeats(), "a heartbeat")
    assert beat[0].free_slots == 0
    s1.send(assignments=[agent_pb2.Assignment(attempt_id="x1", job_id="j1", task_id="t1",
                                              command_line="true", required_slots=1)])
    r = await wait_for(lambda: s1.results().get("x1"), "the refusal")
    assert r.failure_info.code == "NODE_DRAINING" and "setup failed" in r.failure_info.message
    assert not r.HasField("exit_code")


async def test_a_setup_failure_from_the_pool_manager_is_reported(
    plane: tuple[ControlPlane, PoolRegistry], start_agent: Any, tmp_path: Path,
) -> None:
    cp, registry = plane
    registry.setup_failure = task_pb2.FailureInfo(
        category=task_pb2.FailureInfo.USER_ERROR, code="APPLICATION_PACKAGE_FAILED",
        message="application 'ghost' has no default version")
    await start_agent(cp, tmp_path / "node")
    s1 = await cp.stream(1)
    assert s1.hello.setup_failure == registry.setup_failure
