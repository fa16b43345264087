"""The job-scheduler SIGKILLed every 2–8 s through a 5,000-task job: is a task lost, does a
completed task run again, and what does it cost?

The real suite, a pool of 4 nodes × 4 slots. Each task appends one line to a file of its own
(`/bin/sh`, so the record costs what `/bin/true` costs) — as many lines as runs. First the job
runs without faults (its time is the yardstick); then a second job of as many tasks runs
while a killer thread SIGKILLs the scheduler at random intervals of 2 to 8 s and starts it
again (`LocalSuite.restart`), until every task has completed. Counted:

- lost: tasks of the job not completed when the job's tasks are all accounted for (or at the
  deadline);
- run again: tasks whose command ran more than once (none of them failed, so any second run
  is a completed or running task run again);
- the job's time with faults against without (target ≤ 1.5×).
"""

from __future__ import annotations

import random
import shlex
import threading
import time
from pathlib import Path

from bench.common import BenchError, running_suite, say, wait_nodes_ready
from bench.figures import Outcome, Target
from shoal.client import Client, TaskSpec
from shoal.suite import LocalSuite

POOL = "chaos"
NODES, SLOTS = 4, 4
KILL_EVERY = (2.0, 8.0)
SLOWDOWN = 1.5


def _command(runs: Path) -> str:
    return shlex.join(["/bin/sh", "-c", f'echo run >> {shlex.quote(str(runs))}/"$SHOAL_TASK_ID"'])


def _run_job(c: Client, suite: LocalSuite, job: str, tasks: int, runs: Path,
             deadline: float) -> float:
    runs.mkdir(parents=True)
    c.create_job(job, pool_id=POOL)
    cmd = _command(runs)
    start = time.perf_counter()
    c.add_tasks(job, [TaskSpec(f"t{i:05d}", cmd) for i in range(tasks)], chunk=tasks)
    while True:
        try:
            counts = c.get_job(job).task_counts
            if counts.completed >= tasks:
                return time.perf_counter() - start
        except Exception:  # noqa: BLE001 - the scheduler is down for a moment: ask again
            pass
        if time.perf_counter() > deadline:
            raise BenchError(f"{job}: not all {tasks} tasks completed in time")
        time.sleep(0.05)


class Killer(threading.Thread):
    def __init__(self, suite: LocalSuite, seed: int) -> None:
        super().__init__(daemon=True)
        self.suite = suite
        self.rnd = random.Random(seed)
        self.stop = threading.Event()
        self.kills = 0
        self.error = ""

    def run(self) -> None:
        try:
            while not self.stop.wait(self.rnd.uniform(*KILL_EVERY)):
                self.suite.kill("job-scheduler")
                self.kills += 1
                self.suite.restart("job-scheduler", timeout=60)
        except Exception as e:  # noqa: BLE001 - reported by run()
            self.error = f"{type(e).__name__}: {e}"


def run(quick: bool) -> Outcome:
    tasks = 500 if quick else 5000
    outcome = Outcome("scheduler-kill")
    with running_suite("scheduler-kill") as suite:
        c = suite.client(timeout=60)
        c.create_pool(POOL, target_nodes=NODES, task_slots_per_node=SLOTS)
        wait_nodes_ready(suite, c, POOL, NODES, timeout=60)
        runs = suite.state_dir / "runs"
        limit = 120 + tasks / 10
        calm = _run_job(c, suite, "calm", tasks, runs / "calm", time.perf_counter() + limit)
        say(f"without faults: {tasks:,} tasks in {calm:.1f} s")
        killer = Killer(suite, seed=tasks)
        killer.start()
        try:
            stormy = _run_job(c, suite, "stormy", tasks, runs / "stormy",
                              time.perf_counter() + 3 * limit)
        finally:
            killer.stop.set()
            killer.join(90)
        if killer.error:
            raise BenchError(f"the killer failed: {killer.error}")
        counts = c.get_job("stormy").task_counts
        records = {p.name: len(p.read_text().splitlines()) for p in (runs / "stormy").iterdir()}
        say(f"with the scheduler killed {killer.kills} times: {stormy:.1f} s")
    lost = tasks - counts.succeeded
    again = sum(1 for n in records.values() if n > 1)
    never = tasks - len(records)
    outcome.add("kills", "job-scheduler SIGKILLs during the job (every 2–8 s)", killer.kills,
                "kills", None)
    outcome.add("lost", f"tasks of {tasks:,} not succeeded at the end", lost, "tasks",
                Target("<=", 0), f"{counts.failed} failed, {never} never ran")
    outcome.add("run_again", "tasks whose command ran more than once", again, "tasks",
                Target("<=", 0))
    outcome.add("slowdown", "the job's time with the kills ÷ without", stormy / calm, "×",
                Target("<=", SLOWDOWN), f"{stormy:.1f} s against {calm:.1f} s")
    outcome.series.update(calm_s=calm, stormy_s=stormy, kills=killer.kills)
    return outcome
