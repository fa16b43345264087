"""Bad input through the public endpoint: the right status, a message naming the field, an
ErrorInfo reason — and nothing changes. Accounts are walls: another account's ids are NOT_FOUND."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.accounts import create_account
from shoal import Client, ShoalError
from shoal.client import TaskSpec
from shoal.suite import LocalSuite

BAD_IDS = ["a/b", "..", "a\x00b", "x" * 65, "", "sp ace"]


def error_of(call: Callable[[], Any]) -> ShoalError:
    with pytest.raises(ShoalError) as info:
        call()
    return info.value


def snapshot(c: Client) -> tuple[list[str], list[str], list[str]]:
    return (
        [p.name for p in c.list_pools()],
        [j.name for j in c.list_jobs()],
        [t.name for j in c.list_jobs() for t in c.list_tasks(j.name.split("/")[1])],
    )


@pytest.fixture(scope="module")
def world(shared_suite: LocalSuite) -> Client:
    c = shared_suite.client()
    c.create_pool("p", target_nodes=0)
    c.create_job("j", pool_id="p")
    c.add_task("j", "t", "echo hi")
    return c


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_refused_and_named(world: Client, bad: str) -> None:
    before = snapshot(world)
    for call, field in [
        (lambda: world.create_pool(bad, target_nodes=0), "pool_id"),
        (lambda: world.create_job(bad, pool_id="p"), "job_id"),
        (lambda: world.add_task("j", bad, "echo x"), "task_id"),
        (lambda: world.add_tasks("j", [TaskSpec("ok1", "echo"), TaskSpec(bad, "echo")]),
         "requests[1].task_id"),
    ]:
        e = error_of(call)
        assert e.code.name == "INVALID_ARGUMENT", (bad, field, e)
        assert e.field == field and field in e.message, (bad, e.message)
        assert e.reason
    assert snapshot(world) == before


@pytest.mark.parametrize("bad", ["a/b", "..", "x" * 65])
def test_bad_ids_in_names_of_reads(world: Client, bad: str) -> None:
    for call in (lambda: world.get_pool(bad), lambda: world.get_job(bad),
                 lambda: world.get_task("j", bad)):
        e = error_of(call)
        assert e.code.name == "INVALID_ARGUMENT" and e.field == "name", e


def test_unknown_ids_are_not_found(world: Client) -> None:
    assert error_of(lambda: world.get_pool("nope")).reason == "POOL_NOT_FOUND"
    assert error_of(lambda: world.get_job("nope")).reason == "JOB_NOT_FOUND"
    assert error_of(lambda: world.get_task("j", "nope")).reason == "TASK_NOT_FOUND"
    assert error_of(lambda: world.add_task("nope", "t2", "echo")).reason == "JOB_NOT_FOUND"
    e = error_of(lambda: world.create_job("j2", pool_id="nope"))
    assert (e.code.name, e.reason, e.field) == ("NOT_FOUND", "POOL_NOT_FOUND", "job.pool")


def test_duplicate_ids_ignoring_case(world: Client) -> None:
    before = snapshot(world)
    assert error_of(lambda: world.create_pool("P", target_nodes=0)).code.name == "ALREADY_EXISTS"
    assert error_of(lambda: world.create_job("J", pool_id="p")).reason == "JOB_ALREADY_EXISTS"
    assert error_of(lambda: world.add_task("j", "T", "echo")).reason == "TASK_ALREADY_EXISTS"
    e = error_of(lambda: world.add_tasks("j", [{"id": "n1", "command_line": "echo"},
                                               {"id": "N1", "command_line": "echo"}]))
    assert (e.reason, e.field) == ("DUPLICATE_TASK_ID", "requests[1].task_id")
    assert snapshot(world) == before


def test_negative_counts_and_empty_command_lines(world: Client) -> None:
    before = snapshot(world)
    cases = [
        (lambda: world.create_pool("q", target_nodes=-1), "pool.target_nodes"),
        (lambda: world.create_pool("q", target_nodes=1, task_slots_per_node=-2), "pool.task_slots_per_node"),
        (lambda: world.resize_pool("p", -3), "target_nodes"),
        (lambda: world.add_task("j", "t3", "echo", max_task_retry_count=-1),
         "task.constraints.max_task_retry_count"),
        (lambda: world.add_task("j", "t3", "echo", max_wall_clock_time=-5),
         "task.constraints.max_wall_clock_time"),
        (lambda: world.add_task("j", "t3", ""), "task.command_line"),
        (lambda: world.add_task("j", "t3", "   "), "task.command_line"),
        (lambda: world.add_task("j", "t3", "echo 'unbalanced"), "task.command_line"),
        (lambda: world.add_task("j", "t3", "echo", environment={"SHOAL_JOB_ID": "x"}),
         "task.environment['SHOAL_JOB_ID']"),
        (lambda: world.create_job("k", pool_id="p", priority=5000), "job.priority"),
        (lambda: list(world.list_tasks("j", page_size=-1)), "page_size"),
    ]
    for call, field in cases:
        e = error_of(call)
        assert (e.code.name, e.field) == ("INVALID_ARGUMENT", field), (field, e)
        assert field in e.message
    assert snapshot(world) == before
    assert world.get_pool("p").target_nodes == 0


def test_wrong_account_key_is_unauthenticated(shared_suite: LocalSuite, world: Client) -> None:
    bad = Client(shared_suite.endpoint, "shoal_not-a-key")
    for call in (lambda: list(bad.list_pools()), lambda: bad.create_pool("x", target_nodes=0)):
        e = error_of(call)
        assert (e.code.name, e.reason) == ("UNAUTHENTICATED", "INVALID_ACCOUNT_KEY")
    assert "x" not in [p.name for p in world.list_pools()]


def test_accounts_do_not_see_each_other(shared_suite: LocalSuite, world: Client) -> None:
    key = create_account(shared_suite.config.db_path("gateway"), "other", shared_suite.config.secret)
    other = Client(shared_suite.endpoint, key)
    assert error_of(lambda: other.get_pool("p")).code.name == "NOT_FOUND"
    assert error_of(lambda: other.get_job("j")).code.name == "NOT_FOUND"
    assert error_of(lambda: other.create_job("j", pool_id="p")).reason == "POOL_NOT_FOUND"
    assert list(other.list_pools()) == [] and list(other.list_jobs()) == []
    # Ids are per account: the same id is free in another account.
    other.create_pool("p", target_nodes=0)
    assert world.get_pool("p").target_nodes == 0
    other.delete_pool("p")
