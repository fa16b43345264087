"""UpdatePool through the real pool-manager: the request's checks (the same as CreatePool's),
the etag and If-Match, refusals that change nothing, and the effect Azure Batch gives an
update — a new start task reaches the nodes that join or are rebooted after it, not those
running. Stand-in agent processes register over real gRPC and record what they were given;
the store is a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from services.common import rpc
from services.common.errors import Code, ShoalError
from services.pool_manager import convert
from services.pool_manager.model import POOL_UPDATABLE, Pool, PoolChanges, PoolState, updated
from services.pool_manager.store import SCHEMA, Store
from shoal.cluster_config import ClusterConfig
from shoal.v1 import application_pb2, pool_pb2, task_pb2
from tests.support import eventually

from .conftest import Client, FakeScheduler, must, registered, registrations, rpc_error, short

ACCT = "acct-a"


def request(*paths: str, if_match: str = "", **pool: object) -> pool_pb2.UpdatePoolRequest:
    return pool_pb2.UpdatePoolRequest(
        name="pools/p", pool=pool_pb2.Pool(**pool),  # type: ignore[arg-type]
        update_mask=FieldMask(paths=list(paths)), if_match=if_match)


def start(command: str) -> task_pb2.StartTask:
    return task_pb2.StartTask(command_line=command)


def package(app: str, version: str = "") -> application_pb2.ApplicationPackageReference:
    return application_pb2.ApplicationPackageReference(application_id=app, version=version)


# -- the request --------------------------------------------------------------------------------


def test_only_the_masked_fields_are_read() -> None:
    got = convert.pool_changes(request("metadata", metadata={"a": "1"}, start_task=start("x"),
                                       target_nodes=9))
    assert (got.fields, got.metadata) == ({"metadata"}, {"a": "1"})
    # A bad value in a field the mask does not name is ignored, as AIP-134 says.
    assert convert.pool_changes(request("metadata", start_task=start(""))).fields == {"metadata"}
    every = convert.pool_changes(request("*", start_task=start("true"),
                                         application_package_references=[package("tool", "1")]))
    assert every.fields == set(POOL_UPDATABLE)
    assert (every.app_packages, every.metadata) == ((("tool", "1"),), {})
    assert task_pb2.StartTask.FromString(must(every.start_task)).command_line == "true"
    cleared = convert.pool_changes(request("start_task"))
    assert (cleared.fields, cleared.start_task) == ({"start_task"}, None)


@pytest.mark.parametrize(("req", "field"), [
    (request(), "update_mask"),
    (request("metadata", "target_nodes"), "update_mask.paths[1]"),
    (request("node_fill_type"), "update_mask.paths[0]"),
    (request("start_task", start_task=start("")), "pool.start_task.command_line"),
    (request("start_task", start_task=task_pb2.StartTask(command_line="true",
                                                         max_task_retry_count=500)),
     "pool.start_task.max_task_retry_count"),
    (request("application_package_references",
             application_package_references=[package("a"), package("A")]),
     "pool.application_package_references[1].application_id"),
    (request("application_package_references",
             application_package_references=[package(f"a{i}") for i in range(11)]),
     "pool.application_package_references"),
    (request("metadata", metadata={"": "x"}), "pool.metadata"),
    (request("metadata", name="pools/other"), "pool.name"),
    (request("metadata", if_match="x" * 300), "if_match"),
])
def test_a_bad_request_names_its_field(req: pool_pb2.UpdatePoolRequest, field: str) -> None:
    with pytest.raises(ShoalError) as e:
        convert.pool_changes(req)
    assert (e.value.code, e.value.reason, e.value.field) == (
        Code.INVALID_ARGUMENT, "INVALID_ARGUMENT", field)
    assert e.value.message.startswith(f"{field}: ")


def test_an_unknown_path_is_named_with_the_paths_there_are() -> None:
    with pytest.raises(ShoalError) as e:
        convert.pool_changes(request("task_slots_per_node"))
    assert "'task_slots_per_node' cannot be updated" in e.value.message
    assert "application_package_references" in e.value.message


# -- the rule ---------------------------------------------------------------------------------


def pool(**kw: object) -> Pool:
    base = Pool(account=ACCT, id="p", target_nodes=1, task_slots_per_node=1, join_token="jt",
                create_time=1.0, state_transition_time=1.0, pk=7, update_time=1.0)
    return Pool(**{**base.__dict__, **kw})  # type: ignore[arg-type]


def test_an_update_moves_the_etag_and_one_that_changes_nothing_does_not() -> None:
    p = pool(metadata={"a": "1"})
    assert p.etag == '"7.1"'
    new = must(updated(p, PoolChanges(frozenset({"metadata"}), metadata={"a": "2"}), "", 5.0))
    assert (new.metadata, new.revision, new.update_time, new.etag) == ({"a": "2"}, 2, 5.0, '"7.2"')
    assert updated(p, PoolChanges(frozenset({"metadata"}), metadata={"a": "1"}), p.etag, 5.0) is None


def test_a_stale_etag_or_a_deleting_pool_is_refused() -> None:
    change = PoolChanges(frozenset({"metadata"}), metadata={"a": "2"})
    with pytest.raises(ShoalError) as e:
        updated(pool(revision=3), change, '"7.2"', 5.0)
    assert (e.value.code, e.value.reason) == (Code.FAILED_PRECONDITION, "CONDITION_NOT_MET")
    assert '"7.3"' in e.value.message
    with pytest.raises(ShoalError) as e:
        updated(pool(state=PoolState.DELETING), change, "", 5.0)
    assert e.value.reason == "POOL_BEING_DELETED"
    # Without quotes, as a shell leaves it, or `*`: it matches.
    assert updated(pool(), change, "7.1", 5.0) is not None
    assert updated(pool(), change, "*", 5.0) is not None


# -- the API ----------------------------------------------------------------------------------


async def get(client: Client, pool_id: str) -> pool_pb2.Pool:
    return await client.GetPool(pool_pb2.GetPoolRequest(name=f"pools/{pool_id}"))


async def update(client: Client, pool_id: str, *paths: str, if_match: str = "",
                 **values: object) -> pool_pb2.Pool:
    return await client.UpdatePool(pool_pb2.UpdatePoolRequest(
        name=f"pools/{pool_id}", pool=pool_pb2.Pool(**values),  # type: ignore[arg-type]
        update_mask=FieldMask(paths=list(paths)), if_match=if_match))


async def test_an_update_changes_what_the_mask_names_and_the_etag(client: Client) -> None:
    created = await client.CreatePool(pool_pb2.CreatePoolRequest(pool_id="p", pool=pool_pb2.Pool(
        metadata={"team": "a"}, start_task=start("true"),
        application_package_references=[package("tool", "1")])))
    assert created.etag.startswith('"') and created.HasField("update_time")
    got = await update(client, "p", "metadata", "application_package_references",
                       if_match=created.etag, metadata={"team": "b"},
                       start_task=start("ignored: not in the mask"))
    assert dict(got.metadata) == {"team": "b"} and list(got.application_package_references) == []
    assert got.start_task.command_line == "true" and got.etag != created.etag
    assert got.update_time.ToNanoseconds() >= created.update_time.ToNanoseconds()
    assert await get(client, "p") == got
    # `*` sets all three: an unset start task removes it.
    every = await update(client, "p", "*", if_match=got.etag.strip('"'),
                         application_package_references=[package("tool")])
    assert not every.HasField("start_task") and dict(every.metadata) == {}
    assert [r.application_id for r in every.application_package_references] == ["tool"]
    # The same values again change nothing: the etag stays.
    again = await update(client, "p", "*", if_match="*",
                         application_package_references=[package("tool")])
    assert again.etag == every.etag


async def test_a_stale_etag_changes_nothing(client: Client) -> None:
    read = await client.create("p")
    mine = await update(client, "p", "metadata", if_match=read.etag, metadata={"x": "1"})
    e = await rpc_error(update(client, "p", "metadata", "start_task", if_match=read.etag,
                               metadata={"x": "2"}, start_task=start("true")))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc.error_info(e)[0] == "CONDITION_NOT_MET" and mine.etag in (e.details() or "")
    now = await get(client, "p")
    assert (dict(now.metadata), now.HasField("start_task"), now.etag) == (
        {"x": "1"}, False, mine.etag)


async def test_a_bad_mask_names_the_field_and_changes_nothing(client: Client) -> None:
    before = await client.create("p")
    e = await rpc_error(update(client, "p", "metadata", "target_nodes", metadata={"a": "1"},
                               target_nodes=5))
    assert (e.code(), rpc.error_info(e)) == (
        grpc.StatusCode.INVALID_ARGUMENT, ("INVALID_ARGUMENT", "update_mask.paths[1]"))
    assert "start_task" in (e.details() or "")  # the paths there are
    e = await rpc_error(update(client, "p"))
    assert rpc.error_info(e) == ("INVALID_ARGUMENT", "update_mask")
    assert await get(client, "p") == before


async def test_state_and_target_changes_move_the_etag(client: Client) -> None:
    first = await client.create("p")
    same = await client.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p", target_nodes=0))
    assert same.etag == first.etag  # nothing changed
    resized = await client.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p", target_nodes=1))
    assert resized.etag != first.etag
    e = await rpc_error(update(client, "p", "metadata", if_match=first.etag, metadata={"a": "1"}))
    assert rpc.error_info(e)[0] == "CONDITION_NOT_MET"
    await client.DeletePool(pool_pb2.DeletePoolRequest(name="pools/p"))
    deleting = await get(client, "p")
    assert deleting.state == pool_pb2.Pool.DELETING and deleting.etag != resized.etag
    e = await rpc_error(update(client, "p", "metadata", metadata={"a": "1"}))
    assert (e.code(), rpc.error_info(e)[0]) == (
        grpc.StatusCode.FAILED_PRECONDITION, "POOL_BEING_DELETED")
    assert dict((await get(client, "p")).metadata) == {}


async def test_an_unknown_or_another_accounts_pool_is_not_found(
    client: Client, other_client: Client
) -> None:
    e = await rpc_error(update(client, "nope", "metadata"))
    assert (e.code(), rpc.error_info(e)[0]) == (grpc.StatusCode.NOT_FOUND, "POOL_NOT_FOUND")
    await client.create("mine")
    e = await rpc_error(update(other_client, "mine", "metadata", metadata={"a": "1"}))
    assert rpc.error_info(e)[0] == "POOL_NOT_FOUND"
    assert dict((await get(client, "mine")).metadata) == {}


async def test_a_pool_created_again_never_matches_an_old_etag(client: Client) -> None:
    old = await client.create("p")
    await client.DeletePool(pool_pb2.DeletePoolRequest(name="pools/p"))

    async def recreated() -> pool_pb2.Pool | None:
        try:
            return await client.create("p")
        except grpc.aio.AioRpcError:
            return None  # still being deleted

    again = await eventually(recreated, "the pool to be deleted and created again")
    assert again.etag != old.etag
    e = await rpc_error(update(client, "p", "metadata", if_match=old.etag, metadata={"a": "1"}))
    assert rpc.error_info(e)[0] == "CONDITION_NOT_MET"


# -- the effect: nodes that join or reboot after the update get it ----------------------------


async def test_a_new_start_task_reaches_nodes_that_join_or_reboot_not_those_running(
    client: Client, config: ClusterConfig, fake_scheduler: FakeScheduler
) -> None:
    await client.CreatePool(pool_pb2.CreatePoolRequest(pool_id="p", pool=pool_pb2.Pool(
        target_nodes=1, start_task=start("echo old"))))
    (old,) = await registered(client, config, "p", 1)
    fake_scheduler.connect(ACCT, "p", old)
    assert registrations(config, ACCT, "p", old)[0]["start_task"] == "echo old"

    await update(client, "p", "start_task", start_task=start("echo new"))
    # The running node is left alone: it registers no second time.
    await client.ResizePool(pool_pb2.ResizePoolRequest(name="pools/p", target_nodes=2))
    ids = await registered(client, config, "p", 2)
    (joined,) = [i for i in ids if i != old]
    assert registrations(config, ACCT, "p", joined)[0]["start_task"] == "echo new"
    assert len(registrations(config, ACCT, "p", old)) == 1

    # A reboot runs the agent again: it gets the pool as it is now.
    await client.RebootNode(pool_pb2.RebootNodeRequest(name=f"pools/p/nodes/{old}"))
    await eventually(lambda: len(registrations(config, ACCT, "p", old)) == 2,
                     "the rebooted node to register again")
    assert registrations(config, ACCT, "p", old)[1]["start_task"] == "echo new"
    assert {short(n.name) for n in await client.nodes("p")} == {old, joined}


# -- a database from before etags -------------------------------------------------------------


async def test_a_database_from_before_updates_opens_and_its_pools_update(tmp_path: Path) -> None:
    old_schema = "\n".join(
        line for line in SCHEMA.splitlines()
        if not line.strip().startswith(("pk ", "revision", "update_time"))
    )
    path = tmp_path / "pm.db"
    async with aiosqlite.connect(path) as db:
        await db.executescript(old_schema)
        for i, pid in enumerate(["a", "b"]):
            await db.execute(
                "INSERT INTO pools (account, id, id_lower, display_name, target_nodes,"
                " task_slots_per_node, provider, state, metadata, create_time,"
                " state_transition_time, join_token, resize_option)"
                f" VALUES ('acct','{pid}','{pid}','',0,1,'local','ACTIVE','{{}}',1.0,2.0,"
                f"'jt_{i}','REQUEUE')")
        await db.commit()
    store = await Store.open(path)
    try:
        a, b = must(await store.get_pool("acct", "a")), must(await store.get_pool("acct", "b"))
        assert (a.revision, a.update_time) == (1, 2.0)  # its last change: its state's
        assert a.pk and b.pk and a.etag != b.etag
        changed = must(updated(a, PoolChanges(frozenset({"metadata"}), metadata={"k": "v"}),
                               a.etag, 3.0))
        assert await store.update_pool(changed, a.revision)
        assert not await store.update_pool(changed, a.revision)  # decided on an older pool
        assert must(await store.get_pool("acct", "a")).metadata == {"k": "v"}
        # A pool created now never takes the pk of one from before.
        new = must(await store.insert_pool(Pool(
            account="acct", id="c", target_nodes=0, task_slots_per_node=1, join_token="jt_c",
            create_time=4.0, state_transition_time=4.0)))
        assert new.pk > max(a.pk, b.pk)
    finally:
        await store.close()
    again = await Store.open(path)  # opening again migrates nothing twice
    try:
        assert must(await again.get_pool("acct", "a")).etag == changed.etag
    finally:
        await again.close()
