"""A node's processes tracked outside the agent, and killed after it: real processes, a real
cgroup v2 where this host allows one, the real /proc."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.node_processes import (
    GROUPS,
    RECORD,
    RootBusy,
    RootLock,
    Tracker,
    kill_leftovers,
)
from services.common.procfs import alive
from tests.support import wait_for

# A task that leaves its process group (setsid) and one that drops its environment (env -i):
# between the marker, the recorded group and the cgroup, both must still be found.
ESCAPING = (
    "setsid sleep 300 & echo $! >> {pids}; env -i sleep 301 & echo $! >> {pids}; "
    "echo $$ >> {pids}; exec sleep 302"
)


def _cgroup_usable(tmp: Path) -> bool:
    root = tmp / "probe"
    root.mkdir()
    t = Tracker.begin(root)
    try:
        return t.cgroup is not None
    finally:
        t.close()


@pytest.fixture(params=["cgroup", "process groups"])
def tracked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tracker]:
    if request.param == "cgroup" and not _cgroup_usable(tmp_path):
        pytest.skip("no writable cgroup v2 with cgroup.kill on this host")
    root = tmp_path / "node"
    root.mkdir()
    t = Tracker.begin(root, use_cgroup=request.param == "cgroup")
    assert t.mode == request.param
    yield t
    t.close()


def spawn_escaping(t: Tracker, pids: Path, node_root: Path) -> list[int]:
    env = {"PATH": "/usr/bin:/bin", "SHOAL_NODE_ROOT_DIR": str(node_root)}
    t.spawn(lambda: subprocess.Popen(
        ["/bin/sh", "-c", ESCAPING.format(pids=pids)], start_new_session=True,
        close_fds=True, env=env))
    text = wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 3 and
                    pids.read_text(), "the task and its children to start")
    return [int(p) for p in text.split()]


def test_an_agents_leftovers_are_killed_even_those_that_left_its_group(
    tracked: Tracker, tmp_path: Path
) -> None:
    root = tracked.root
    mine = spawn_escaping(tracked, tmp_path / "pids", root)
    other = subprocess.Popen(["sleep", "300"], start_new_session=True,
                             env={"SHOAL_NODE_ROOT_DIR": str(tmp_path / "another-node")})
    try:
        assert (root / RECORD).exists()
        # The agent died: whoever learns it takes the root's lock and kills what it left.
        with RootLock.acquire(root, timeout=5):
            left = kill_leftovers(root)
        assert left.clean
        assert left.killed >= 3
        # kill_leftovers returns once they are gone: no wait needed here.
        assert [p for p in mine if alive(p)] == []
        assert other.poll() is None
        assert not (root / RECORD).exists() and not (root / GROUPS).exists()
        if tracked.cgroup is not None:
            assert not tracked.cgroup.exists()
    finally:
        other.kill()
        other.wait()


def test_a_recorded_group_whose_leader_is_not_ours_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "node"
    root.mkdir()
    t = Tracker.begin(root, use_cgroup=False)
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True, env={})
    try:
        # As if an earlier life had recorded this pid with another start time (a reused pid).
        (root / GROUPS).write_text(f"{stranger.pid} 1\n")
        with RootLock.acquire(root):
            assert kill_leftovers(root).killed == 0
        assert stranger.poll() is None
        (root / GROUPS).write_text(f"{stranger.pid} 1\n")
        t.close()
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_record_of_an_earlier_boot_names_nothing(tmp_path: Path) -> None:
    root = tmp_path / "node"
    root.mkdir()
    t = Tracker.begin(root, use_cgroup=False)
    proc = t.spawn(lambda: subprocess.Popen(["sleep", "300"], start_new_session=True, env={}))
    try:
        (root / RECORD).write_text('{"boot_id": "an-earlier-boot", "cgroup": null}')
        with RootLock.acquire(root):
            assert kill_leftovers(root).killed == 0
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        t.close()


def _hold(root: str, ready: multiprocessing.synchronize.Event) -> None:
    RootLock.acquire(Path(root))
    ready.set()
    time.sleep(300)


def test_the_root_lock_is_held_by_a_live_agent_and_freed_by_its_death(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), ready))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RootBusy, match="in use by another agent"):
            RootLock.acquire(tmp_path, timeout=0.2)
        assert holder.pid is not None
        os.kill(holder.pid, 9)
        holder.join(10)
        with RootLock.acquire(tmp_path, timeout=5):
            pass
    finally:
        holder.kill()
        holder.join()
