"""The agent process: command line, wiring, registration and the stream to the scheduler.

This module only does I/O. It feeds agent.session.ProtocolState what it sees (a stream opened or
lost, assignments, process starts and ends, acks, drains) and writes what it returns.

    SHOAL_JOIN_TOKEN=TOKEN python -m agent --pool-manager HOST:PORT --node-id ID --node-root DIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog

from agent import __version__
from agent.cleanup import Cleanup
from agent.concurrency import run_together
from agent.executor import Executor
from agent.job_tasks import JobTasks
from agent.layout import NodeLayout, answer_read
from agent.node_commands import (
    NodeCommands,
    run_start_task,
    running_info,
    start_task_failure,
    waits_for_success,
)
from agent.outbox import Outbox, OutboxWriter
from agent.session import (
    Admission,
    Identity,
    ProtocolState,
    StagingKey,
    backoff,
    draining_result,
    jittered,
    setup_failed_result,
)
from agent.staging import StagingFailure
from agent.staging.attempt import Staging
from agent.staging.cache import DEFAULT_MAX_BYTES, ContentCache
from agent.staging.grants import GrantBroker
from agent.staging.packages import PackageInstaller
from agent.staging.transfer import Transfers
from services.common import logging as shoal_logging
from services.common.ids import ID_RE
from services.common.node_processes import RootBusy, RootLock, Tracker, kill_leftovers
from services.common.rpc import CHANNEL_OPTIONS
from services.common.timeutil import from_duration
from shoal.agent.v1 import agent_pb2, agent_pb2_grpc
from shoal.v1 import pool_pb2, task_pb2

log = structlog.get_logger()

JOIN_TOKEN_ENV = "SHOAL_JOIN_TOKEN"
SEND_LINGER = 0.001
"""Seconds the sender waits after a wake-up before it takes what is queued."""

EXIT_REJECTED = 2
EXIT_ROOT_BUSY = 3
ROOT_LOCK_WAIT = 30.0
"""How long a starting agent waits for its node root's lock (held by whoever is killing
the leftovers of the previous agent, or by a live agent: then it gives up)."""
REGISTER_TIMEOUT = 10.0
DEFAULT_HEARTBEAT = 5.0
MIN_HEARTBEAT = 0.05
# File reads pause while this much chunk data waits to be sent: a client following a huge
# stdout must not fill the agent's memory.
CHUNK_BACKLOG_BYTES = 4 * 1024 * 1024
STOP_TIMEOUT = 5.0
WELCOME_TIMEOUT = 30.0
FENCE_CHECK = 0.5
"""Longest sleep between two looks at whether the node must fence itself."""

SC = grpc.StatusCode
# Answers that retrying cannot change: a wrong token, a node that no longer exists.
FATAL_ON_REGISTER = {SC.UNAUTHENTICATED, SC.NOT_FOUND, SC.INVALID_ARGUMENT, SC.PERMISSION_DENIED}
# The scheduler does not know this node/credential: the node may have been re-created.
REREGISTER_ON_CONNECT = {SC.UNAUTHENTICATED, SC.NOT_FOUND}
# gRPC's own reconnect backoff grows to 120 s by default; the agent's stays within the brief's
# 5 s cap so a node is back within seconds of its scheduler.
AGENT_CHANNEL_OPTIONS = [
    *CHANNEL_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
]
NODE_NAME = re.compile(r"pools/([A-Za-z0-9_-]{1,64})/nodes/([A-Za-z0-9_-]{1,64})")


@dataclass(frozen=True)
class Options:
    pool_manager: str
    """host:port of the pool-manager's NodeRegistryService."""
    join_token: str
    node_id: str
    node_root: Path
    cache_max_bytes: int = DEFAULT_MAX_BYTES
    """Bound of the node's content cache of downloaded objects."""
    use_cgroup: bool = True
    """Track the node's processes in a cgroup where one can be made (else process groups)."""
    root_lock_wait: float = ROOT_LOCK_WAIT
    """Seconds to wait for the node root's lock before giving up (exit code 3)."""


