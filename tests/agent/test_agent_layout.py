"""Reading a task's files: chunking, and nothing outside the attempt's stdout/stderr."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.layout import CHUNK_BYTES, NodeLayout, UnsafePath, answer_read, read_chunks
from shoal.agent.v1 import agent_pb2


@pytest.fixture
def layout(tmp_path: Path) -> NodeLayout:
    lay = NodeLayout(tmp_path / "node")
    lay.create()
    paths = lay.attempt("j1", "t1", "a1")
    paths.wd.mkdir(parents=True)
    return lay


def read_all(layout: NodeLayout, name: str, offset: int = 0) -> list[tuple[int, bytes, bool]]:
    fd = layout.open_task_file("j1", "t1", "a1", name)
    try:
        return list(read_chunks(fd, offset))
    finally:
        os.close(fd)


def test_a_file_is_read_in_chunks_of_at_most_64_kib(layout: NodeLayout) -> None:
    data = os.urandom(150_000)
    layout.attempt("j1", "t1", "a1").stdout.write_bytes(data)
    chunks = read_all(layout, "stdout.txt")
    assert [len(d) for _, d, _ in chunks] == [CHUNK_BYTES, CHUNK_BYTES, 150_000 - 2 * CHUNK_BYTES]
    assert [eof for *_, eof in chunks] == [False, False, True]
    assert [off for off, *_ in chunks] == [0, CHUNK_BYTES, 2 * CHUNK_BYTES]
    assert b"".join(d for _, d, _ in chunks) == data


def test_reading_from_an_offset(layout: NodeLayout) -> None:
    layout.attempt("j1", "t1", "a1").stderr.write_bytes(b"0123456789")
    assert read_all(layout, "stderr.txt", 4) == [(4, b"456789", True)]
    assert read_all(layout, "stderr.txt", 10) == [(10, b"", True)]
    assert read_all(layout, "stderr.txt", 99) == [(99, b"", True)]
    with pytest.raises(UnsafePath, match="offset"):
        read_all(layout, "stderr.txt", -1)


def test_an_empty_file_is_one_empty_last_chunk(layout: NodeLayout) -> None:
    layout.attempt("j1", "t1", "a1").stdout.write_bytes(b"")
    assert read_all(layout, "stdout.txt") == [(0, b"", True)]


@pytest.mark.parametrize("name", ["pid", "wd/secret", "../../../../etc/passwd", "/etc/passwd", ""])
def test_only_stdout_and_stderr_can_be_read(layout: NodeLayout, name: str) -> None:
    with pytest.raises(UnsafePath, match="only stdout.txt and stderr.txt"):
        layout.open_task_file("j1", "t1", "a1", name)


@pytest.mark.parametrize(
    ("job", "task", "attempt"), [("..", "t1", "a1"), ("j1", "../t1", "a1"), ("j1", "t1", "a1/.."),
                                 ("j1", "t1", "x" * 65), ("", "t1", "a1"), ("j1\x00", "t1", "a1")],
)
def test_ids_are_checked_before_they_become_paths(
    layout: NodeLayout, job: str, task: str, attempt: str
) -> None:
    with pytest.raises(UnsafePath, match="not a valid id"):
        layout.open_task_file(job, task, attempt, "stdout.txt")


def test_a_missing_attempt_is_not_found(layout: NodeLayout) -> None:
    with pytest.raises(FileNotFoundError):
        layout.open_task_file("j1", "t1", "other", "stdout.txt")


def test_a_symlink_planted_by_the_task_is_not_followed(layout: NodeLayout, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("agent secret")
    layout.attempt("j1", "t1", "a1").stdout.symlink_to(secret)
    with pytest.raises(OSError):
        read_all(layout, "stdout.txt")
    # A linked attempt directory is refused just the same.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "stdout.txt").write_text("outside")
    (layout.tasks / "j1" / "t1" / "linked").symlink_to(elsewhere)
    with pytest.raises(OSError):
        layout.open_task_file("j1", "t1", "linked", "stdout.txt")


def test_a_fifo_is_refused_without_hanging(layout: NodeLayout) -> None:
    os.mkfifo(layout.attempt("j1", "t1", "a1").stdout)
    with pytest.raises(OSError, match="not a regular file"):
        read_all(layout, "stdout.txt")


def test_a_read_request_is_answered_with_chunks_or_one_error(layout: NodeLayout) -> None:
    layout.attempt("j1", "t1", "a1").stdout.write_bytes(b"y" * (CHUNK_BYTES + 1))

    def answer(**kw: object) -> list[agent_pb2.FileChunk]:
        fields: dict[str, object] = {"job_id": "j1", "task_id": "t1", "attempt_id": "a1", "path": "stdout.txt"}
        return list(answer_read(layout, agent_pb2.FileRead(request_id=9, **(fields | kw))))

    ok = answer(offset=1)
    assert [(c.request_id, c.offset, len(c.data), c.eof, c.error) for c in ok] == [
        (9, 1, CHUNK_BYTES, True, "")
    ]
    for kw in ({"path": "../pid"}, {"job_id": "../.."}, {"attempt_id": "a2"}, {"offset": -5}):
        [bad] = answer(**kw)
        assert bad.eof and bad.error and not bad.data, kw
    [missing] = answer(attempt_id="a2")
    assert "not found" in missing.error


def test_a_read_from_the_end_starts_that_many_bytes_before_it(layout: NodeLayout) -> None:
    layout.attempt("j1", "t1", "a1").stdout.write_bytes(b"0123456789")

    def answer(**kw: object) -> list[tuple[int, bytes]]:
        r = agent_pb2.FileRead(job_id="j1", task_id="t1", attempt_id="a1", path="stdout.txt", **kw)
        return [(c.offset, c.data) for c in answer_read(layout, r)]

    assert answer(from_end=3, offset=1) == [(7, b"789")]  # from_end wins over offset
    assert answer(from_end=50) == [(0, b"0123456789")]  # more than the file: all of it
    assert answer(from_end=0, offset=8) == [(8, b"89")]
