"""A job's preparation and release tasks on this node (Azure Batch's JobPreparationTask and
JobReleaseTask).

Preparation: the first assignment of a job that has one runs it, in
tasks/{job}/jobpreparation/, before the attempt's own staging; every other assignment of the
job that arrives meanwhile waits for that one run (single-flight), and later ones find the
job prepared without waiting. It runs once per job per agent life. Its resource files are
granted for the attempt that started it (a StagingRequest with job_task JOB_PREPARATION,
through the grant broker, so it is resent after a reconnect). If it fails, every waiting
attempt and every later one of the job on this node fails with JOB_PREPARATION_TASK_FAILED,
and one node error says so. Should the scheduler refuse that grant because the attempt that
asked is no longer assigned (cancelled while waiting), the run did not count: the next
waiting attempt starts it again under its own id.

Release: when the scheduler says a job ended, a node that ran it (an attempt or its
preparation during this life, or a tasks/{job} directory from an earlier one) runs its
release task in tasks/{job}/jobrelease/, in the background; a failure is a node error. The
job's preparation is forgotten either way: a job id used again prepares again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agent.executor import JOB_PREPARATION_TASK_FAILED
from agent.layout import NodeLayout, UnsafePath
from agent.node_commands import Command, NodeCommands, Outcome, limit_of, retries_of
from agent.runner import both
from agent.staging import RESOURCE_FILE_DOWNLOAD_FAILED, SERVER_ERROR, USER_ERROR, StagingFailure
from services.common.timeutil import to_timestamp
from shoal.agent.v1 import agent_pb2
from shoal.v1 import pool_pb2, task_pb2

log = structlog.get_logger()

JOB_RELEASE_TASK_FAILED = "JOB_RELEASE_TASK_FAILED"
PREP_TASK_ID = "jobpreparation"
RELEASE_TASK_ID = "jobrelease"
DEFAULT_RELEASE_LIMIT = 15 * 60.0
"""Seconds a release task may run when its job sets no limit (Azure Batch's default)."""
ATTEMPT_NOT_ASSIGNED = "ATTEMPT_NOT_ASSIGNED"
MAX_RUNS_PER_WAIT = 3
"""Preparation runs one waiting attempt starts after runs that did not count."""

Report = Callable[[pool_pb2.NodeError], None]


@dataclass
class _Job:
    uid: int
    """Which incarnation of the job id this state is for (Assignment.job_uid)."""
    env: dict[str, str]
    """What the job's tasks see: its preparation task's directories."""
    run: asyncio.Task[bool] | None = None
    done: bool = False
    failure: task_pb2.FailureInfo | None = None


def _prep_variables(job_dir: Path) -> dict[str, str]:
    d = job_dir / PREP_TASK_ID
    return {"JOB_PREP_DIR": str(d), "JOB_PREP_WORKING_DIR": str(d / "wd")}


class JobTasks:
    def __init__(
        self, layout: NodeLayout, commands: NodeCommands, report: Report, *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.layout = layout
        self._commands = commands
        self._report = report
        self._clock = clock
        self._jobs: dict[str, _Job] = {}
        """Jobs prepared, preparing or failed here, by lower-case id."""
        self._uids: dict[str, int] = {}
        """The newest incarnation of each job id this node was given work of."""
        self._releasing: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- preparation ---------------------------------------------------------------------

    def seen(self, a: agent_pb2.Assignment) -> None:
        """Note the incarnation of an assignment's job: a JobEnded for an older one (a job
        deleted and created again under its id) must not touch the new one."""
        self._uids[a.job_id.lower()] = a.job_uid

    def ready(self, a: agent_pb2.Assignment) -> dict[str, str] | task_pb2.FailureInfo | None:
        job = self._jobs.get(a.job_id.lower())
        if job is not None and job.uid != a.job_uid:
            return None  # an older incarnation's state: prepare() replaces it
        if job is None or not job.done:
            return None
        return job.failure or job.env

    async def prepare(self, a: agent_pb2.Assignment) -> dict[str, str] | task_pb2.FailureInfo:
        key = a.job_id.lower()
        for _ in range(MAX_RUNS_PER_WAIT):
            job = self._jobs.get(key)
            if job is None or job.uid != a.job_uid:
                job = self._jobs[key] = _Job(
                    a.job_uid, both(_prep_variables(self.layout.job_dir(a.job_id))))
            if job.done:
                return job.failure or job.env
            run = job.run
            if run is None:
                run = job.run = self._spawn(self._prepare(job, a))
            # Shielded: a waiting attempt that is cancelled must not abort the run the job's
            # other attempts wait for.
            if await asyncio.shield(run):
                return job.failure or job.env
        return task_pb2.FailureInfo(
            category=SERVER_ERROR, code=JOB_PREPARATION_TASK_FAILED,
            message=f"job {a.job_id}: the job preparation task's files were not granted to "
                    f"any attempt waiting for it ({MAX_RUNS_PER_WAIT} tries)",
        )

    async def _prepare(self, job: _Job, a: agent_pb2.Assignment) -> bool:
        """One run of the job's preparation task; False when it did not count."""
        structlog.contextvars.bind_contextvars(job=a.job_id, task=PREP_TASK_ID)
        structlog.contextvars.unbind_contextvars("attempt")
        spec = a.job_preparation_task
        job_dir = self.layout.job_dir(a.job_id)
        d = job_dir / PREP_TASK_ID
        cmd = Command(
            "the job preparation task", spec.command_line, spec.environment, d,
            {"JOB_ID": a.job_id, "TASK_ID": PREP_TASK_ID, "TASK_DIR": str(d),
             "TASK_WORKING_DIR": str(d / "wd")},
            max_retries=retries_of(spec), limit=limit_of(spec),
        )
        log.info("running the job preparation task", for_attempt=a.attempt_id)
        try:
            outcome = await self._commands.run(cmd, self._granted(a) if spec.resource_files else None)
        except Exception as e:  # noqa: BLE001 - a bug fails the preparation, not the agent
            log.exception("job preparation task crashed in the agent")
            outcome = self._commands.failed(task_pb2.FailureInfo(
                category=SERVER_ERROR, code="AGENT_ERROR", message=f"the agent failed: {e}"))
        if outcome.failure is not None and outcome.failure.code == ATTEMPT_NOT_ASSIGNED:
            log.info("job preparation files not granted to a gone attempt; not counted",
                     for_attempt=a.attempt_id)
            job.run = None
            return False
        job.done = True
        job.run = None
        if outcome.ok:
            log.info("job preparation task succeeded", retry_count=outcome.retry_count)
            return True
        message = f"job {a.job_id}: the job preparation task {outcome.describe()}"
        job.failure = task_pb2.FailureInfo(
            category=USER_ERROR, code=JOB_PREPARATION_TASK_FAILED, message=message)
        log.warning("job preparation task failed: the job's tasks fail on this node",
                    why=outcome.describe())
        self._report(pool_pb2.NodeError(
            code=JOB_PREPARATION_TASK_FAILED, message=message, time=to_timestamp(self._clock())))
        return True

    def _granted(self, a: agent_pb2.Assignment) -> Callable[[Path], Coroutine[Any, Any, None]]:
        async def stage(wd: Path) -> None:
            staging = self._commands.staging
            if staging is None:
                raise StagingFailure(SERVER_ERROR, RESOURCE_FILE_DOWNLOAD_FAILED,
                                     "this agent cannot stage files (no staging configured)")
            grant = await staging.broker.request(agent_pb2.StagingRequest(
                attempt_id=a.attempt_id, kind=agent_pb2.DOWNLOADS,
                job_task=agent_pb2.JOB_PREPARATION))
            if grant.HasField("failure") and grant.failure.code:
                raise StagingFailure.of(grant.failure)
            await self._commands.place(grant.downloads)(wd)

        return stage

    # --- release -------------------------------------------------------------------------

    def ended(self, ended: agent_pb2.JobEnded) -> None:
        """The job ended: forget its preparation, and run its release task (in the
        background) if this node ran the job."""
        try:
            job_dir = self.layout.job_dir(ended.job_id)
        except UnsafePath as e:
            log.error("job end with an invalid job id ignored", error=str(e))
            return
        key = ended.job_id.lower()
        newest = self._uids.get(key)
        if ended.job_uid and newest and newest != ended.job_uid:
            log.info("end of an older incarnation of a job ignored", job=ended.job_id)
            return
        self._uids.pop(key, None)
        known = self._jobs.pop(key, None) is not None
        spec = ended.release
        if not ended.HasField("release") or not spec.command_line or key in self._releasing:
            return
        if not known and not job_dir.is_dir():
            log.debug("job ended that this node did not run; no release task", job=ended.job_id)
            return
        t = self._spawn(self._release(ended, job_dir))
        self._releasing[key] = t
        t.add_done_callback(lambda _t: self._releasing.pop(key, None))

    async def _release(self, ended: agent_pb2.JobEnded, job_dir: Path) -> None:
        structlog.contextvars.bind_contextvars(job=ended.job_id, task=RELEASE_TASK_ID)
        spec = ended.release
        d = job_dir / RELEASE_TASK_ID
        variables = {"JOB_ID": ended.job_id, "TASK_ID": RELEASE_TASK_ID, "TASK_DIR": str(d),
                     "TASK_WORKING_DIR": str(d / "wd")}
        if (job_dir / PREP_TASK_ID).is_dir():
            variables.update(_prep_variables(job_dir))
        cmd = Command("the job release task", spec.command_line, spec.environment, d, variables,
                      limit=limit_of(spec, DEFAULT_RELEASE_LIMIT))
        outcome: Outcome
        if ended.HasField("failure") and ended.failure.code:
            outcome = self._commands.failed(ended.failure)
        else:
            log.info("running the job release task")
            try:
                outcome = await self._commands.run(
                    cmd, self._commands.place(ended.downloads) if ended.downloads else None)
            except Exception as e:  # noqa: BLE001 - a bug fails the release, not the agent
                log.exception("job release task crashed in the agent")
                outcome = self._commands.failed(task_pb2.FailureInfo(
                    category=SERVER_ERROR, code="AGENT_ERROR", message=f"the agent failed: {e}"))
        if outcome.ok:
            log.info("job release task succeeded")
            return
        message = f"job {ended.job_id}: the job release task {outcome.describe()}"
        log.warning("job release task failed", why=outcome.describe())
        self._report(pool_pb2.NodeError(
            code=JOB_RELEASE_TASK_FAILED, message=message, time=to_timestamp(self._clock())))

    # --- life ----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def stop(self, grace: float) -> None:
        """Kill what runs (cancelling a command kills its process group); bounded wait."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
