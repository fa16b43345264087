"""The client side of the watch API (WatchJob, WatchNodes): a stream of events that resumes
by itself after a lost connection.

Every message of a watch stream carries the revision it has sent everything up to; when the
connection drops (the gateway restarts, the network blips, a service stops) the stream is
opened again from that revision, so the caller sees every change once, in order, and never
twice. What cannot be resumed is raised: a revision that is no longer kept (OUT_OF_RANGE,
reason REVISION_COMPACTED — the service restarted, or the caller fell too far behind) means
listing again and watching from the list's revision.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import grpc

from shoal.errors import ShoalError, StatusCode

E = TypeVar("E")

RESUMABLE = frozenset({StatusCode.UNAVAILABLE, StatusCode.CANCELLED})
"""A stream that ends so has lost its connection or its server (one that stops cancels its
streams), rather than been refused."""
FIRST_DELAY = 0.2
MAX_DELAY = 2.0


class WatchStream(Generic[E]):
    """The events of a watch, oldest first; iterate it. `revision` is where it would resume
    (and where a later watch can start to miss nothing after what was seen).

    `open(from_revision, timeout)` opens the gRPC stream. A watch from now (revision 0) is
    opened before the constructor returns and has its first answer (the resource as it is,
    events of type CURRENT): whatever the caller does next is a change it will see.
    `reconnect_for` is how long (in seconds) to keep trying to resume while the service
    cannot be reached before raising; `deadline` (time.monotonic()) ends the whole watch
    with DEADLINE_EXCEEDED.
    """

    def __init__(
        self, open: Callable[[int, float | None], Any], from_revision: int = 0, *,
        reconnect_for: float = 60.0, deadline: float | None = None,
    ) -> None:
        self._open = open
        self.revision = from_revision
        self._reconnect_for = reconnect_for
        self._deadline = deadline
        self._call: Any = None
        self._closed = False
        self._buffer: deque[E] = deque()
        self._responses = self._run()
        self._upto = from_revision
        if from_revision == 0:
            first = next(self._responses, None)
            if first is not None:
                self._take(first)

    def __iter__(self) -> Iterator[E]:
        return self

    def __next__(self) -> E:
        while not self._buffer:
            self._take(next(self._responses))
        event = self._buffer.popleft()
        if self._buffer:
            # A caller that stops here resumes here: the events after it are not seen yet.
            self.revision = event.revision  # type: ignore[attr-defined]
        else:
            self.revision = self._upto
        return event

    def _take(self, response: Any) -> None:
        self._buffer.extend(response.events)
        self._upto = response.revision
        if not self._buffer:
            self.revision = self._upto  # a progress message moves the resume point too

    def close(self) -> None:
        """End the watch (from any thread): the iteration stops."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    def __enter__(self) -> WatchStream[E]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _left(self) -> float | None:
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ShoalError(StatusCode.DEADLINE_EXCEEDED, "the watch's deadline passed")
        return left

    def _run(self) -> Iterator[Any]:
        failing_since: float | None = None
        delay = FIRST_DELAY
        while not self._closed:
            self._call = call = self._open(self.revision, self._left())
            try:
                for response in call:
                    failing_since, delay = None, FIRST_DELAY
                    yield response
                return  # the server ended the stream (its deadline): nothing more
            except grpc.RpcError as e:
                if self._closed:
                    return
                err = ShoalError.from_rpc_error(e)
                if err.code not in RESUMABLE or err.reason == "REVISION_COMPACTED":
                    raise err from None
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since >= self._reconnect_for:
                    raise err from None
                left = self._left()
                time.sleep(delay if left is None else min(delay, left))
                delay = min(2 * delay, MAX_DELAY)
            finally:
                # Also when the caller stops iterating: the server should not keep a stream
                # nobody reads (nor the gateway wait for it when it stops).
                call.cancel()
