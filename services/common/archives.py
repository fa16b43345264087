"""Zip and tar.gz archives: inspection and safe extraction with limits (stdlib only).

The storage-stager inspects an uploaded application version before accepting it; the agent
extracts it on nodes. Both apply the same member rules so an archive the stager accepted does
not fail on a node for a reason the stager could have seen:

- member names are relative, with no `..` segment and no NUL (`./` and empty segments are
  dropped, as tar and unzip do);
- only regular files, directories, symlinks and (tar) hard links; no devices or fifos;
- a symlink must stay inside the destination, a hard link must name an earlier regular file;
- member count and total size are bounded. Extraction counts the bytes it actually writes, not
  the sizes the headers declare, and bounds the compression ratio: headers lie in bombs.

Extraction is blocking I/O (callers in async code run it in a thread). It writes into a
temporary directory next to `dest` and renames it into place only once everything is written
and every symlink checked, so `dest` either does not exist or is complete.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

FORMATS = ("zip", "tar.gz")
_CHUNK = 1 << 20
_MAX_LINK_TARGET = 4096


class ArchiveError(Exception):
    """An archive that is malformed, unsafe or over a limit. `message` says which member."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 100_000
    """Members (files, directories, links) in one archive."""
    max_total_bytes: int = 8 << 30
    """Uncompressed bytes: declared sizes when inspecting, bytes written when extracting."""
    max_ratio: float = 1000.0
    """Uncompressed bytes per archive byte. Real data rarely compresses 1000:1; bombs do."""
    ratio_floor_bytes: int = 64 << 20
    """The ratio applies only beyond this many uncompressed bytes, so a small archive of
    zeros (a test fixture, a sparse file) still extracts."""


DEFAULT_LIMITS = ArchiveLimits()


@dataclass(frozen=True)
class ArchiveSummary:
    members: int
    """Files, directories and links."""
    total_size: int
    """Declared uncompressed size of the regular files, in bytes."""
    files: int
    """Regular files (hard links included)."""


@dataclass(frozen=True)
class _Member:
    """One archive entry, normalised: the same shape for zip and tar."""

    name: str
    """Normalised relative path ("" is the root itself)."""
    kind: str
    """"file", "dir", "symlink" or "hardlink"."""
    size: int
    """Declared size (files)."""
    mode: int
    link: str = ""
    """Symlink target as stored, or the hard link's member path (normalised)."""


