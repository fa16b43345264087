"""WatchNodes through the real pool-manager (real gRPC, stand-in agent processes, the
scheduler a test double over real gRPC): a pool's nodes as they come, change and go; resume;
another account's pool of the same id stays apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from shoal.cluster_config import ClusterConfig
from shoal.v1 import pool_pb2
from tests.support import eventually

from .conftest import Client, FakeScheduler, registrations, short

ACCT = "acct-a"
N = pool_pb2.Node
E = pool_pb2.NodeEvent


class Watch:
    """A WatchNodes stream read in the background."""

    def __init__(self, client: Client, pool: str, from_revision: int = 0) -> None:
        self.call = client.pools.WatchNodes(
            pool_pb2.WatchNodesRequest(parent=f"pools/{pool}", from_revision=from_revision),
            metadata=client.md)
        self.responses: list[pool_pb2.WatchNodesResponse] = []
        self.error: grpc.aio.AioRpcError | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for r in self.call:
                self.responses.append(r)
        except grpc.aio.AioRpcError as e:
            self.error = e

    @property
    def events(self) -> list[pool_pb2.NodeEvent]:
        return [e for r in self.responses for e in r.events]

    def seen(self) -> list[tuple[int, str, int]]:
        """(type, node id, state) of every event so far."""
        return [(e.type, short(e.node.name), e.node.state) for e in self.events]

    async def until(self, check: object, what: str) -> None:
        await eventually(lambda: self.error or check(self.seen()), what)  # type: ignore[operator]
        assert self.error is None, self.error

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@pytest.fixture
async def watches() -> AsyncIterator[list[Watch]]:
    opened: list[Watch] = []
    yield opened
    for w in opened:
        await w.close()


async def test_nodes_are_followed_as_they_come_change_and_go(
    client: Client, other_client: Client, config: ClusterConfig, fake_scheduler: FakeScheduler,
    watches: list[Watch],
) -> None:
    await client.create("p1", target=0)
    await other_client.create("p1", target=0)  # another account's pool of the same id
    w = Watch(client, "p1")
    theirs = Watch(other_client, "p1")
    watches += [w, theirs]
    await eventually(lambda: w.responses and theirs.responses, "the first answers")
    assert list(w.responses[0].events) == []  # CURRENT of an empty pool: nothing
    start = w.responses[0].revision

    await client.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p1", target_nodes=2))
    await w.until(lambda s: len([x for x in s if x[0] == E.ADDED]) == 2, "two nodes added")
    ids = sorted({n for t, n, _ in w.seen() if t == E.ADDED})
    assert {st for t, _, st in w.seen() if t == E.ADDED} == {N.STARTING}
    await eventually(lambda: all(registrations(config, ACCT, "p1", i) for i in ids),
                     "the agents to register")
    for i in ids:
        fake_scheduler.connect(ACCT, "p1", i)
    await w.until(lambda s: {n for t, n, st in s if st == N.IDLE} == set(ids), "both idle")
    # Busy and idle follow every task: not an event of their own.
    before = len(w.events)
    fake_scheduler.connect(ACCT, "p1", ids[0], running_tasks=1)
    await client.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p1", target_nodes=1))
    await w.until(lambda s: any(t == E.DELETED for t, _, _ in s), "a node to go")
    later = w.seen()[before:]
    gone = next(n for t, n, _ in later if t == E.DELETED)
    assert gone == ids[1], "the idle node is removed first"
    assert (E.MODIFIED, gone, N.LEAVING) in later
    assert not [x for x in later if x[1] == ids[0]], later

    revs = [e.revision for e in w.events]
    assert revs == sorted(set(revs)) and revs[0] > start
    # The other account's pool of the same id saw none of it.
    assert theirs.events == [] and theirs.error is None

    # Resuming from any answer's revision gives exactly the events after it.
    middle = w.responses[len(w.responses) // 2].revision
    again = Watch(client, "p1", middle)
    watches.append(again)
    want = [(e.revision, e.type, e.node.name) for e in w.events if e.revision > middle]
    await eventually(lambda: len(again.events) >= len(want) or again.error, "the replay")
    assert [(e.revision, e.type, e.node.name) for e in again.events] == want


async def test_list_nodes_and_get_node_carry_the_revision_to_watch_from(
    client: Client, config: ClusterConfig, fake_scheduler: FakeScheduler, watches: list[Watch],
) -> None:
    await client.create("p1", target=1)
    listed = await client.ListNodes(pool_pb2.ListNodesRequest(parent="pools/p1"))
    assert listed.revision > 0
    (node,) = await eventually(lambda: client.nodes("p1"), "the node row")
    got = await client.GetNode(pool_pb2.GetNodeRequest(name=node.name))
    assert got.revision >= listed.revision
    w = Watch(client, "p1", got.revision)
    watches.append(w)
    await eventually(lambda: registrations(config, ACCT, "p1", short(node.name)), "registered")
    fake_scheduler.connect(ACCT, "p1", short(node.name))
    await w.until(lambda s: (E.MODIFIED, short(node.name), N.IDLE) in s, "the node idle")


async def test_bad_watches_are_refused_with_a_clear_error(client: Client) -> None:
    async def error(req: pool_pb2.WatchNodesRequest) -> grpc.aio.AioRpcError:
        call = client.pools.WatchNodes(req, metadata=client.md)
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as e:
            return e
        raise AssertionError("no error")

    e = await error(pool_pb2.WatchNodesRequest(parent="pools/nope"))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    await client.create("p1")
    listed = await client.ListNodes(pool_pb2.ListNodesRequest(parent="pools/p1"))
    e = await error(pool_pb2.WatchNodesRequest(parent="pools/p1", from_revision=listed.revision + 5))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "from_revision" in (e.details() or "")
    e = await error(pool_pb2.WatchNodesRequest(parent="pools/p1", from_revision=3))
    assert e.code() == grpc.StatusCode.OUT_OF_RANGE, "a revision of an earlier epoch"
    e = await error(pool_pb2.WatchNodesRequest(parent="bad"))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
