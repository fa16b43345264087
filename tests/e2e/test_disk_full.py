"""Full disks. Under a node: the task that filled it fails saying so, its result is still
written and delivered (the outbox's reserve), the node takes no tasks while it is short of
space (UNUSABLE with a DISK_FULL error, and `task why` says so) and takes them again once space
is back. Under a service: writes are refused with RESOURCE_EXHAUSTED/DISK_FULL, reads go on,
the process stays up, and once space is freed writes work again with nothing accepted before
lost. Real service processes on a real small filesystem (a tmpfs mounted for the test; the
test is skipped, saying why, where mounting is not allowed)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from shoal.errors import ShoalError, StatusCode
from shoal.suite import LocalSuite
from shoal.v1 import pool_pb2, task_pb2
from tests.disk_support import fill_disk, small_filesystem
from tests.support import FAST, print_logs, start_suite, wait_for

T = TypeVar("T")


def task_id(t: task_pb2.Task) -> str:
    return t.name.rsplit("/", 1)[1]


def answered(call: Callable[[], T]) -> T | None:
    """The call's answer, or None while the service it needs is still coming back."""
    try:
        return call()
    except ShoalError as e:
        if e.code != StatusCode.UNAVAILABLE:
            raise
        return None


def test_a_full_disk_refuses_writes_keeps_reads_and_recovers(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "fs", "24m") as fs:
        state = fs / "state"
        state.mkdir()
        # The logs stay off the small disk: this is about the databases.
        (tmp_path / "logs").mkdir()
        (state / "logs").symlink_to(tmp_path / "logs")
        s = start_suite(state)
        try:
            pid = s.pid("job-scheduler")
            with s.client(timeout=20) as c:
                c.create_pool("p", target_nodes=0)
                c.create_job("j", pool_id="p")
                filler = fill_disk(fs, leave=2 << 20)  # room for a few adds
                added: list[str] = []
                refused: ShoalError | None = None
                command = "/bin/echo " + "x" * 2000
                for n in range(400):  # 400 × 100 tasks of 2 kB: far more than the disk holds
                    ids = [f"t{n}-{i}" for i in range(100)]
                    try:
                        c.add_tasks("j", [{"id": i, "command_line": command} for i in ids])
                    except ShoalError as e:
                        if e.code == StatusCode.DEADLINE_EXCEEDED:
                            continue  # durable or not, it is checked below
                        refused = e
                        break
                    added += ids
                assert refused is not None, "the disk never filled"
                assert added, "no add went through before the disk filled"
                assert refused.code == StatusCode.RESOURCE_EXHAUSTED, refused
                assert refused.reason == "DISK_FULL" and "disk is full" in refused.message

                # Small writes go on into what the database's log has left, until a commit
                # finds no room: it waits for space (its caller's deadline passes) and every
                # write after it is refused at once.
                priority = None
                with s.client(timeout=3) as quick:
                    for n in range(1, 5000):
                        try:
                            quick.update_job("j", priority=n % 1000)
                        except ShoalError as e:
                            if e.code == StatusCode.DEADLINE_EXCEEDED:
                                priority = n % 1000
                                continue
                            assert e.reason == "DISK_FULL", e
                            break
                    else:
                        pytest.fail("no commit ever waited for space")
                assert priority is not None, "a commit was refused, not kept"
                with pytest.raises(ShoalError) as caught:
                    c.add_task("j", "while-full", "/bin/true")
                assert caught.value.reason == "DISK_FULL"

                # Reads still answer, and the process is the same one.
                assert c.get_job("j").name == "jobs/j"
                listed = {task_id(t) for t in c.list_tasks("j")}
                assert set(added) <= listed
                assert s.pid("job-scheduler") == pid

                filler.unlink()

                def a_write_goes_through() -> bool:
                    try:
                        c.add_task("j", "after", "/bin/true")
                    except ShoalError as e:
                        assert e.reason == "DISK_FULL", e
                        return False
                    return True

                wait_for(a_write_goes_through, "a write once space is back", timeout=60)
                assert s.pid("job-scheduler") == pid
                listed = {task_id(t) for t in c.list_tasks("j")}
                assert set(added) | {"after"} <= listed
                counts = c.get_job("j").task_counts
                assert c.get_job("j").priority == priority  # the commit that waited
                assert counts.active == len(listed)

            # Memory and file agree: a restarted scheduler, built from the file, holds the same.
            s.restart("job-scheduler")
            with s.client() as c:
                job = wait_for(lambda: answered(lambda: c.get_job("j")), "the restarted scheduler")
                assert job.task_counts == counts
                assert job.priority == priority
                assert {task_id(t) for t in c.list_tasks("j")} == listed
        except BaseException:
            print_logs(s)
            raise
        finally:
            s.stop()


MIN_FREE = 8 << 20
"""The floor of the node test: its node root's filesystem is 40 MiB."""


def test_a_task_that_fills_its_node_fails_saying_so_and_the_node_waits_for_space(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with small_filesystem(state / "nodes", "40m") as nodes:
        s = LocalSuite(state, gateway_port=0, pool_manager_port=0, scheduler_port=0,
                       stager_port=0, timing=replace(FAST, node_min_free_bytes=MIN_FREE))
        s.start()
        try:
            with s.client() as c:
                c.create_pool("p", target_nodes=1)
                (node,) = wait_for(lambda: [n for n in c.list_nodes("p")
                                            if n.state == pool_pb2.Node.IDLE], "an idle node")
                c.create_job("j", pool_id="p")
                # Writes until the disk is full; its stderr has no room to say so.
                c.add_task("j", "fill", "sh -c 'head -c 100000000 /dev/zero > big'")
                t = c.wait_task("j", "fill", timeout=60)
                assert t.execution_info.exit_code != 0
                f = t.execution_info.failure_info
                assert f.code == "DISK_FULL" and f.category == task_pb2.FailureInfo.SERVER_ERROR
                assert "disk was full" in f.message

                # The filler's directory goes first (the node reclaims ended attempts while
                # short of space): only then is there room to fill on purpose.
                wait_for(lambda: shutil.disk_usage(nodes).free >= MIN_FREE,
                         "the node to reclaim the filler's space")
                # Space held by someone else: the node takes no tasks, and says why.
                filler = fill_disk(nodes, leave=MIN_FREE // 2)
                short = wait_for(lambda: [n for n in c.list_nodes("p")
                                          if n.state == pool_pb2.Node.UNUSABLE], "a short node")
                assert [e.code for e in short[0].errors] == ["DISK_FULL"]
                c.add_task("j", "after", "/bin/true")
                why = wait_for(lambda: (w := c.explain_task("j", "after")).reasons
                               and "NODE_DISK_FULL" in w.reasons and w, "task why")
                node_id = node.name.rsplit("/", 1)[1]
                assert any(f"node {node_id} is short of disk space" in d for d in why.details)
                assert c.get_task("j", "after").state == task_pb2.Task.ACTIVE

                filler.unlink()
                done = c.wait_task("j", "after", timeout=60)
                assert done.execution_info.exit_code == 0
                assert not done.execution_info.failure_info.code
                back = c.get_node("p", node_id)
                assert back.state in (pool_pb2.Node.IDLE, pool_pb2.Node.RUNNING), back
                assert not back.errors
        except BaseException:
            print_logs(s)
            raise
        finally:
            s.stop()
