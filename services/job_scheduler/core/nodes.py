"""Node events: an agent's hello and messages, its stream ending, liveness over time, and the
pool-manager's node control (disable scheduling, remove)."""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from services.job_scheduler.core.failures import (
    NODE_DISABLED_REQUEUE,
    NODE_DISABLED_TERMINATE,
    NODE_REMOVED,
    NODE_REMOVED_REQUEUE,
    NOT_DELIVERED,
)
from services.job_scheduler.core.plan import (
    AckResults,
    Drain,
    JobEnded,
    NewConstraints,
    NodeChanged,
    NodeKey,
    Plan,
    StartAttempt,
    TaskChanged,
)
from services.job_scheduler.core.state import CoreState, intend, is_open
from services.job_scheduler.model import (
    Attempt,
    CancelIntent,
    Failure,
    Job,
    Report,
    StorageWait,
    TaskState,
)
from services.job_scheduler.sessions import Liveness, NodeSession, check_liveness

MAX_NODE_ERRORS = 20


class NodeDeallocation(IntEnum):
    # Values match shoal.v1.NodeDeallocationOption.
    REQUEUE = 1
    TERMINATE = 2
    TASK_COMPLETION = 3


class Hello(NamedTuple):
    pool_id: str
    node_id: str
    slots: int
    hostname: str = ""
    setup_failure: Failure | None = None
    start_task_info: bytes | None = None
    running: tuple[str, ...] = ()
    """Attempts the agent still runs."""
    finished: tuple[str, ...] = ()
    """Attempts whose results wait in its outbox."""


class Welcome(NamedTuple):
    session: NodeSession
    stream_id: int
    cancel_attempts: list[str]
    """What it runs that nobody wants any more."""
    drain: bool
    """It is being removed: it takes no new work."""


class AgentReport(NamedTuple):
    """What one agent message says, decoded."""

    started: list[tuple[str, float]]
    results: list[Report]
    start_task_info: bytes | None = None
    node_errors: tuple[bytes, ...] = ()
    storage_waits: tuple[tuple[str, StorageWait], ...] = ()
    """(attempt id, its wait)."""
    disk_free: int | None = None
    """Free bytes under the node root, when the message carries a heartbeat."""


