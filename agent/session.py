"""What the agent says to the scheduler, decided without I/O.

The I/O shell (agent.main) feeds a ProtocolState events — a connection opened or lost, an
assignment, a process started or ended, acknowledgements, file chunks, a drain — and writes
the AgentMessages `take()` returns. Everything that needs thought lives here so tests can drive
it with no network and no clock: the hello after every (re)connect, resending every
unacknowledged result, merging queued events into as few messages as possible, free slots,
and when a leaving agent may exit.

Like Nomad's client, results are never dropped because a send failed: they stay until the
scheduler acknowledges them, and every new stream resends them all. Staging requests (an
attempt asking for download or upload URLs) are kept the same way until granted.

The start task's progress is state, not an event: only its latest value is sent, and every
hello carries it. Node errors (failed job preparation or release tasks) are events sent once,
kept while no stream is open.

Self-fencing (as a Nomad client stops its allocations after losing its servers): the
scheduler requeues the attempts of a node it has not heard from for a while, so an agent that
cannot tell whether it is heard must not let them run on. The scheduler echoes the heartbeats
it takes in; the agent keeps the send time of each, and `fence_in` says when, with no newer
echo, it must kill its attempts (Welcome.fence_after after the last confirmed send).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from services.common.timeutil import to_timestamp
from shoal.agent.v1 import agent_pb2
from shoal.v1 import pool_pb2, task_pb2

# Limits per AgentMessage, far below gRPC's default 4 MiB receive limit.
MAX_ITEMS_PER_MESSAGE = 1000
MAX_CHUNK_BYTES_PER_MESSAGE = 1024 * 1024
# A leaving agent whose results are not acknowledged gives up after this long without an ack.
DRAIN_ACK_PATIENCE = 10.0

BACKOFF_BASE = 0.2
BACKOFF_CAP = 5.0


def backoff(failures: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number `failures` + 1: full jitter, exponential, capped."""
    return rng() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(failures, 32))


def jittered(interval: float, rng: Callable[[], float] = random.random) -> float:
    """`interval` ± 10 %, so a fleet of agents started together does not beat in step."""
    return interval * (0.9 + 0.2 * rng())


class Admission(Enum):
    RUN = "run"
    """Run it: its slots are now taken."""
    DUPLICATE = "duplicate"
    """Already running or ended here (an assignment resent after a reconnect): ignore it."""
    DRAINING = "draining"
    """The node takes no new work: report it back unrun (see draining_result)."""
    SETUP_FAILED = "setup_failed"
    """The node's setup failed: it runs nothing; report it back unrun (setup_failed_result)."""


@dataclass(frozen=True)
class Identity:
    node: str
    """`pools/{pool}/nodes/{node}`."""
    credential: str
    task_slots: int
    agent_version: str
    hostname: str


def draining_result(attempt_id: str, now: float) -> agent_pb2.TaskResult:
    """The result for an assignment refused because the node is leaving: a server-side
    failure, so the scheduler can requeue the task elsewhere."""
    return agent_pb2.TaskResult(
        attempt_id=attempt_id,
        end_time=to_timestamp(now),
        failure_info=task_pb2.FailureInfo(
            category=task_pb2.FailureInfo.SERVER_ERROR,
            code="NODE_DRAINING",
            message="the node is draining and took no new work; the attempt did not run",
        ),
    )


def setup_failed_result(
    attempt_id: str, now: float, setup: task_pb2.FailureInfo
) -> agent_pb2.TaskResult:
    """The result for an assignment refused because the node's setup failed. It carries the
    NODE_DRAINING code on purpose: the scheduler requeues such results (the task did nothing
    wrong) and a node that reports a setup failure should get no tasks in the first place."""
    r = draining_result(attempt_id, now)
    r.failure_info.message = (
        f"the node's setup failed ({setup.code}: {setup.message}); it runs no tasks; "
        "the attempt did not run"
    )
    return r


StagingKey = tuple[str, int, int]


