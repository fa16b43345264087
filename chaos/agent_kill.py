"""An agent SIGKILLed mid-task, again and again: does any task run twice, and how soon do its
tasks run elsewhere?

The real suite with its default timings (a node is LOST only after 20 s of silence), a pool of
3 nodes × 2 slots. Each trial adds a job of 4 recording tasks (chaos.recording) that sleep a
few seconds, waits until all 4 run, and SIGKILLs the agent of the node running most of them.
Its tasks' processes keep running in sessions of their own unless something kills them;
the other two nodes have exactly the slots to take them. A trial counts:

- double runs: tasks whose command ran to its end more than once;
- overlaps: a task's new run that began while a process of its earlier run was still alive;
- node roots deleted under a running task (the task saw its directory vanish);
- the time from the kill until every task of the killed node ran again elsewhere (the later
  of their new runs' own start times).

Then the job must end with all 4 tasks succeeded, and the pool get its third node back.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from bench.common import BenchError, running_suite, say, wait_nodes_ready, wait_until
from bench.figures import Outcome, Target, median
from chaos import recording
from shoal.client import Client

POOL = "chaos"
NODES, SLOTS, TASKS = 3, 2, 4
SLEEP = 3.0
"""Seconds each task sleeps: long enough to be killed mid-run, short enough for 20 trials."""
TRIAL_TIMEOUT = 60.0
WITHIN = 2.0
"""The target: a killed node's tasks run elsewhere within this many seconds."""


def agent_pid(node_id: str) -> int:
    """The pid of the node's agent process (`python -m agent ... --node-id ID`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"agent" in argv and b"--node-id" in argv and \
                argv[argv.index(b"--node-id") + 1] == node_id.encode():
            found.append(int(entry.name))
    if len(found) != 1:
        raise BenchError(f"expected one agent process of node {node_id}, found {found}")
    return found[0]


class Trial:
    def __init__(self, client: Client, runs: Path, n: int) -> None:
        self.c = client
        self.job = f"kill-{n:02d}"
        self.runs = runs / self.job
        self.runs.mkdir(parents=True)
        self.ids = [f"t{i}" for i in range(TASKS)]

    def run(self) -> dict[str, float | int]:
        c = self.c
        c.create_job(self.job, pool_id=POOL)
        cmd = recording.command(self.runs, SLEEP)
        c.add_tasks(self.job, [{"id": t, "command_line": cmd} for t in self.ids])
        wait_until(lambda: all(recording.read(self.runs, t).starts for t in self.ids),
                   "every task to start", TRIAL_TIMEOUT)
        nodes = {t: c.get_task(self.job, t).execution_info.node for t in self.ids}
        by_node: dict[str, list[str]] = {}
        for t, node in nodes.items():
            by_node.setdefault(node, []).append(t)
        victim = max(by_node, key=lambda n: len(by_node[n]))
        on_victim = by_node[victim]
        pid = agent_pid(victim.rsplit("/", 1)[1])
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)

        def restarted() -> list[float] | None:
            again = [recording.read(self.runs, t).starts for t in on_victim]
            if all(len(s) >= 2 for s in again):
                return [s[1][1] for s in again]
            return None

        restarts = wait_until(restarted, "the killed node's tasks to run again", TRIAL_TIMEOUT)
        job = c.wait_job(self.job, timeout=TRIAL_TIMEOUT)
        counts = job.task_counts
        if (counts.succeeded, counts.failed) != (TASKS, 0):
            raise BenchError(f"{self.job}: {counts.succeeded} succeeded, {counts.failed} "
                             f"failed of {TASKS}")
        records = {t: recording.read(self.runs, t) for t in self.ids}
        elsewhere = [c.get_task(self.job, t).execution_info.node for t in on_victim]
        if victim in elsewhere:
            raise BenchError(f"{self.job}: a task of the killed node ran there again")
        return {
            "killed_tasks": len(on_victim),
            "double_runs": sum(r.double for r in records.values()),
            "overlaps": sum(r.overlapped for r in records.values()),
            "roots_deleted_under_tasks": sum(bool(r.root_gone) for r in records.values()),
            "ms_to_elsewhere": (max(restarts) - killed_at) * 1000,
        }


def run(quick: bool) -> Outcome:
    trials = 3 if quick else 20
    outcome = Outcome("agent-kill")
    with running_suite("agent-kill") as suite:
        c = suite.client()
        c.create_pool(POOL, target_nodes=NODES, task_slots_per_node=SLOTS)
        runs = suite.state_dir / "runs"
        results = []
        for n in range(trials):
            wait_nodes_ready(suite, c, POOL, NODES, timeout=TRIAL_TIMEOUT)
            r = Trial(c, runs, n).run()
            say(f"trial {n + 1}/{trials}: {r['killed_tasks']} tasks killed, "
                f"elsewhere after {r['ms_to_elsewhere']:.0f} ms, "
                f"{r['double_runs']} double runs, {r['overlaps']} overlaps")
            results.append(r)
    delays = [float(r["ms_to_elsewhere"]) for r in results]
    killed = sum(int(r["killed_tasks"]) for r in results)
    outcome.add("double_runs", f"tasks run to the end twice ({trials} kills, {killed} tasks "
                "on the killed nodes)", sum(int(r["double_runs"]) for r in results), "runs",
                Target("<=", 0))
    outcome.add("overlaps", "new runs begun while an old process of the task lived",
                sum(int(r["overlaps"]) for r in results), "runs", Target("<=", 0))
    outcome.add("roots_deleted", "node roots deleted under a running task",
                sum(int(r["roots_deleted_under_tasks"]) for r in results), "runs",
                Target("<=", 0))
    outcome.add("elsewhere_median", "kill → its tasks running elsewhere, median",
                median(delays), "ms", Target("<=", WITHIN * 1000))
    outcome.add("elsewhere_max", "kill → its tasks running elsewhere, max", max(delays), "ms",
                Target("<=", WITHIN * 1000))
    outcome.series["trials"] = results
    return outcome
