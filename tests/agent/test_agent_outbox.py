"""The durable outbox on a real directory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agent.outbox import RESERVE_BYTES, Outbox, OutboxWriter
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2
from tests.disk_support import fill_disk, small_filesystem


def result(attempt_id: str, end: int, exit_code: int | None = 0) -> agent_pb2.TaskResult:
    r = agent_pb2.TaskResult(attempt_id=attempt_id)
    r.end_time.FromSeconds(end)
    if exit_code is not None:
        r.exit_code = exit_code
    return r


def segments(d: Path) -> list[Path]:
    """The outbox's result files (beside them: its reserve)."""
    return [p for p in d.iterdir() if p.name != ".reserve"]


def test_results_survive_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    failed = result("a2", 20, exit_code=None)
    failed.failure_info.CopyFrom(
        task_pb2.FailureInfo(category=task_pb2.FailureInfo.USER_ERROR, code="COMMAND_NOT_FOUND")
    )
    box.put_many([result("a3", 30, 4), failed])
    box.put(result("a1", 10))

    again = Outbox(tmp_path / "outbox")
    loaded = again.load()
    assert [r.attempt_id for r in loaded] == ["a1", "a2", "a3"]  # oldest end first
    assert loaded[1] == failed
    assert not loaded[1].HasField("exit_code")
    assert loaded[2].exit_code == 4
    assert again.ids() == {"a1", "a2", "a3"}


def test_writes_leave_no_partial_files(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    box.put(result("a1", 1))
    assert sorted(p.name for p in box.dir.iterdir()) == [".reserve", "000000000001.results"]
    # A write interrupted by a crash leaves only its tmp file: never loaded, cleaned up.
    (box.dir / ".000000000002.results.tmp").write_bytes(b"\x00\x00\x00\x03\x0a\x02a")
    assert [r.attempt_id for r in Outbox(box.dir).load()] == ["a1"]
    assert sorted(p.name for p in box.dir.iterdir()) == [".reserve", "000000000001.results"]


def test_rewriting_a_result_replaces_it(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put(result("a1", 1, 1))
    box.put(result("a1", 1, 2))
    [r] = Outbox(tmp_path).load()
    assert r.exit_code == 2


def test_acknowledged_results_are_deleted_for_good(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put_many([result("a1", 1), result("a2", 2)])
    box.put(result("a3", 3))
    assert len(segments(tmp_path)) == 2  # one file per batch, not per result
    box.remove_many(["a1", "a3", "never-there"])
    assert box.ids() == {"a2"}
    assert len(segments(tmp_path)) == 1  # a3's batch is gone; a1 shares a2's
    # After a restart a1 comes back with its batch-mate: resending an acknowledged result
    # is harmless (the scheduler acknowledges it again and ignores it); losing one is not.
    assert [r.attempt_id for r in Outbox(tmp_path).load()] == ["a1", "a2"]
    box.remove_many(["a2"])
    assert segments(tmp_path) == [] and Outbox(tmp_path).load() == []


def test_an_unreadable_file_is_set_aside_not_resent(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put(result("a1", 1))
    (tmp_path / "000000000009.results").write_bytes(b"\x00\x00\x00\x10\xff not a protobuf")
    assert [r.attempt_id for r in box.load()] == ["a1"]
    assert (tmp_path / "000000000009.results.corrupt").exists()
    assert box.ids() == {"a1"}


@pytest.mark.parametrize("attempt_id", ["../escape", "a/b", "", "x" * 65])
def test_an_attempt_id_cannot_name_a_path_outside(tmp_path: Path, attempt_id: str) -> None:
    box = Outbox(tmp_path / "outbox")
    with pytest.raises(ValueError, match="attempt_id"):
        box.put(agent_pb2.TaskResult(attempt_id=attempt_id))
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "outbox", tmp_path / "outbox" / ".reserve"]


async def test_concurrent_writes_are_all_durable(tmp_path: Path) -> None:
    writer = OutboxWriter(Outbox(tmp_path))
    await asyncio.gather(*(writer.put(result(f"a{i}", i)) for i in range(50)))
    assert Outbox(tmp_path).ids() == {f"a{i}" for i in range(50)}
    assert len(os.listdir(tmp_path)) < 50  # results that end together share a write
    await writer.remove([f"a{i}" for i in range(25)])
    assert writer.outbox.ids() == {f"a{i}" for i in range(25, 50)}


async def test_a_failed_write_is_reported_to_the_writer(tmp_path: Path) -> None:
    writer = OutboxWriter(Outbox(tmp_path))
    with pytest.raises(ValueError):
        await writer.put(agent_pb2.TaskResult(attempt_id="../x"))
    await writer.put(result("ok", 1))  # the writer still works afterwards
    assert Outbox(tmp_path).ids() == {"ok"}


def test_a_batch_that_repeats_an_attempt_keeps_every_result(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.put_many([result("a", 1, 1), result("a", 1, 2), result("b", 2)])
    assert box.ids() == {"a", "b"}
    loaded = {r.attempt_id: r for r in Outbox(tmp_path).load()}
    assert set(loaded) == {"a", "b"} and loaded["a"].exit_code == 2


def test_a_full_disk_does_not_cost_a_result(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "fs", "16m") as fs:
        box = Outbox(fs / "outbox")
        assert box.reserved
        filler = fill_disk(fs)
        with pytest.raises(OSError):
            (fs / "probe").write_bytes(b"x" * 4096)  # truly full
        box.put_many([result(f"a{i}", i) for i in range(100)])  # into the reserve's room
        assert not box.reserved
        assert [r.attempt_id for r in Outbox(fs / "outbox").load()] == [f"a{i}" for i in range(100)]
        filler.unlink()
        box.put(result("b", 200))
        assert box.reserved  # taken again once there is room
        assert os.stat(fs / "outbox" / ".reserve").st_blocks * 512 >= RESERVE_BYTES
