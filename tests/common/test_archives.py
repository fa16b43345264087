"""Archive inspection and extraction: good archives land complete with their modes; unsafe
members and bombs are refused and leave nothing behind."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from services.common.archives import (
    ArchiveError,
    ArchiveLimits,
    check_member_name,
    extract_archive,
    inspect_archive,
)


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return path


def tinfo(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.linkname = link
    return ti


def make_zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    """members: (name, data, unix mode with file type bits)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            zi = zipfile.ZipInfo(name)
            zi.external_attr = mode << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return path


def assert_refused(archive: Path, fmt: str, dest: Path, needle: str, **limits: int) -> None:
    lim = ArchiveLimits(**limits)
    with pytest.raises(ArchiveError) as exc:
        extract_archive(archive, fmt, dest, lim)
    assert needle in exc.value.message
    assert not dest.exists()
    # Nothing left next to the destination either: no temp dir, no stray file outside.
    assert sorted(p.name for p in dest.parent.iterdir()) == []


# --- good archives -------------------------------------------------------------------------


def test_zip_extracts_files_dirs_modes_and_inner_symlinks(tmp_path: Path) -> None:
    src = make_zip(tmp_path / "app.zip", [
        ("bin/", b"", stat.S_IFDIR | 0o755),
        ("bin/run.sh", b"#!/bin/sh\necho hi\n", stat.S_IFREG | 0o755),
        ("./data/in.txt", b"input", stat.S_IFREG | 0o640),
        ("suid", b"x", stat.S_IFREG | 0o4755),
        ("latest", b"bin/run.sh", stat.S_IFLNK | 0o777),
    ])
    summary = inspect_archive(src, "zip")
    assert (summary.members, summary.files) == (5, 3)
    assert summary.total_size == len(b"#!/bin/sh\necho hi\n") + len(b"input") + 1

    dest = tmp_path / "out" / "app"
    extract_archive(src, "zip", dest)
    assert (dest / "bin/run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((dest / "bin/run.sh").stat().st_mode) == 0o755
    assert (dest / "data/in.txt").read_text() == "input"
    assert stat.S_IMODE((dest / "data/in.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((dest / "suid").stat().st_mode) == 0o755  # setuid dropped
    assert os.readlink(dest / "latest") == "bin/run.sh"
    assert (dest / "latest").read_bytes().startswith(b"#!")
    assert [p.name for p in dest.parent.iterdir()] == ["app"]  # the temp dir is gone


def test_tar_gz_extracts_files_links_and_modes(tmp_path: Path) -> None:
    src = make_tar(tmp_path / "app.tar.gz", [
        (tinfo("./", tarfile.DIRTYPE, 0o755), None),
        (tinfo("./tool", mode=0o750), b"binary"),
        (tinfo("./lib", tarfile.DIRTYPE, 0o555), None),
        (tinfo("./lib/a.so", mode=0o644), b"lib"),
        (tinfo("./lib/same.so", tarfile.LNKTYPE, link="./lib/a.so"), None),
        (tinfo("./lib/up", tarfile.SYMTYPE, link="../tool"), None),
    ])
    summary = inspect_archive(src, "tar.gz")
    assert summary.members == 6
    assert summary.total_size == len(b"binary") + len(b"lib")

    dest = tmp_path / "x" / "pkg"
    extract_archive(src, "tar.gz", dest)
    assert (dest / "tool").read_bytes() == b"binary"
    assert stat.S_IMODE((dest / "tool").stat().st_mode) == 0o750
    assert (dest / "lib/same.so").read_bytes() == b"lib"
    assert (dest / "lib/up").read_bytes() == b"binary"
    # A read-only directory keeps its read/execute bits; the owner keeps write to clean up.
    assert stat.S_IMODE((dest / "lib").stat().st_mode) == 0o755


def test_extract_refuses_an_existing_destination(tmp_path: Path) -> None:
    src = make_zip(tmp_path / "a.zip", [("f", b"1", stat.S_IFREG | 0o644)])
    dest = tmp_path / "d"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="already exists"):
        extract_archive(src, "zip", dest)


def test_not_an_archive_and_unknown_format(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"this is not an archive at all")
    with pytest.raises(ArchiveError, match="not a valid zip"):
        inspect_archive(junk, "zip")
    with pytest.raises(ArchiveError, match="not a valid tar.gz"):
        inspect_archive(junk, "tar.gz")
    with pytest.raises(ArchiveError, match="unknown archive format"):
        inspect_archive(junk, "rar")


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
@pytest.mark.parametrize(
    ("name", "needle"),
    [("../x", "'..' segment"), ("a/../../x", "'..' segment"), ("/etc/cron.d/x", "absolute")],
)
def test_escaping_member_names_are_refused(tmp_path: Path, fmt: str, name: str, needle: str) -> None:
    work = tmp_path / "w"
    work.mkdir()
    if fmt == "zip":
        src = make_zip(tmp_path / "bad.zip", [("ok", b"1", stat.S_IFREG | 0o644),
                                              (name, b"evil", stat.S_IFREG | 0o644)])
    else:
        src = make_tar(tmp_path / "bad.tar.gz", [(tinfo("ok"), b"1"), (tinfo(name), b"evil")])
    with pytest.raises(ArchiveError, match=needle):
        inspect_archive(src, fmt)
    assert_refused(src, fmt, work / "dest", needle)
    assert not (tmp_path / "x").exists()


def test_nul_in_a_member_name_never_reaches_the_disk(tmp_path: Path) -> None:
    """tarfile and zipfile cut names at NUL when reading; the rule stands behind them."""
    src = make_tar(tmp_path / "nul.tar.gz", [(tinfo("a\x00b"), b"1")])
    with pytest.raises(ArchiveError, match="NUL"):
        check_member_name("a\x00/b")
    work = tmp_path / "w"
    work.mkdir()
    extract_archive(src, "tar.gz", work / "d")
    assert [p.name for p in (work / "d").iterdir()] == ["a"]


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "sub/../../x"])
def test_symlink_out_is_refused(tmp_path: Path, fmt: str, target: str) -> None:
    work = tmp_path / "w"
    work.mkdir()
    if fmt == "zip":
        src = make_zip(tmp_path / "l.zip", [("link", target.encode(), stat.S_IFLNK | 0o777)])
    else:
        src = make_tar(tmp_path / "l.tar.gz", [(tinfo("link", tarfile.SYMTYPE, link=target), None)])
    with pytest.raises(ArchiveError, match="symlink"):
        inspect_archive(src, fmt)
    assert_refused(src, fmt, work / "dest", "symlink")


