"""The pure core in a test's hands: a World that feeds it events the way the engine would
(with the rows the engine would have read), and helpers to read its plans."""

from __future__ import annotations

import itertools

from services.job_scheduler import convert
from services.job_scheduler.core import AgentReport, Core, Hello, Plan, Welcome
from services.job_scheduler.core.plan import Assign, InsertJob, TaskInfo
from services.job_scheduler.model import (
    Failure,
    Job,
    JobState,
    OnAllTasksComplete,
    Report,
    Result,
    TaskDefinition,
    TaskRecord,
    TaskState,
)
from shoal.cluster_config import SchedulerTiming

TIMING = SchedulerTiming(heartbeat_interval=1.0, unreachable_after=3.0, lost_after=10.0,
                         reconnect_grace=10.0, max_requeue_count=5)
ACCOUNT = "acct"
T0 = 1_000.0


class World:
    """A core and the bookkeeping a test needs around it: the next primary keys, the rows
    the engine would have read, and the last plan."""

    def __init__(self) -> None:
        ids = itertools.count(1)
        self.core = Core(TIMING, started_at=T0, new_id=lambda: f"a{next(ids)}",
                         rules_of=convert.rules_of)
        self.now = T0
        self.job_pks = itertools.count(1)
        self.task_pks = itertools.count(1)
        self.specs: dict[int, tuple[Job, TaskDefinition]] = {}
        self.pks: dict[str, int] = {}

    def job(self, job_id: str = "j", **kw: object) -> Job:
        kw.setdefault("on_all_tasks_complete", OnAllTasksComplete.NO_ACTION)
        job = Job(pk=next(self.job_pks), account=ACCOUNT, id=job_id, pool_id="p", priority=0,
                  state=JobState.ACTIVE, create_time=self.now, state_time=self.now,
                  **kw)  # type: ignore[arg-type]
        plan = self.core.create_job(job, self.now)
        assert plan.rows == [InsertJob(job), *plan.rows[1:]]
        return job

    def add(self, job: Job, *specs: TaskDefinition) -> Plan:
        pks = [next(self.task_pks) for _ in specs]
        for pk, sp in zip(pks, specs, strict=True):
            self.specs[pk] = (job, sp)
            self.pks[sp.id] = pk
        self.core.check_open(job)
        known = {}
        if any(sp.extra for sp in specs):
            self.core.dependencies_to_read(job, list(specs), False)
            known = self.core.check_dependencies(job, list(specs), {}, False)
        return self.core.tasks_added(job, list(specs), pks, known, self.now,
                                     plain=not any(sp.extra for sp in specs))

    def node(self, node_id: str = "n1", slots: int = 1, running: tuple[str, ...] = ()) -> Welcome:
        plan = self.core.hello((ACCOUNT, "p", node_id), Hello("p", node_id, slots, running=running),
                               self.now)
        assert isinstance(plan.reply, Welcome)
        return plan.reply

    def dispatch(self) -> Plan:
        """A dispatch round with every candidate's row read."""
        info = {pk: self.info(pk) for pk in self.core.candidates()}
        return self.core.dispatch(info, self.now)

    def info(self, pk: int) -> TaskInfo:
        job, sp = self.specs[pk]
        return TaskInfo(job.id, sp.id, sp.command_line, "{}", sp.max_wall_clock_time,
                        sp.max_task_retry_count, None, sp.exits, sp.priority, sp.retention,
                        self.now)

    def result(self, w: Welcome, attempt_id: str, exit_code: int | None = 0,
               failure: Failure | None = None) -> Plan:
        rep = Report(attempt_id, exit_code, self.now - 1, self.now, failure)
        return self.core.agent_message(w.session.key, w.stream_id, AgentReport([], [rep]), self.now)

    def record(self, task_id: str, state: TaskState, result: Result | None = None) -> TaskRecord:
        """The task's row as the engine would read it."""
        pk = self.pks[task_id]
        _, sp = self.specs[pk]
        return TaskRecord("j", sp, state, T0, self.now, 0, 0, None, None, None, None, None,
                          result, None, pk=pk)


def spec(task_id: str, **kw: object) -> TaskDefinition:
    s = TaskDefinition(task_id, f"echo {task_id}", {}, None, kw.pop("retries", None))  # type: ignore[arg-type]
    if kw:
        s = s._replace(extra=True, **kw)
    return s


def assigns(plan: Plan) -> dict[str, str]:
    """task id -> attempt id of the plan's assignments."""
    return {s.message.task.id: s.message.attempt.attempt_id
            for s in plan.sends if isinstance(s.message, Assign)}


def rows(plan: Plan, kind: type) -> list:  # type: ignore[type-arg]
    return [r for r in plan.rows if isinstance(r, kind)]