class NodeEvents(CoreState):
    def hello(self, key: NodeKey, h: Hello, now: float) -> Plan:
        """A node connects (or reconnects): what it still runs is reconciled with what it was
        given, and it gets a stream of its own; any older stream of it is over."""
        self._begin()
        s = self.sessions.get(key)
        if s is None:
            s = self.sessions[key] = NodeSession(key, h.pool_id, h.node_id, h.slots, now)
        s.stream_id = next(self.stream_ids)
        s.connected, s.liveness, s.last_seen = True, Liveness.CONNECTED, now
        s.total_slots, s.hostname = h.slots, h.hostname
        s.setup_failure, s.start_task_info = h.setup_failure, h.start_task_info
        reported = set(h.running) | set(h.finished)
        mine = self._attempts_on(key)
        for a in mine:
            if a.attempt_id not in reported:
                if a.start_time is None:
                    # Never heard of as started: it never reached this node, or the node's
                    # earlier life ended before it ran. Not the task's fault nor a requeue.
                    intend(a, CancelIntent.RETURN, NOT_DELIVERED)
                self._resolve(a, None, now)
        s.attempts = {a.attempt_id for a in mine if a.attempt_id in reported}
        s.used_slots = sum(self.attempts[i].slots for i in s.attempts)
        unwanted = [
            i for i in h.running
            if i not in self.attempts or self.attempts[i].node_key != key
            or self.attempts[i].cancel != CancelIntent.NONE
        ]
        for job in self.ended_away.pop(key, []):
            self._plan.send(key, s.stream_id, JobEnded(job))
        # Limits updated since their assignment may not have reached its earlier stream.
        updated = [a for a in mine if a.constraints_changed and a.attempt_id in h.running
                   and a.cancel == CancelIntent.NONE]
        if updated:
            self._plan.send(key, s.stream_id, NewConstraints(updated))
        self._plan.events.append(NodeChanged(key, "CONNECTED"))
        self._kick()
        self._plan.reply = Welcome(s, s.stream_id, unwanted, s.removing)
        return self._finish(now)

    def heartbeat(self, key: NodeKey, stream_id: int, now: float,
                  disk_free: int | None = None) -> Plan | None:
        """A message that says only that the node is alive (most messages of an idle fleet):
        None unless it changes something."""
        s = self.sessions.get(key)
        if s is None or s.stream_id != stream_id:
            return None
        s.last_seen = now
        if disk_free is not None:
            s.disk_free = disk_free
        self.tally(key[0], s.pool_id).heartbeats += 1
        if s.liveness != Liveness.UNREACHABLE and not self._disk_changes(s):
            return None
        return self.agent_message(key, stream_id, AgentReport([], [], disk_free=disk_free), now)

    def _disk_changes(self, s: NodeSession) -> bool:
        return s.disk_free is not None and s.short_of_disk != (
            s.disk_free < self.timing.node_min_free_bytes)

    def _check_disk(self, s: NodeSession) -> None:
        """A node short of space takes no new tasks (what runs there goes on); it takes them
        again once its heartbeats say the space is back."""
        if not self._disk_changes(s):
            return
        s.short_of_disk = not s.short_of_disk
        self._plan.events.append(
            NodeChanged(s.key, "SHORT_OF_DISK" if s.short_of_disk else "DISK_SPACE_BACK"))
        if not s.short_of_disk:
            self._kick()

    def agent_message(self, key: NodeKey, stream_id: int, m: AgentReport, now: float) -> Plan:
        self._begin()
        s = self.sessions.get(key)
        if s is None or s.stream_id != stream_id:
            return self._finish(now)  # an older stream of a node that has reconnected
        s.last_seen = now
        if s.liveness == Liveness.UNREACHABLE:
            s.liveness = Liveness.CONNECTED
            self._plan.events.append(NodeChanged(key, "CONNECTED"))
            self._kick()
        if m.disk_free is not None:
            s.disk_free = m.disk_free
        self._check_disk(s)
        if m.start_task_info is not None:
            s.start_task_info = m.start_task_info
        if m.node_errors:
            s.errors = [*s.errors, *m.node_errors][-MAX_NODE_ERRORS:]
        if m.start_task_info is not None or m.node_errors:
            self._plan.events.append(NodeChanged(key, "REPORTED"))
        for attempt_id, wait in m.storage_waits:
            a = self.attempts.get(attempt_id)
            if a is not None and a.node_key == key:
                a.storage_wait = wait
        for attempt_id, start_time in m.started:
            a = self.attempts.get(attempt_id)
            if a is not None and a.node_key == key and a.start_time is None:
                a.storage_wait = None  # its files are staged: it runs
                a.start_time = start_time
                row = StartAttempt(a.task_pk, attempt_id, start_time, now)
                self._row(row)
                job = self.jobs.get(a.job_pk)
                if job is not None:
                    self._plan.events.append(TaskChanged(
                        job.account, job.id, a.task_pk, TaskState.RUNNING, task_id=a.task_id,
                        row=row))
        if m.results:
            for r in m.results:
                a = self.attempts.get(r.attempt_id)
                if a is not None and a.node_key == key:
                    self._resolve(a, r, now)
                # else: stale (requeued, or its job is gone): acknowledged and ignored — fencing.
            self._plan.send(key, stream_id, AckResults([r.attempt_id for r in m.results]))
        return self._finish(now)

    def disconnect(self, key: NodeKey, stream_id: int, now: float) -> Plan:
        """The stream ended. The session stays (with its attempts and its `removing` flag): the
        agent may reconnect, and if it does not, liveness declares it lost."""
        self._begin()
        s = self.sessions.get(key)
        if s is None or s.stream_id != stream_id:
            return self._finish(now)
        s.connected = False
        self._plan.events.append(NodeChanged(key, "DISCONNECTED"))
        if s.removing:
            # Being taken away, and what we asked it to stop will not be reported now: those
            # attempts end as their cancel says, at once rather than when the node is lost.
            # (What it was let finish waits for it to come back, or for liveness.)
            for a in self._attempts_on(key):
                if a.cancel != CancelIntent.NONE:
                    self._resolve(a, None, now)
        return self._finish(now)

    def staging_attempts(self, key: NodeKey, attempt_ids: list[str]) -> dict[str, tuple[Attempt, Job]]:
        """The attempts among these that are assigned to this node now, with their jobs: a
        staging grant is scoped to exactly one live attempt."""
        out = {}
        for aid in attempt_ids:
            a = self.attempts.get(aid)
            job = self.jobs.get(a.job_pk) if a is not None else None
            if a is not None and job is not None and a.node_key == key:
                out[aid] = (a, job)
        return out

    # -- node control (from the pool-manager) -----------------------------------------------

    def set_node_scheduling(
        self, key: NodeKey, enabled: bool, option: int, now: float
    ) -> Plan:
        """Disabling keeps new work off the node and requeues (REQUEUE: not a retry), fails
        (TERMINATE) or lets finish (TASK_COMPLETION) what runs there; a node not connected
        now has its attempts marked, to be cancelled when it says hello or resolved when it is
        lost. The flag lives on the session, so it survives reconnects; a node with no session
        yet is told again by the pool-manager once its session shows up without the flag."""
        self._begin()
        s = self.sessions.get(key)
        if s is None or (enabled and not s.scheduling_disabled):
            return self._finish(now)
        s.scheduling_disabled = not enabled
        if enabled:
            self._plan.events.append(NodeChanged(key, "ENABLED"))
            self._kick()
            return self._finish(now)
        attempts = self._attempts_on(key)
        if option == NodeDeallocation.TERMINATE:
            self._cancel(attempts, CancelIntent.TERMINATE, NODE_DISABLED_TERMINATE)
        elif option != NodeDeallocation.TASK_COMPLETION:
            # Because of its node, like a removal: counted as a requeue.
            self._cancel(attempts, CancelIntent.REQUEUE, NODE_DISABLED_REQUEUE)
        self._plan.events.append(NodeChanged(key, "SCHEDULING_DISABLED"))
        return self._finish(now)

    def remove_nodes(self, keys: list[NodeKey], option: int, now: float) -> Plan:
        """Take nodes out of scheduling. Running tasks finish (TASK_COMPLETION), or are
        cancelled and requeued (REQUEUE) or failed (TERMINATE). A node that is not connected
        is taken to be gone: its attempts are resolved now."""
        self._begin()
        for key in keys:
            s = self.sessions.get(key)
            attempts = self._attempts_on(key)
            connected = s is not None and s.connected
            if s is not None:
                s.removing = True
            if not connected:
                self.ended_away.pop(key, None)  # leaving while away: it will not be back
            self._send(key, Drain())
            self._plan.events.append(NodeChanged(key, "REMOVING"))
            if option == NodeDeallocation.TASK_COMPLETION:
                continue  # they finish; if the node is lost meanwhile, liveness requeues them
            intent, why = ((CancelIntent.TERMINATE, NODE_REMOVED)
                           if option == NodeDeallocation.TERMINATE
                           else (CancelIntent.REQUEUE, NODE_REMOVED_REQUEUE))
            if connected:
                self._cancel(attempts, intent, why)
            else:
                for a in attempts:
                    intend(a, intent, why)
                    self._resolve(a, None, now)
        return self._finish(now)

    # -- time -------------------------------------------------------------------------------

    def tick(self, now: float) -> Plan:
        """What time alone changes: jobs past their wall clock end, silent nodes become
        unreachable and then lost (their attempts requeued), and after a restart's grace the
        attempts of nodes that never came back are requeued."""
        self._begin()
        for job in [j for j in self.jobs.values() if j.max_wall_clock is not None
                    and is_open(j)
                    and now - j.create_time >= j.max_wall_clock]:
            self._end_job_tasks(job, "MaxWallClockTimeExpiry", now)
        t = self.timing
        unreachable, lost = check_liveness(
            list(self.sessions.values()), now, t.unreachable_after, t.lost_after)
        for s in unreachable:
            self._plan.events.append(NodeChanged(s.key, "UNREACHABLE"))
        for s in lost:
            for aid in list(s.attempts):
                a = self.attempts.get(aid)
                if a is not None:
                    self._resolve(a, None, now)
            # A silent node that wakes up must say hello again, so what it still runs is
            # reconciled (and cancelled) rather than trusted.
            self._plan.close_streams.append(s.key)
            s.connected = False
            self._plan.events.append(NodeChanged(s.key, "LOST"))
            if s.removing:
                del self.sessions[s.key]  # the pool-manager is taking it away: forget it
                self.ended_away.pop(s.key, None)
        if now - self.started_at >= t.reconnect_grace:
            # Attempts recorded before a restart on nodes that never came back.
            for a in [a for a in self.attempts.values() if a.node_key not in self.sessions]:
                self._resolve(a, None, now)
            for k in [k for k in self.ended_away if k not in self.sessions]:
                del self.ended_away[k]  # not back: nothing left there to release
        return self._finish(now)

    def node_sessions(self, account: str, pool_id: str) -> list[NodeSession]:
        p = pool_id.lower()
        return [s for k, s in self.sessions.items() if k[0] == account and k[1] == p]