def test_symlink_chain_out_is_refused_though_each_link_looks_inside(tmp_path: Path) -> None:
    """`y -> x/..` looks like "." and `x -> .` is ".", but together y is the parent of the
    destination: only resolving the finished tree sees it."""
    work = tmp_path / "w"
    work.mkdir()
    src = make_tar(tmp_path / "chain.tar.gz", [
        (tinfo("y", tarfile.SYMTYPE, link="x/.."), None),
        (tinfo("x", tarfile.SYMTYPE, link="."), None),
    ])
    assert_refused(src, "tar.gz", work / "dest", "symlink leads outside")


def test_writing_through_a_symlink_member_is_refused(tmp_path: Path) -> None:
    """A file under a symlinked directory would land wherever the link points."""
    work = tmp_path / "w"
    work.mkdir()
    src = make_tar(tmp_path / "through.tar.gz", [
        (tinfo("d", tarfile.SYMTYPE, link="."), None),
        (tinfo("d/f"), b"data"),
    ])
    assert_refused(src, "tar.gz", work / "dest", "non-directory")


@pytest.mark.parametrize("link", ["../../etc/passwd", "/etc/passwd", "missing"])
def test_hard_link_out_or_to_nothing_is_refused(tmp_path: Path, link: str) -> None:
    work = tmp_path / "w"
    work.mkdir()
    src = make_tar(tmp_path / "h.tar.gz", [(tinfo("h", tarfile.LNKTYPE, link=link), None)])
    assert_refused(src, "tar.gz", work / "dest", "hard link")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_devices_and_fifos_are_refused(tmp_path: Path, kind: bytes) -> None:
    work = tmp_path / "w"
    work.mkdir()
    src = make_tar(tmp_path / "dev.tar.gz", [(tinfo("dev", kind), None)])
    with pytest.raises(ArchiveError, match="device"):
        inspect_archive(src, "tar.gz")
    assert_refused(src, "tar.gz", work / "dest", "device")


def test_zip_device_member_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    src = make_zip(tmp_path / "dev.zip", [("fifo", b"", stat.S_IFIFO | 0o644)])
    assert_refused(src, "zip", work / "dest", "not a regular file")


def test_too_many_members(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    src = make_zip(tmp_path / "many.zip", [(f"f{i}", b"", stat.S_IFREG | 0o644) for i in range(11)])
    with pytest.raises(ArchiveError, match="more than 10 members"):
        inspect_archive(src, "zip", ArchiveLimits(max_members=10))
    assert_refused(src, "zip", work / "dest", "more than 10 members", max_members=10)
    extract_archive(src, "zip", work / "ok", ArchiveLimits(max_members=11))
    assert len(list((work / "ok").iterdir())) == 11


def test_bomb_over_the_byte_limit_is_stopped_by_bytes_written(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    src = make_tar(tmp_path / "bomb.tar.gz", [(tinfo(f"z{i}"), bytes(300_000)) for i in range(4)])
    assert src.stat().st_size < 10_000
    with pytest.raises(ArchiveError, match="uncompressed size over"):
        inspect_archive(src, "tar.gz", ArchiveLimits(max_total_bytes=1_000_000))
    assert_refused(src, "tar.gz", work / "dest", "bytes written", max_total_bytes=1_000_000)


def test_zip_that_lies_about_its_size_is_refused(tmp_path: Path) -> None:
    """The central directory claims 10 bytes; the data inflates to 1 MiB."""
    work = tmp_path / "w"
    work.mkdir()
    src = make_zip(tmp_path / "liar.zip", [("big", bytes(1 << 20), stat.S_IFREG | 0o644)])
    raw = bytearray(src.read_bytes())
    cd = raw.index(b"PK\x01\x02")
    raw[cd + 24:cd + 28] = (10).to_bytes(4, "little")  # uncompressed size
    src.write_bytes(bytes(raw))
    assert inspect_archive(src, "zip").total_size == 10
    with pytest.raises(ArchiveError) as exc:
        extract_archive(src, "zip", work / "dest")
    assert "big" in exc.value.message or "valid zip" in exc.value.message
    assert list(work.iterdir()) == []


def test_bomb_with_a_high_compression_ratio_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    src = make_zip(tmp_path / "ratio.zip", [("zeros", bytes(4 << 20), stat.S_IFREG | 0o644)])
    assert src.stat().st_size < (4 << 20) // 100
    assert_refused(src, "zip", work / "dest", "compression ratio", max_ratio=100, ratio_floor_bytes=0)
    # The same archive under the default limits is fine: 4 MiB is below the ratio floor.
    extract_archive(src, "zip", work / "ok")
    assert (work / "ok" / "zeros").stat().st_size == 4 << 20