def staging_key(m: agent_pb2.StagingRequest | agent_pb2.StagingGrant) -> StagingKey:
    """What pairs a grant with its request: the attempt, downloads or uploads, and whose
    (the task's or its job preparation task's)."""
    return (m.attempt_id, int(m.kind), int(m.job_task))


class ProtocolState:
    """The agent's side of the protocol, for the life of the agent process (across streams)."""

    def __init__(
        self,
        identity: Identity,
        *,
        now: Callable[[], float],
        outbox: Iterable[agent_pb2.TaskResult] = (),
    ) -> None:
        self.identity = identity
        self._now = now
        self._running: dict[str, int] = {}  # attempt id -> slots
        self._unacked: dict[str, agent_pb2.TaskResult] = {r.attempt_id: r for r in outbox}
        self._results_to_send: dict[str, None] = {}  # ordered set of attempt ids
        self._started: deque[agent_pb2.TaskStarted] = deque()
        self._chunks: deque[agent_pb2.FileChunk] = deque()
        self._chunk_bytes = 0
        self._heartbeat: agent_pb2.Heartbeat | None = None
        self._sequence = 0
        self._connected = False
        self._staging: dict[StagingKey, agent_pb2.StagingRequest] = {}
        self._staging_to_send: dict[StagingKey, None] = {}
        self.setup_failure: task_pb2.FailureInfo | None = None
        """Why the node's setup failed; it then runs nothing and says so in every hello."""
        self.start_task_info: task_pb2.NodeTaskInfo | None = None
        """How the pool's start task goes; in every hello."""
        self._start_info_to_send = False
        self._node_errors: deque[pool_pb2.NodeError] = deque()
        self.draining = False
        self.leaving = False
        self._quiet_since = now()
        self.fence_after: float | None = None
        """From the Welcome; None: never fence."""
        self._confirmed: float | None = None
        """When the latest message the scheduler is known to have taken in was sent."""
        self._hello_at = 0.0
        self._beats: deque[tuple[int, float]] = deque(maxlen=4096)
        """(sequence, send time) of the heartbeats of this stream not yet echoed."""

    # --- connection ------------------------------------------------------------------

    def connect(self) -> agent_pb2.AgentMessage:
        """A stream opened: returns the hello to send first. Every unacknowledged result is
        queued to follow it."""
        self._connected = True
        self._results_to_send = dict.fromkeys(self._unacked)
        self._staging_to_send = dict.fromkeys(self._staging)
        self._chunks.clear()
        self._chunk_bytes = 0
        self._heartbeat = None
        self._hello_at = self._now()
        self._beats.clear()
        i = self.identity
        hello = agent_pb2.Hello(
            node=i.node,
            credential=i.credential,
            task_slots=i.task_slots,
            running_attempts=list(self._running),
            finished_attempts=list(self._unacked),
            agent_version=i.agent_version,
            hostname=i.hostname,
        )
        if self.setup_failure is not None:
            hello.setup_failure.CopyFrom(self.setup_failure)
        if self.start_task_info is not None:
            hello.start_task_info.CopyFrom(self.start_task_info)
        self._start_info_to_send = False
        return agent_pb2.AgentMessage(hello=hello)

    def disconnect(self) -> None:
        """The stream broke. File chunks and heartbeats belong to it and are dropped; started
        events not yet taken are kept; results are resent after the next hello anyway."""
        self._connected = False
        self._start_info_to_send = False  # the next hello carries it
        self._results_to_send.clear()
        self._staging_to_send.clear()
        self._chunks.clear()
        self._chunk_bytes = 0
        self._heartbeat = None

    @property
    def connected(self) -> bool:
        return self._connected

    # --- events ----------------------------------------------------------------------

    def admit(self, assignment: agent_pb2.Assignment) -> Admission:
        a = assignment.attempt_id
        if a in self._running or a in self._unacked:
            return Admission.DUPLICATE
        if self.draining:
            return Admission.DRAINING
        if self.setup_failure is not None:
            return Admission.SETUP_FAILED
        self._running[a] = max(1, assignment.required_slots)
        return Admission.RUN

    def started(self, attempt_id: str, start_time: float) -> None:
        if attempt_id in self._running:
            self._started.append(
                agent_pb2.TaskStarted(attempt_id=attempt_id, start_time=to_timestamp(start_time))
            )

    def finished(self, result: agent_pb2.TaskResult) -> None:
        """An attempt ended and its result is in the outbox (or could not be put there)."""
        self._running.pop(result.attempt_id, None)
        self._unacked[result.attempt_id] = result
        if self._connected:
            self._results_to_send[result.attempt_id] = None
        self._quiet_since = self._now()

    def acked(self, attempt_ids: Iterable[str]) -> list[str]:
        """The scheduler recorded these; returns the ones to delete from the outbox."""
        removed = []
        for a in attempt_ids:
            if self._unacked.pop(a, None) is not None:
                removed.append(a)
            self._results_to_send.pop(a, None)
        if removed:
            self._quiet_since = self._now()
        return removed

    def stage(self, request: agent_pb2.StagingRequest) -> None:
        """An attempt (running here) asks for staging URLs: sent with the next batch and after
        every reconnect until granted or withdrawn."""
        key = staging_key(request)
        self._staging[key] = request
        if self._connected:
            self._staging_to_send[key] = None

    def granted(self, grant: agent_pb2.StagingGrant) -> bool:
        """A grant arrived; False when no request of this node waits for it (a duplicate)."""
        key = staging_key(grant)
        self._staging_to_send.pop(key, None)
        return self._staging.pop(key, None) is not None

    def unstage(self, key: StagingKey) -> None:
        """Stop asking (the attempt stopped waiting: granted, timed out or cancelled)."""
        self._staging.pop(key, None)
        self._staging_to_send.pop(key, None)

    def start_task(self, info: task_pb2.NodeTaskInfo) -> None:
        """The start task's progress changed: sent with the next batch (only the latest)."""
        self.start_task_info = info
        self._start_info_to_send = self._connected

    def node_error(self, error: pool_pb2.NodeError) -> None:
        """Something failed on the node (a job preparation or release task): sent once, with
        the next batch of a stream."""
        self._node_errors.append(error)

    def chunk(self, chunk: agent_pb2.FileChunk) -> None:
        if self._connected:
            self._chunks.append(chunk)
            self._chunk_bytes += len(chunk.data)

    def heartbeat(self, load_average: float, disk_free_bytes: int) -> None:
        if not self._connected:
            return
        if self._heartbeat is None:
            self._heartbeat = agent_pb2.Heartbeat()
        self._heartbeat.free_slots = self.free_slots
        self._heartbeat.load_average = load_average
        self._heartbeat.disk_free_bytes = max(0, disk_free_bytes)

    def welcomed(self, fence_after: float) -> None:
        """The scheduler answered this stream's hello: it has heard the node since the hello
        was sent. `fence_after` as the Welcome says (0: never fence)."""
        self.fence_after = fence_after if fence_after > 0 else None
        self._confirm(self._hello_at)

    def heard(self, sequence: int) -> None:
        """The scheduler echoed heartbeat `sequence` of this stream."""
        sent = None
        while self._beats and self._beats[0][0] <= sequence:
            sent = self._beats.popleft()[1]
        if sent is not None:
            self._confirm(sent)

    def _confirm(self, sent: float) -> None:
        if self._confirmed is None or sent > self._confirmed:
            self._confirmed = sent

    def fence_in(self) -> float | None:
        """Seconds until running attempts must be killed (0 or less: now) for want of a sign
        that the scheduler hears the node; None when nothing runs or fencing is off."""
        if self.fence_after is None or self._confirmed is None or not self._running:
            return None
        return self._confirmed + self.fence_after - self._now()

    def fenced(self, attempt_ids: Iterable[str]) -> None:
        """These attempts were killed with no result: the next hello does not list them, so
        the scheduler requeues them (if it has not already)."""
        for a in attempt_ids:
            self._running.pop(a, None)

    def drain(self, leave: bool) -> None:
        """The node is being removed: take no new work (for the rest of this process's life),
        and with `leave`, exit once idle."""
        self.draining = True
        if leave and not self.leaving:
            self.leaving = True
            self._quiet_since = self._now()

    # --- what to send ----------------------------------------------------------------

    def has_pending(self) -> bool:
        return self._connected and bool(
            self._heartbeat or self._started or self._results_to_send or self._chunks
            or self._staging_to_send or self._start_info_to_send or self._node_errors
        )

    def take(self) -> list[agent_pb2.AgentMessage]:
        """Everything queued, merged into as few messages as the size limits allow."""
        out: list[agent_pb2.AgentMessage] = []
        while self.has_pending():
            m = agent_pb2.AgentMessage()
            items = 0
            if self._heartbeat is not None:
                # Numbered when sent, so the scheduler sees 1, 2, 3... even when a queued
                # heartbeat was refreshed or dropped with a broken stream.
                self._sequence += 1
                self._heartbeat.sequence = self._sequence
                if self.fence_after is not None:
                    self._beats.append((self._sequence, self._now()))
                m.heartbeat.CopyFrom(self._heartbeat)
                self._heartbeat = None
            if self._start_info_to_send:
                assert self.start_task_info is not None
                m.start_task_info.CopyFrom(self.start_task_info)
                self._start_info_to_send = False
            while self._node_errors and items < MAX_ITEMS_PER_MESSAGE:
                m.node_errors.append(self._node_errors.popleft())
                items += 1
            while self._started and items < MAX_ITEMS_PER_MESSAGE:
                st = self._started.popleft()
                if st.attempt_id in self._unacked:
                    continue  # it has ended: its result carries the start time
                m.started.append(st)
                items += 1
            while self._results_to_send and items < MAX_ITEMS_PER_MESSAGE:
                a = next(iter(self._results_to_send))
                del self._results_to_send[a]
                m.results.append(self._unacked[a])
                items += 1
            while self._staging_to_send and items < MAX_ITEMS_PER_MESSAGE:
                key = next(iter(self._staging_to_send))
                del self._staging_to_send[key]
                m.staging_requests.append(self._staging[key])
                items += 1
            size = 0
            while self._chunks and items < MAX_ITEMS_PER_MESSAGE:
                n = len(self._chunks[0].data)
                if size and size + n > MAX_CHUNK_BYTES_PER_MESSAGE:
                    break
                m.file_chunks.append(self._chunks.popleft())
                self._chunk_bytes -= n
                size += n
                items += 1
            out.append(m)
        return out

    # --- state -----------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        """Slots the scheduler may still fill; none while draining or after a failed setup."""
        if self.draining or self.setup_failure is not None:
            return 0
        return max(0, self.identity.task_slots - sum(self._running.values()))

    @property
    def running(self) -> list[str]:
        return list(self._running)

    @property
    def staging(self) -> list[StagingKey]:
        """Staging requests not yet granted."""
        return list(self._staging)

    @property
    def unacked(self) -> list[str]:
        return list(self._unacked)

    @property
    def queued_chunk_bytes(self) -> int:
        return self._chunk_bytes

    def should_exit(self) -> bool:
        """A leaving agent exits once nothing runs and the outbox is empty, or once acks have
        stopped coming for DRAIN_ACK_PATIENCE (a scheduler that never acks must not keep a
        removed node alive)."""
        if not self.leaving or self._running:
            return False
        return not self._unacked or self._now() - self._quiet_since >= DRAIN_ACK_PATIENCE

    def seconds_until_exit_check(self) -> float | None:
        """How long until should_exit may change with no new event; None: only an event
        can change it."""
        if not self.leaving or self._running or not self._unacked:
            return None
        return max(0.0, DRAIN_ACK_PATIENCE - (self._now() - self._quiet_since))