@dataclass(frozen=True)
class Registration:
    node: str
    credential: str
    scheduler_address: str
    task_slots: int
    pool_id: str
    node_id: str
    packages: tuple[agent_pb2.PackageGrant, ...] = ()
    """The pool's application packages, installed before the node takes tasks."""
    setup_failure: task_pb2.FailureInfo | None = None
    start_task: agent_pb2.StartTaskRun | None = None
    """The pool's start task, with its files granted."""


class Rejected(Exception):
    """The pool-manager refused the node for good."""


class StreamEnded(Exception):
    """The scheduler closed the stream, or broke the protocol."""


class Next(enum.Enum):
    EXIT = "exit"
    REREGISTER = "reregister"


def registration(resp: agent_pb2.RegisterNodeResponse) -> Registration:
    m = NODE_NAME.fullmatch(resp.node)
    if m is None:
        raise Rejected(f"the pool-manager answered a bad node name {resp.node[:100]!r}")
    if not resp.scheduler_address or resp.task_slots < 1:
        raise Rejected("the pool-manager answered no scheduler address or no task slots")
    return Registration(
        resp.node, resp.credential, resp.scheduler_address, resp.task_slots, m[1], m[2],
        tuple(resp.application_packages),
        resp.setup_failure if resp.setup_failure.code else None,
        resp.start_task if resp.HasField("start_task") else None,
    )


