"""Bulk add: 100,000 tasks accepted durably in one BatchCreateTasks call.

The job's pool has no nodes, so nothing competes with the insert. Each repetition uses a new
job. Three figures: the call alone (the request was built before the clock started), the same
plus building the request, and the whole of `Client.add_tasks` (what a user of the SDK sees:
it converts TaskSpecs and sends them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.common import TRIVIAL, BenchError, running_suite, say, task_stub
from bench.figures import Outcome, Target, median
from shoal.client import TaskSpec, job_name
from shoal.v1 import task_pb2

TARGET = Target(">=", 100_000)


@dataclass(frozen=True)
class Params:
    tasks: int = 100_000
    repeats: int = 3


QUICK = Params(tasks=10_000)


def build_request(job_id: str, tasks: int) -> task_pb2.BatchCreateTasksRequest:
    return task_pb2.BatchCreateTasksRequest(
        parent=job_name(job_id),
        requests=[
            task_pb2.CreateTaskRequest(
                task_id=f"t{i:07d}", task=task_pb2.Task(command_line=TRIVIAL)
            )
            for i in range(tasks)
        ],
    )


def run(quick: bool) -> Outcome:
    p = QUICK if quick else Params()
    out = Outcome("bulk")
    calls, builds, sdk = [], [], []
    with running_suite("bulk") as suite:
        client = suite.client(timeout=120)
        client.create_pool("empty", target_nodes=0)
        channel, stub, metadata = task_stub(suite)
        with channel:
            for rep in range(p.repeats):
                job_id = f"bulk-{rep}"
                client.create_job(job_id, pool_id="empty")
                t0 = time.perf_counter()
                request = build_request(job_id, p.tasks)
                t1 = time.perf_counter()
                response = stub.BatchCreateTasks(request, metadata=metadata, timeout=120)
                t2 = time.perf_counter()
                if response.created_count != p.tasks:
                    raise BenchError(f"created {response.created_count}, not {p.tasks}")
                builds.append(t1 - t0)
                calls.append(t2 - t1)

                job_id = f"sdk-{rep}"
                client.create_job(job_id, pool_id="empty")
                specs = [TaskSpec(f"t{i:07d}", TRIVIAL) for i in range(p.tasks)]
                t0 = time.perf_counter()
                added = client.add_tasks(job_id, specs, chunk=p.tasks)
                sdk.append(time.perf_counter() - t0)
                if added != p.tasks:
                    raise BenchError(f"add_tasks added {added}, not {p.tasks}")
                say(f"run {rep + 1}: build {builds[-1]:.2f}s, call {calls[-1]:.2f}s, "
                    f"Client.add_tasks {sdk[-1]:.2f}s")
            counts = client.get_job("bulk-0").task_counts
            if counts.active != p.tasks:
                raise BenchError(f"job bulk-0 shows {counts.active} active tasks, not {p.tasks}")
    n = p.tasks
    what = f"{n:,} tasks in one BatchCreateTasks call, median of {p.repeats}"
    out.add("tasks_per_s", f"{what}: the call", n / median(calls), "tasks/s", TARGET,
            f"{median(calls):.2f} s per call")
    with_build = [b + c for b, c in zip(builds, calls, strict=True)]
    out.add("with_build_tasks_per_s", f"{what}: building the request + the call",
            n / median(with_build), "tasks/s", None, f"{median(with_build):.2f} s")
    out.add("sdk_tasks_per_s", f"{what}: Client.add_tasks from TaskSpecs",
            n / median(sdk), "tasks/s", None, f"{median(sdk):.2f} s")
    out.series.update(call_s=calls, build_s=builds, sdk_s=sdk, tasks=n)
    return out