def check_member_name(raw: str) -> str:
    """The safe relative form of a member name; raises ArchiveError when it could escape."""
    if "\x00" in raw:
        raise ArchiveError(f"member {raw[:80]!r}: name contains NUL")
    if raw.startswith("/"):
        raise ArchiveError(f"member {raw[:80]!r}: absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"member {raw[:80]!r}: '..' segment")
    return "/".join(parts)


def _check_symlink_target(name: str, target: str) -> None:
    """The lexical check, done early for a clear message; extraction re-checks every link on
    the finished tree, where chains of links are resolved for real."""
    if not target or "\x00" in target:
        raise ArchiveError(f"member {name!r}: empty or NUL symlink target")
    if target.startswith("/"):
        raise ArchiveError(f"member {name!r}: symlink to absolute path {target[:80]!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveError(f"member {name!r}: symlink {target[:80]!r} leads outside")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ArchiveError(f"unknown archive format {fmt!r}; expected one of {', '.join(FORMATS)}")


# --- reading members ----------------------------------------------------------------------


def _zip_member(info: zipfile.ZipInfo, zf: zipfile.ZipFile) -> _Member:
    name = check_member_name(info.filename)
    mode = info.external_attr >> 16
    fmt = stat.S_IFMT(mode)
    if info.flag_bits & 0x1:
        raise ArchiveError(f"member {info.filename[:80]!r}: encrypted")
    if fmt == stat.S_IFLNK:
        if info.file_size > _MAX_LINK_TARGET:
            raise ArchiveError(f"member {name!r}: symlink target too long")
        target = zf.read(info)[: _MAX_LINK_TARGET].decode("utf-8", "replace")
        _check_symlink_target(name, target)
        return _Member(name, "symlink", 0, 0o777, target)
    if info.is_dir() or fmt == stat.S_IFDIR:
        return _Member(name, "dir", 0, (mode & 0o7777) or 0o755)
    if fmt not in (0, stat.S_IFREG):
        raise ArchiveError(f"member {name!r}: not a regular file, directory or symlink")
    if not name:
        raise ArchiveError(f"member {info.filename[:80]!r}: a file with an empty name")
    return _Member(name, "file", info.file_size, (mode & 0o7777) or 0o644)


def _tar_member(ti: tarfile.TarInfo) -> _Member:
    name = check_member_name(ti.name)
    if ti.issym():
        _check_symlink_target(name, ti.linkname)
        return _Member(name, "symlink", 0, 0o777, ti.linkname)
    if ti.islnk():
        raw = ti.linkname
        try:
            target = check_member_name(raw)
        except ArchiveError:
            raise ArchiveError(f"member {name!r}: hard link to {raw[:80]!r} leads outside") from None
        if not target:
            raise ArchiveError(f"member {name!r}: hard link to the archive root")
        return _Member(name, "hardlink", 0, ti.mode, target)
    if ti.isdir():
        return _Member(name, "dir", 0, ti.mode)
    if ti.isreg():
        if not name:
            raise ArchiveError(f"member {ti.name[:80]!r}: a file with an empty name")
        return _Member(name, "file", ti.size, ti.mode)
    raise ArchiveError(f"member {name or ti.name!r}: device, fifo or other special file")


@dataclass
class _Counter:
    limits: ArchiveLimits
    members: int = 0
    total: int = 0
    files: int = 0

    def member(self, m: _Member) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise ArchiveError(f"more than {self.limits.max_members} members")
        if m.kind in ("file", "hardlink"):
            self.files += 1

    def declared(self, m: _Member) -> None:
        self.total += m.size
        if self.total > self.limits.max_total_bytes:
            raise ArchiveError(
                f"member {m.name!r}: uncompressed size over {self.limits.max_total_bytes} bytes"
            )


def _open_error(path: Path, fmt: str, exc: Exception) -> ArchiveError:
    return ArchiveError(f"not a valid {fmt} archive ({path.name}): {exc}")


def _iter_zip(zf: zipfile.ZipFile) -> Iterator[tuple[_Member, zipfile.ZipInfo]]:
    for info in zf.infolist():
        yield _zip_member(info, zf), info


def inspect_archive(
    path: Path, fmt: str, limits: ArchiveLimits = DEFAULT_LIMITS
) -> ArchiveSummary:
    """Reads the whole archive (member headers; for tar.gz the stream) without writing
    anything: ArchiveError when a member is unsafe or a declared limit is exceeded."""
    _check_format(fmt)
    count = _Counter(limits)
    try:
        if fmt == "zip":
            with zipfile.ZipFile(path) as zf:
                for m, _ in _iter_zip(zf):
                    count.member(m)
                    count.declared(m)
        else:
            with tarfile.open(path, "r:gz") as tf:
                for ti in tf:
                    m = _tar_member(ti)
                    count.member(m)
                    count.declared(m)
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise _open_error(path, fmt, exc) from exc
    return ArchiveSummary(count.members, count.total, count.files)


# --- extraction ---------------------------------------------------------------------------


class _Writer:
    """Writes members under `root`, never through a symlink, counting bytes written."""

    def __init__(self, root: Path, archive_size: int, limits: ArchiveLimits) -> None:
        self.root = root
        self.archive_size = max(archive_size, 1)
        self.limits = limits
        self.count = _Counter(limits)
        self.written = 0
        self.dir_modes: dict[str, int] = {}
        self.symlinks: list[str] = []

    def _parent(self, name: str) -> Path:
        """Creates the member's parent directories, refusing any path through a link."""
        cur = self.root
        for seg in name.split("/")[:-1]:
            cur = cur / seg
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                os.mkdir(cur, 0o700)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise ArchiveError(f"member {name!r}: goes through a non-directory {seg!r}")
        return cur

    def _clear(self, name: str, target: Path) -> None:
        """A later member with the same name replaces the earlier one (tar's rule), but never
        a directory with a file."""
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise ArchiveError(f"member {name!r}: would replace a directory")
        os.unlink(target)

    def add(self, m: _Member, data: IO[bytes] | None) -> None:
        self.count.member(m)
        if not m.name:
            return  # "./": the root itself
        if m.kind == "dir":
            self._parent(m.name + "/x")  # creates every segment of the name
            self.dir_modes[m.name] = m.mode
            return
        parent = self._parent(m.name)
        target = parent / m.name.rsplit("/", 1)[-1]
        self._clear(m.name, target)
        if m.kind == "symlink":
            os.symlink(m.link, target)
            self.symlinks.append(m.name)
        elif m.kind == "hardlink":
            src = self.root / m.link
            try:
                st = os.lstat(src)
            except FileNotFoundError:
                st = None
            if st is None or not stat.S_ISREG(st.st_mode) or self._through_link(m.link):
                raise ArchiveError(f"member {m.name!r}: hard link to {m.link!r}, not an earlier file")
            os.link(src, target, follow_symlinks=False)
        else:
            assert data is not None
            self._write(m, data, target)

    def _through_link(self, name: str) -> bool:
        cur = self.root
        for seg in name.split("/")[:-1]:
            cur = cur / seg
            if not cur.is_dir() or cur.is_symlink():
                return True
        return False

    def _write(self, m: _Member, data: IO[bytes], target: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := data.read(_CHUNK):
                self.written += len(chunk)
                self._check_written(m.name)
                out.write(chunk)
        os.chmod(target, m.mode & 0o777)  # no setuid, setgid or sticky

    def _check_written(self, name: str) -> None:
        lim = self.limits
        if self.written > lim.max_total_bytes:
            raise ArchiveError(f"member {name!r}: more than {lim.max_total_bytes} bytes written")
        if self.written > lim.ratio_floor_bytes and self.written / self.archive_size > lim.max_ratio:
            raise ArchiveError(
                f"member {name!r}: compression ratio over {lim.max_ratio:g} "
                f"({self.written} bytes from a {self.archive_size}-byte archive)"
            )

    def finish(self) -> None:
        """Checks every symlink on the complete tree — chains resolve for real only now — then
        applies directory modes (deepest first, so a read-only directory does not block its
        children)."""
        real_root = os.path.realpath(self.root)
        for name in self.symlinks:
            resolved = os.path.realpath(self.root / name)
            if resolved != real_root and not resolved.startswith(real_root + os.sep):
                raise ArchiveError(f"member {name!r}: symlink leads outside the destination")
        for name in sorted(self.dir_modes, key=lambda n: n.count("/"), reverse=True):
            # The owner keeps rwx so the node can later remove or replace the install.
            os.chmod(self.root / name, (self.dir_modes[name] & 0o777) | 0o700)


def extract_archive(
    path: Path, fmt: str, dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS
) -> ArchiveSummary:
    """Extracts `path` to `dest`, which must not exist yet. On any error nothing is left
    behind; on success `dest` appears complete, by one rename."""
    _check_format(fmt)
    dest = Path(dest)
    if os.path.lexists(dest):
        raise ArchiveError(f"destination {dest} already exists")
    tmp = dest.parent / f".{dest.name}.extract-{uuid.uuid4().hex[:12]}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(0o700)
    try:
        w = _Writer(tmp, path.stat().st_size, limits)
        try:
            if fmt == "zip":
                with zipfile.ZipFile(path) as zf:
                    for m, info in _iter_zip(zf):
                        if m.kind == "file":
                            with zf.open(info) as data:
                                w.add(m, data)
                        else:
                            w.add(m, None)
            else:
                with tarfile.open(path, "r:gz") as tf:
                    for ti in tf:
                        m = _tar_member(ti)
                        if m.kind == "file":
                            tdata = tf.extractfile(ti)
                            if tdata is None:
                                raise ArchiveError(f"member {m.name!r}: no data")
                            with tdata:
                                w.add(m, tdata)
                        else:
                            w.add(m, None)
        except ArchiveError:
            raise
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as exc:
            raise _open_error(path, fmt, exc) from exc
        except OSError as exc:
            raise ArchiveError(f"extracting {path.name}: {exc}") from exc
        w.finish()
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, dest)
        except OSError as exc:
            raise ArchiveError(f"could not move the extracted tree to {dest}: {exc}") from exc
        return ArchiveSummary(w.count.members, w.written, w.count.files)
    except BaseException:
        remove_tree(tmp)
        raise


def remove_tree(path: Path) -> None:
    """rmtree that also removes read-only directories (extracted modes may lack u+w)."""
    if not os.path.lexists(path):
        return

    def fix(func, p, _exc):  # type: ignore[no-untyped-def]
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)