class Agent:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.layout = NodeLayout(opts.node_root)
        self.hostname = socket.gethostname()
        self.transfers = Transfers()
        self.staging = Staging(
            GrantBroker(self._stage, self._unstage),
            self.transfers,
            ContentCache(self.layout.cache, self.transfers, opts.cache_max_bytes),
            PackageInstaller(self.layout.applications, self.transfers),
        )
        self.executor = Executor(self.layout, node_id=opts.node_id, staging=self.staging)
        self.commands = NodeCommands(self.executor.runner, self.staging)
        self.jobs = JobTasks(self.layout, self.commands, self._node_error)
        self.executor.jobs = self.jobs
        self.cleanup = Cleanup(self.layout)
        """Removes ended attempts' directories after their retention, deleted tasks' at once."""
        self._packages_ready = False
        """The pool's application packages are installed (or it has none) in this life."""
        self._start_task_begun = False
        self._start_task_failure: task_pb2.FailureInfo | None = None
        """Set when the start task failed and the pool waits for its success."""
        self._start_task: asyncio.Task[task_pb2.NodeTaskInfo] | None = None
        """The start task running alongside the node's tasks (wait_for_success false)."""
        self.protocol: ProtocolState | None = None
        self._outbox: Outbox | None = None
        self._writer: OutboxWriter | None = None
        self._wake = asyncio.Event()  # something may be queued to send
        self._fenced = asyncio.Event()  # attempts were fenced: the stream must start over
        self._changed = asyncio.Event()  # running set, outbox or drain changed
        self._chunk_room = asyncio.Event()  # queued chunk data was sent
        self._attempts: set[asyncio.Task[None]] = set()
        self._reads: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        """Outbox deletions in flight; they outlive a stream."""
        self._failures = 0  # consecutive failed connects, for the backoff
        self._restored: list[agent_pb2.TaskResult] = []

    async def run(self) -> int:
        self.layout.create()
        try:
            lock = await asyncio.to_thread(RootLock.acquire, self.layout.root,
                                           self.opts.root_lock_wait)
        except RootBusy as e:
            log.error("cannot start: another agent uses this node root", error=str(e))
            return EXIT_ROOT_BUSY
        try:
            return await self._run_locked()
        finally:
            lock.release()

    async def _run_locked(self) -> int:
        # Before anything else: what an earlier life of this node left running is killed and
        # gone before this one says hello, so nothing of it runs on when the scheduler hears
        # that those attempts are not running here.
        leftovers = await asyncio.to_thread(kill_leftovers, self.layout.root)
        tracker = await asyncio.to_thread(Tracker.begin, self.layout.root, self.opts.use_cgroup)
        self.executor.runner.tracker = tracker
        self._outbox = Outbox(self.layout.outbox)
        self._writer = OutboxWriter(self._outbox)
        self.staging.cache.load()
        restored = self._outbox.load()
        # Before any work arrives: every attempt directory there now has ended.
        retained = await asyncio.to_thread(self.cleanup.scan)
        log.info(
            "agent starting", version=__version__, node_root=str(self.layout.root),
            leftovers_killed=leftovers.killed, leftovers_surviving=list(leftovers.survivors),
            process_tracking=tracker.mode, outbox_results=len(restored),
            attempts_retained=retained,
        )
        self._restored = restored
        cleaner = asyncio.create_task(self.cleanup.run())
        fencer = asyncio.create_task(self._fence_watch())

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        life = asyncio.create_task(self._life())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({life, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if life.done():
            stopper.cancel()
            try:
                code = life.result()
            except Exception:  # noqa: BLE001 - still kill the attempts below
                log.exception("agent failed")
                code = 1
        else:
            life.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await life
            code = 0
        fencer.cancel()
        if self.protocol is not None:  # bound in the (now ended) life task's context only
            structlog.contextvars.bind_contextvars(node=self.protocol.identity.node)
        # Whatever ends the agent (a signal, a node that no longer exists) ends its attempts,
        # with no results: they run in sessions of their own and would outlive it otherwise.
        if self.executor.running:
            log.info("killing running attempts", running=self.executor.running)
        # Attempts first: one waiting for a preparation task must end with no result, not
        # with the preparation's cancellation.
        await self.executor.kill_all(STOP_TIMEOUT)
        if self._start_task is not None:
            self._start_task.cancel()
            await asyncio.wait({self._start_task}, timeout=STOP_TIMEOUT)
        await self.jobs.stop(STOP_TIMEOUT)
        if self._attempts:
            await asyncio.wait(self._attempts, timeout=STOP_TIMEOUT)
        cleaner.cancel()
        await asyncio.wait({cleaner}, timeout=STOP_TIMEOUT)
        if self._background:
            # Outbox deletions of results acked just before a leaving agent exits: left
            # undone, a later agent on this root would send those results again.
            await asyncio.wait(self._background, timeout=STOP_TIMEOUT)
        await self.transfers.close()
        # Whatever of the node still runs (a start task, what tasks left behind) goes too.
        left = await asyncio.to_thread(tracker.close)
        log.info("agent stopped", exit_code=code, leftovers_killed=left.killed)
        return code

    async def _life(self) -> int:
        while True:
            try:
                reg = await self._register()
            except Rejected as e:
                log.error("registration rejected: the agent cannot join; exiting", error=str(e))
                return EXIT_REJECTED
            self._adopt(reg)
            await self._setup(reg)
            if await self._serve(reg) is Next.EXIT:
                log.info("drained and left: exiting")
                return 0
            await asyncio.sleep(backoff(self._failures))
            self._failures += 1

    async def _register(self) -> Registration:
        failures = 0
        req = agent_pb2.RegisterNodeRequest(
            join_token=self.opts.join_token, node_id=self.opts.node_id, hostname=self.hostname
        )
        async with grpc.aio.insecure_channel(self.opts.pool_manager, options=AGENT_CHANNEL_OPTIONS) as ch:
            stub = agent_pb2_grpc.NodeRegistryServiceStub(ch)
            while True:
                try:
                    resp = await stub.RegisterNode(req, timeout=REGISTER_TIMEOUT)
                    return registration(resp)
                except grpc.aio.AioRpcError as e:
                    if e.code() in FATAL_ON_REGISTER:
                        raise Rejected(f"{e.code().name}: {e.details()}") from e
                    delay = backoff(failures)
                    failures += 1
                    log.warning(
                        "registration failed; retrying", code=e.code().name,
                        details=e.details(), retry_in=round(delay, 3),
                    )
                    await asyncio.sleep(delay)

    def _adopt(self, reg: Registration) -> None:
        structlog.contextvars.bind_contextvars(node=reg.node)
        self.executor.runner.set_identity(reg.pool_id, reg.node_id)
        ident = Identity(reg.node, reg.credential, reg.task_slots, __version__, self.hostname)
        if self.protocol is None:
            self.protocol = ProtocolState(ident, now=time.monotonic, outbox=self._restored)
        else:
            self.protocol.identity = ident
        log.info("registered", scheduler=reg.scheduler_address, task_slots=reg.task_slots)

    async def _setup(self, reg: Registration) -> None:
        """Install the pool's application packages, then run its start task, before taking
        tasks. A failure (or one the pool-manager reports) is said in every hello, and the
        node then runs nothing. Both happen once per agent life, as in Azure Batch: a node
        that only registers again keeps what it set up, even if its pool was updated since
        (an update reaches nodes as they join or are rebooted)."""
        failure = None
        if not self._packages_ready:
            failure = reg.setup_failure
            if failure is None and reg.packages:
                try:
                    env = await self.staging.install_node_packages(reg.packages)
                except StagingFailure as f:
                    failure = f.info()
                else:
                    self.executor.runner.set_node_packages(env)
                    log.info("pool application packages installed", packages=len(reg.packages))
            self._packages_ready = failure is None  # a failure is tried again on registering
        if failure is None and reg.start_task is not None and not self._start_task_begun:
            # Once per agent life (a restart runs it again, as a reboot does in Azure Batch),
            # not again when the node only registers again.
            self._start_task_begun = True
            await self._begin_start_task(reg.start_task)
        failure = failure or self._start_task_failure
        if failure is not None:
            log.error("node setup failed: the node takes no tasks", code=failure.code,
                      error=failure.message)
        self._protocol.setup_failure = failure

    async def _begin_start_task(self, run: agent_pb2.StartTaskRun) -> None:
        """With wait_for_success (the default) run it now, before the stream opens; a failure
        is the node's setup failure. Without, start it and connect at once."""
        if waits_for_success(run.spec):
            info = await run_start_task(self.commands, self.layout, run, self._start_task_info)
            if info.result != task_pb2.TaskExecutionInfo.SUCCESS:
                self._start_task_failure = start_task_failure(info)
            return
        self._start_task_info(running_info())
        self._start_task = asyncio.create_task(
            run_start_task(self.commands, self.layout, run, self._start_task_info))

    def _start_task_info(self, info: task_pb2.NodeTaskInfo) -> None:
        self._protocol.start_task(info)
        self._wake.set()

    def _node_error(self, error: pool_pb2.NodeError) -> None:
        self._protocol.node_error(error)
        self._wake.set()

    def _stage(self, request: agent_pb2.StagingRequest) -> None:
        self._protocol.stage(request)
        self._wake.set()

    def _unstage(self, key: StagingKey) -> None:
        self._protocol.unstage(key)

    # --- the stream --------------------------------------------------------------------

    async def _serve(self, reg: Registration) -> Next:
        """Keep a stream open to the scheduler, reconnecting, until the agent may exit or the
        node must register again."""
        s = self._protocol
        async with grpc.aio.insecure_channel(reg.scheduler_address, options=AGENT_CHANNEL_OPTIONS) as ch:
            stub = agent_pb2_grpc.AgentServiceStub(ch)
            while True:
                if s.should_exit():
                    return Next.EXIT
                try:
                    await self._stream(stub)
                    return Next.EXIT
                except grpc.aio.AioRpcError as e:
                    if e.code() in REREGISTER_ON_CONNECT:
                        log.warning("scheduler refused the node; registering again",
                                    code=e.code().name, details=e.details())
                        return Next.REREGISTER
                    log.warning("stream to the scheduler broke", code=e.code().name,
                                details=e.details())
                except (StreamEnded, asyncio.InvalidStateError) as e:
                    log.warning("stream to the scheduler ended", reason=str(e))
                except Exception:  # noqa: BLE001 - a bug must cost a reconnect, not the node
                    log.exception("stream to the scheduler failed")
                finally:
                    s.disconnect()
                delay = backoff(self._failures)
                self._failures += 1
                await asyncio.sleep(delay)

    async def _stream(self, stub: agent_pb2_grpc.AgentServiceStub) -> None:
        """One stream, from hello to its end. Returns only when a leaving agent may exit."""
        s = self._protocol
        call = stub.Connect()
        try:
            self._fenced.clear()  # the hello below leaves out what was fenced
            await call.write(s.connect())
            await self._flush(call)  # the outbox, resent right after the hello
            # A scheduler that accepts the stream but never answers must not hold the node.
            try:
                first = await asyncio.wait_for(call.read(), WELCOME_TIMEOUT)
            except TimeoutError:
                raise StreamEnded(f"no welcome within {WELCOME_TIMEOUT:g}s") from None
            if first is grpc.aio.EOF:
                raise StreamEnded("the scheduler closed the stream before its welcome")
            if not first.HasField("welcome"):
                raise StreamEnded("the scheduler's first message has no welcome")
            interval = from_duration(first.welcome.heartbeat_interval) or DEFAULT_HEARTBEAT
            interval = max(MIN_HEARTBEAT, interval)
            self._failures = 0
            log.info("connected to the scheduler", heartbeat_interval=interval,
                     running=len(s.running), resent=len(s.unacked))
            await self._handle(first)
            await run_together((
                self._receive(call), self._send(call), self._heartbeats(interval),
                self._until_exit(), self._until_fenced(),
            ), until=asyncio.FIRST_COMPLETED)
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await call.done_writing()
        finally:
            for t in self._reads:
                t.cancel()
            call.cancel()

    async def _receive(self, call: Any) -> None:
        while True:
            msg = await call.read()
            if msg is grpc.aio.EOF:
                raise StreamEnded("the scheduler closed the stream")
            await self._handle(msg)

    async def _send(self, call: Any) -> None:
        while True:
            await self._wake.wait()
            # Linger a moment so what ends together leaves together: under load this turns
            # one message per event into one per burst, for a millisecond of latency.
            await asyncio.sleep(SEND_LINGER)
            self._wake.clear()
            await self._flush(call)

    async def _flush(self, call: Any) -> None:
        for m in self._protocol.take():
            await call.write(m)
        self._chunk_room.set()

    async def _heartbeats(self, interval: float) -> None:
        while True:
            self._protocol.heartbeat(os.getloadavg()[0], _disk_free(self.layout.root))
            self._wake.set()
            await asyncio.sleep(jittered(interval))

    async def _until_fenced(self) -> None:
        await self._fenced.wait()
        raise StreamEnded("attempts were fenced: saying hello again")

    # --- self-fencing ---------------------------------------------------------------------

    async def _fence_watch(self) -> None:
        """Kill the running attempts once the scheduler may be requeueing them: it has not
        confirmed hearing this node for Welcome.fence_after (agent.session)."""
        while True:
            due = self.protocol.fence_in() if self.protocol is not None else None
            if due is not None and due <= 0:
                await self._fence()
                due = None
            await asyncio.sleep(FENCE_CHECK if due is None else min(due, FENCE_CHECK))

    async def _fence(self) -> None:
        s = self._protocol
        log.warning("the scheduler has not confirmed hearing this node in time: killing the "
                    "running attempts (self-fencing); they will run elsewhere",
                    fence_after=s.fence_after, running=s.running)
        dropped = await self.executor.fence(STOP_TIMEOUT)
        s.fenced(dropped)
        self._fenced.set()
        self._changed.set()

    async def _until_exit(self) -> None:
        s = self._protocol
        while not s.should_exit():
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout: wait_for can swallow a cancellation on 3.11 (see cleanup).
                async with asyncio.timeout(s.seconds_until_exit_check()):
                    await self._changed.wait()

    # --- what the scheduler says ------------------------------------------------------

    async def _handle(self, msg: agent_pb2.SchedulerMessage) -> None:
        s = self._protocol
        if msg.heartbeat_seen:
            s.heard(msg.heartbeat_seen)
        if msg.HasField("welcome"):
            s.welcomed(from_duration(msg.welcome.fence_after))
            self.executor.upload_logs = msg.welcome.upload_logs and self.staging is not None
            for a in msg.welcome.cancel_attempts:
                self._cancel(a)
        if msg.HasField("drain"):
            if not s.leaving:
                log.info("draining", leave=msg.drain.leave)
            s.drain(msg.drain.leave)
            self._changed.set()
        for assignment in msg.assignments:
            self._assign(assignment)
        for a in msg.cancel_attempts:
            self._cancel(a)
        for c in msg.attempt_constraints:
            found = self.executor.update(c)
            log.info("attempt limits updated", attempt=c.attempt_id, running=found,
                     max_wall_clock=from_duration(c.max_wall_clock_time)
                     if c.HasField("max_wall_clock_time") else None)
        if msg.ack_attempts:
            removed = s.acked(msg.ack_attempts)
            if removed:
                # Not awaited: reading the stream must not wait for the disk.
                t = asyncio.create_task(self._writer_().remove(removed))
                self._background.add(t)
                t.add_done_callback(self._background.discard)
                self._changed.set()
        for g in msg.staging_grants:
            s.granted(g)
            if not self.staging.broker.deliver(g):
                log.info("staging grant nobody waits for ignored", attempt=g.attempt_id,
                         kind=agent_pb2.StagingKind.Name(g.kind))
        for ended in msg.jobs_ended:
            self.jobs.ended(ended)
        for ref in msg.deleted_tasks:
            log.info("task deleted: removing its files", job=ref.job_id, task=ref.task_id)
            self.cleanup.delete_task(ref.job_id, ref.task_id)
        for r in msg.file_reads:
            t = asyncio.create_task(self._read_file(r))
            self._reads.add(t)
            t.add_done_callback(self._reads.discard)
        self._wake.set()

    def _assign(self, a: agent_pb2.Assignment) -> None:
        if ID_RE.fullmatch(a.attempt_id) is None:
            log.error("assignment with an invalid attempt id ignored", attempt=a.attempt_id[:80])
            return
        free = self._protocol.free_slots
        admission = self._protocol.admit(a)
        if admission is Admission.RUN and max(1, a.required_slots) > free:
            log.warning("assignment exceeds the free slots; running it anyway",
                        attempt=a.attempt_id, free_slots=free, required_slots=a.required_slots)
        if admission is Admission.DUPLICATE:
            log.info("duplicate assignment ignored", attempt=a.attempt_id)
            return
        if admission is Admission.RUN:
            self.executor.expect(a)
        t = asyncio.create_task(self._run_attempt(a, admission))
        self._attempts.add(t)
        t.add_done_callback(self._attempts.discard)

    def _cancel(self, attempt_id: str) -> None:
        found = self.executor.cancel(attempt_id)
        log.info("cancel", attempt=attempt_id, running=found)

    async def _run_attempt(self, a: agent_pb2.Assignment, admission: Admission) -> None:
        structlog.contextvars.bind_contextvars(job=a.job_id, task=a.task_id, attempt=a.attempt_id)
        if admission is Admission.DRAINING:
            result: agent_pb2.TaskResult | None = draining_result(a.attempt_id, time.time())
        elif admission is Admission.SETUP_FAILED:
            assert self._protocol.setup_failure is not None
            result = setup_failed_result(a.attempt_id, time.time(), self._protocol.setup_failure)
        else:
            self.cleanup.began(a)
            try:
                result = await self.executor.run(a, self._started)
            except Exception as e:  # noqa: BLE001 - a bug here must still end the attempt
                log.exception("attempt crashed in the agent")
                result = draining_result(a.attempt_id, time.time())
                result.failure_info.code = "AGENT_ERROR"
                result.failure_info.message = f"the agent failed to run the attempt: {e}"
            finally:
                self.cleanup.ended(a)
        if result is None:  # the agent is stopping: no result, the scheduler requeues
            return
        try:
            await self._writer_().put(result)
        except OSError as e:
            # Better sent without a durable copy than not at all.
            log.error("could not write the result to the outbox", error=str(e))
        self._protocol.finished(result)
        self._wake.set()
        self._changed.set()
        log.info(
            "attempt ended",
            exit_code=result.exit_code if result.HasField("exit_code") else None,
            failure=result.failure_info.code or None,
        )

    def _started(self, attempt_id: str, start_time: float) -> None:
        log.debug("attempt started")
        self._protocol.started(attempt_id, start_time)
        self._wake.set()

    async def _read_file(self, r: agent_pb2.FileRead) -> None:
        s = self._protocol
        with contextlib.closing(answer_read(self.layout, r)) as chunks:
            for c in chunks:
                s.chunk(c)
                self._wake.set()
                while s.queued_chunk_bytes > CHUNK_BACKLOG_BYTES:
                    self._chunk_room.clear()
                    await self._chunk_room.wait()

    @property
    def _protocol(self) -> ProtocolState:
        assert self.protocol is not None, "used before registration"
        return self.protocol

    def _writer_(self) -> OutboxWriter:
        assert self._writer is not None, "used before run()"
        return self._writer




def _disk_free(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def _use_pidfd_child_watcher() -> None:
    """Python 3.11 reaps each child from a thread of its own; a pidfd per child in the event
    loop scales to many concurrent tasks (3.12 does this by default)."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel older than 5.3
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


def parse_args(argv: list[str] | None) -> tuple[Options, str]:
    p = argparse.ArgumentParser(prog="python -m agent", description="The Shoal node agent.")
    p.add_argument("--pool-manager", required=True, metavar="HOST:PORT")
    p.add_argument(
        "--join-token", default=os.environ.pop(JOIN_TOKEN_ENV, None),
        help=f"the pool's join token (default: ${JOIN_TOKEN_ENV}, which keeps it out of ps)",
    )
    p.add_argument("--node-id", required=True)
    p.add_argument("--node-root", required=True, type=Path, metavar="DIR")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--cache-max-bytes", type=int, default=DEFAULT_MAX_BYTES, metavar="N",
        help="bound of the node's content cache of downloaded objects (LRU eviction)",
    )
    p.add_argument(
        "--root-lock-wait", type=float, default=ROOT_LOCK_WAIT, metavar="SECONDS",
        help="how long to wait for the node root's lock (held while the previous agent's "
             "leftovers are killed, or by a live agent: then exit with code 3)",
    )
    p.add_argument(
        "--no-cgroup", action="store_true",
        help="track the node's processes by process group even where a cgroup v2 is usable",
    )
    a = p.parse_args(argv)
    if not a.join_token:
        p.error(f"a join token is required: set {JOIN_TOKEN_ENV} or pass --join-token")
    if ID_RE.fullmatch(a.node_id) is None:
        p.error(f"--node-id {a.node_id!r} is not a valid id: use 1-64 of A-Z a-z 0-9 _ -")
    if a.cache_max_bytes < 0:
        p.error("--cache-max-bytes must not be negative")
    if a.root_lock_wait < 0:
        p.error("--root-lock-wait must not be negative")
    opts = Options(a.pool_manager, a.join_token, a.node_id, a.node_root.absolute(),
                   a.cache_max_bytes, not a.no_cgroup, a.root_lock_wait)
    return opts, a.log_level


async def _amain(opts: Options) -> int:
    _use_pidfd_child_watcher()
    return await Agent(opts).run()


def main(argv: list[str] | None = None) -> int:
    opts, level = parse_args(argv)
    shoal_logging.configure("agent", level)
    structlog.contextvars.bind_contextvars(node=opts.node_id)
    return asyncio.run(_amain(opts))
