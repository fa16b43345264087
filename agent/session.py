"""What the agent says to the scheduler, decided without I/O.

The I/O shell (agent.main) feeds a Session events — a connection opened or lost, an
assignment, a process started or ended, acknowledgements, file chunks, a drain — and writes
the AgentMessages `take()` returns. Everything that needs thought lives here so tests can drive
it with no network and no clock: the hello after every (re)connect, resending every
unacknowledged result, merging queued events into as few messages as possible, free slots,
and when a leaving agent may exit.

Like Nomad's client, results are never dropped because a send failed: they stay until the
scheduler acknowledges them, and every new stream resends them all.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from services.common.timeutil import to_timestamp
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2

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


class Session:
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
        self.draining = False
        self.leaving = False
        self._quiet_since = now()

    # --- connection ------------------------------------------------------------------

    def connect(self) -> agent_pb2.AgentMessage:
        """A stream opened: returns the hello to send first. Every unacknowledged result is
        queued to follow it."""
        self._connected = True
        self._results_to_send = dict.fromkeys(self._unacked)
        self._chunks.clear()
        self._chunk_bytes = 0
        self._heartbeat = None
        i = self.identity
        return agent_pb2.AgentMessage(
            hello=agent_pb2.Hello(
                node=i.node,
                credential=i.credential,
                task_slots=i.task_slots,
                running_attempts=list(self._running),
                finished_attempts=list(self._unacked),
                agent_version=i.agent_version,
                hostname=i.hostname,
            )
        )

    def disconnect(self) -> None:
        """The stream broke. File chunks and heartbeats belong to it and are dropped; started
        events not yet taken are kept; results are resent after the next hello anyway."""
        self._connected = False
        self._results_to_send.clear()
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
                m.heartbeat.CopyFrom(self._heartbeat)
                self._heartbeat = None
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
        """Slots the scheduler may still fill; none while draining."""
        if self.draining:
            return 0
        return max(0, self.identity.task_slots - sum(self._running.values()))

    @property
    def running(self) -> list[str]:
        return list(self._running)

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
