"""Faults against the real processes: a node's agent SIGKILLed mid-job, the scheduler
SIGKILLed mid-job and restarted, other services restarted. Nothing is lost, nothing done
twice."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from chaos import recording
from services.common.procfs import alive
from shoal.client import Client
from shoal.errors import ShoalError, StatusCode
from shoal.suite import LocalSuite
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.cli.helpers import serving
from tests.support import PY, agent_pid, wait_for

OWNERS = ("pool-manager", "job-scheduler", "storage-stager")
"""The services behind the gateway, as its health names them."""


def recording_job(c: Client, runs: Path, n: int, seconds: float, slots: int = 2,
                  **job: str) -> list[str]:
    """Pool "p" of 2 idle nodes, and job "j" on it with `n` tasks that record each run of
    themselves in `runs` (chaos.recording) and sleep `seconds`; their ids."""
    c.create_pool("p", target_nodes=2, task_slots_per_node=slots)
    wait_for(lambda: len([n for n in c.list_nodes("p") if n.state == pool_pb2.Node.IDLE]) == 2,
             "2 idle nodes")
    c.create_job("j", pool_id="p", **job)
    runs.mkdir()
    cmd = recording.command(runs, seconds, PY)
    ids = [f"t{i:02}" for i in range(n)]
    c.add_tasks("j", [{"id": t, "command_line": cmd} for t in ids])
    return ids


def test_sigkilled_agent_tasks_finish_elsewhere_requeued_not_retried(
    suite: LocalSuite, tmp_path: Path
) -> None:
    c = suite.client()
    runs = tmp_path / "runs"
    ids = recording_job(c, runs, 4, 5.0)
    running = wait_for(
        lambda: (ts := list(c.list_tasks("j", state="running")))
        and len(ts) == 4 and all(t.state == task_pb2.Task.RUNNING for t in ts)
        and all(recording.read(runs, t.name.rsplit("/", 1)[1]).starts for t in ts) and ts,
        "4 tasks running their command")
    victim = running[0].execution_info.node
    victim_id = victim.rsplit("/", 1)[1]
    on_victim = {t.name.rsplit("/", 1)[1] for t in running if t.execution_info.node == victim}
    os.kill(agent_pid(victim_id), signal.SIGKILL)
    job = c.wait_job("j", timeout=90)
    assert (job.task_counts.succeeded, job.task_counts.failed) == (4, 0)
    # Each task ran its command to the end exactly once: the killed node's processes were
    # killed, and gone before their tasks started again elsewhere (each new run checked that
    # no process of the earlier one was alive), and the node's root was not deleted under
    # them (they would have seen their directory vanish).
    for tid in ids:
        r = recording.read(runs, tid)
        assert len(r.ends) == 1, (tid, r)
        assert not r.overlapped, (tid, r)
        assert r.root_gone == [], (tid, r)
        assert len(r.starts) == (2 if tid in on_victim else 1), (tid, r)
    for t in c.list_tasks("j"):
        info = t.execution_info
        tid = t.name.rsplit("/", 1)[1]
        if tid in on_victim:
            assert (info.requeue_count, info.retry_count) == (1, 0), tid
            assert info.node != victim
            full = c.get_task("j", tid).execution_info
            assert [a.node for a in full.previous_attempts] == [victim]
            assert full.previous_attempts[0].failure_info.code in ("NODE_LOST", "NODE_REMOVED")
        else:
            assert (info.requeue_count, info.retry_count) == (0, 0), tid
    # The pool heals: the dead node is replaced by a new one.
    wait_for(lambda: (ns := list(c.list_nodes("p"))) and len(ns) == 2
             and victim not in {n.name for n in ns}
             and all(n.state == pool_pb2.Node.IDLE for n in ns), "a replacement node")


def test_nodes_the_scheduler_stops_hearing_kill_their_tasks_before_they_are_requeued(
    suite: LocalSuite, tmp_path: Path
) -> None:
    # A frozen scheduler is, to its agents, a network cut that leaves their connections up:
    # nothing fails, nothing is heard. It requeues the tasks of nodes silent for lost_after;
    # the agents must have killed them by then (self-fencing), or they would run twice.
    c = suite.client()
    runs = tmp_path / "runs"
    ids = recording_job(c, runs, 4, 10.0)
    first = wait_for(lambda: all(recording.read(runs, t).starts for t in ids)
                     and [recording.read(runs, t).starts[0][2] for t in ids], "4 tasks to start")
    scheduler = suite.pid("job-scheduler")
    assert scheduler is not None
    os.kill(scheduler, signal.SIGSTOP)
    try:
        wait_for(lambda: not any(alive(p) for p in first), "the agents to fence their tasks",
                 timeout=30, every=0.05)
    finally:
        os.kill(scheduler, signal.SIGCONT)
    job = c.wait_job("j", timeout=120)
    assert (job.task_counts.succeeded, job.task_counts.failed) == (4, 0)
    for t in ids:
        r = recording.read(runs, t)
        assert (len(r.starts), len(r.ends), r.overlapped) == (2, 1, False), (t, r)
        info = c.get_task("j", t).execution_info
        assert (info.requeue_count, info.retry_count) == (1, 0), t


def completed_job(c: Client, job_id: str) -> job_pb2.Job | None:
    """The job once completed; None before, and while the gateway has not reconnected to a
    restarted scheduler yet (UNAVAILABLE: gRPC's reconnect backoff)."""
    try:
        job = c.get_job(job_id)
    except ShoalError as e:
        if e.code != StatusCode.UNAVAILABLE:
            raise
        return None
    return job if job.state == job_pb2.Job.COMPLETED else None


@pytest.mark.timing(reconnect_grace=60.0)
def test_sigkilled_scheduler_restarts_and_nothing_is_lost_or_run_twice(
    suite: LocalSuite, tmp_path: Path
) -> None:
    # The nodes get a production-like grace to come back after the restart: with the short
    # one (4 s), a machine under heavy load took longer to restart the scheduler and
    # reconnect an agent, the node was given up, and a task it had finished but not yet
    # reported ran again elsewhere — as designed for a node that is gone, not what this
    # test is about. Nodes that come back end the grace early, so it costs nothing here.
    c = suite.client()
    runs = tmp_path / "runs"
    recording_job(c, runs, 40, 0.3, slots=4, on_all_tasks_complete="terminate_job")
    wait_for(lambda: c.get_job("j").task_counts.completed >= 8, "some tasks to complete")
    suite.kill("job-scheduler")
    done_before = {p.name for p in runs.iterdir() if recording.read(runs, p.name).ends}
    suite.restart("job-scheduler")
    job = wait_for(lambda: (j := completed_job(c, "j")) is not None and j,
                   "the job to complete after the restart", timeout=120)
    assert (job.task_counts.succeeded, job.task_counts.failed) == (40, 0)
    assert len(list(runs.iterdir())) == 40
    for name in done_before:
        assert len(recording.read(runs, name).starts) == 1, f"{name} ran again"
    for t in c.list_tasks("j"):
        assert t.execution_info.retry_count == 0


def test_state_survives_restarts_of_the_other_services(suite: LocalSuite) -> None:
    c = suite.client()
    c.create_pool("p", target_nodes=1)
    c.create_job("j", pool_id="p")
    c.add_task("j", "a", "echo one")
    c.wait_job("j", timeout=60)
    for service in ("gateway", "pool-manager", "storage-stager", "job-scheduler"):
        suite.kill(service)
        suite.restart(service)
    # Each restarted service is healthy on its own port; the gateway reaches it again within
    # its channel's reconnect backoff (at most 2 s), and its health says when.
    wait_for(lambda: all(serving(suite.endpoint, s) for s in OWNERS),
             "the gateway to reach the restarted services", 30)
    c = suite.client()
    assert c.get_pool("p").target_nodes == 1
    assert c.get_task("j", "a").execution_info.result == task_pb2.TaskExecutionInfo.SUCCESS
    c.add_task("j", "b", "echo two")
    wait_for(lambda: c.get_task("j", "b").state == task_pb2.Task.COMPLETED, "task b after restarts")
    assert c.read_task_file("j", "b", "stdout.txt") == b"two\n"
    assert len(list(c.list_nodes("p"))) == 1
