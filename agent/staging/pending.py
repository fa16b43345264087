"""Uploads that wait for storage, kept on the node's disk so that an agent restart does not
lose them (`{node_root}/uploads/`):

- `{attempt}.outputs`: an attempt whose process ended and whose output files wait for
  storage. Its result is reported only once they are stored (or the wait gives up), so a
  restarted agent takes the attempt up again: it reports it as running and goes on uploading.
  Deleted once the attempt's result is in the outbox.
- `{attempt}.logs`: an attempt's stdout.txt/stderr.txt, left to upload after its result was
  reported. Deleted once stored (or refused for good).

Each is one PendingUpload, written to a temporary name, fsynced, renamed into place and the
directory fsynced: a record that exists is whole. Records are written only when storage is
unavailable (or the agent stops mid-upload), never on the path of a task that uploads at once.
Blocking I/O: call from a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog
from google.protobuf.message import DecodeError

from services.common.durable import TMP_SUFFIX, write_durably
from services.common.ids import ID_RE
from services.common.timeutil import to_timestamp
from shoal.agent.v1 import agent_pb2

OUTPUTS = ".outputs"
LOGS = ".logs"

log = structlog.get_logger()


@dataclass(frozen=True)
class Waiting:
    """What a restarted agent finds: attempts whose outputs wait, and logs left to upload."""

    outputs: list[agent_pb2.PendingUpload]
    logs: list[agent_pb2.PendingUpload]


class PendingUploads:
    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)

    def put_outputs(self, a: agent_pb2.Assignment, result: agent_pb2.TaskResult,
                    since: float | None) -> None:
        """`since`: when storage was found unavailable; None when the agent only stops."""
        self._write(a.attempt_id + OUTPUTS, agent_pb2.PendingUpload(
            assignment=a, result=result, since=to_timestamp(since)))

    def put_logs(self, a: agent_pb2.Assignment, since: float) -> None:
        self._write(a.attempt_id + LOGS, agent_pb2.PendingUpload(
            assignment=a, since=to_timestamp(since)))

    def drop_outputs(self, attempt_id: str) -> None:
        self._drop(attempt_id + OUTPUTS)

    def drop_logs(self, attempt_id: str) -> None:
        self._drop(attempt_id + LOGS)

    def has_outputs(self, attempt_id: str) -> bool:
        return self._path(attempt_id + OUTPUTS).exists()

    def load(self) -> Waiting:
        """Every record, oldest first. A leftover temporary file is removed; a record that
        cannot be read is set aside as `.corrupt` (its files stay in the attempt's
        directory until its retention passes)."""
        outputs: list[tuple[float, agent_pb2.PendingUpload]] = []
        logs: list[tuple[float, agent_pb2.PendingUpload]] = []
        self.dir.mkdir(parents=True, exist_ok=True)
        for p in sorted(self.dir.iterdir()):
            if p.name.endswith(TMP_SUFFIX):
                p.unlink(missing_ok=True)
                continue
            kind = OUTPUTS if p.name.endswith(OUTPUTS) else LOGS if p.name.endswith(LOGS) else ""
            if not kind:
                continue
            try:
                rec = agent_pb2.PendingUpload.FromString(p.read_bytes())
                if (rec.assignment.attempt_id + kind != p.name
                        or ID_RE.fullmatch(rec.assignment.attempt_id) is None):
                    raise ValueError("the record does not match its file name")
            except (DecodeError, ValueError, OSError) as e:
                log.error("unreadable pending upload set aside", file=str(p), error=str(e))
                p.rename(p.with_name(p.name + ".corrupt"))
                continue
            at = rec.since.ToNanoseconds() / 1e9
            (outputs if kind == OUTPUTS else logs).append((at, rec))
        return Waiting([r for _, r in sorted(outputs, key=_first)],
                       [r for _, r in sorted(logs, key=_first)])

    def _path(self, name: str) -> Path:
        if ID_RE.fullmatch(name.rsplit(".", 1)[0]) is None:
            raise ValueError(f"attempt_id {name[:80]!r} is not a valid id")
        return self.dir / name

    def _write(self, name: str, rec: agent_pb2.PendingUpload) -> None:
        write_durably(self._path(name), rec.SerializeToString())

    def _drop(self, name: str) -> None:
        # No directory fsync: a deletion lost in a crash only uploads again what is stored,
        # which stores the same object again.
        self._path(name).unlink(missing_ok=True)


def _first(item: tuple[float, agent_pb2.PendingUpload]) -> tuple[float, str]:
    return item[0], item[1].assignment.attempt_id
