"""`shoal app ...` against the real suite: applications, versions as zip and tar.gz archives,
the default version. Tests share one suite per module; each works in an application named
after itself."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

from shoal.suite import LocalSuite
from tests.cli.test_cli import ok, shoal
from tests.cli.test_storage_cli import one_line_error


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def make_tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            t.addfile(info, io.BytesIO(data))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_create_upload_both_formats_set_default_and_list(
    shared_suite: LocalSuite, uid: str, tmp_path: Path
) -> None:
    v1 = make_zip(tmp_path / "tool-1.zip", {"bin/tool": b"#!/bin/sh\necho 1\n"})
    v2 = make_tar_gz(tmp_path / "tool-2.tar.gz", {"bin/tool": b"#!/bin/sh\necho 2\n"})
    v3 = make_tar_gz(tmp_path / "tool-3.archive", {"bin/tool": b"#!/bin/sh\necho 3\n"})

    created = json.loads(
        ok(
            shoal(shared_suite, "app", "create", uid, "--display-name", "The tool", "-o", "json")
        ).stdout
    )
    assert (created["name"], created["display_name"], created["default_version"]) == (
        f"applications/{uid}",
        "The tool",
        "",
    )
    result = ok(shoal(shared_suite, "app", "upload", uid, "1.0", str(v1)))
    assert result.stderr == f"uploaded {uid} version 1.0 ({v1.stat().st_size} B)\n"
    result = ok(shoal(shared_suite, "app", "upload", uid, "2.0", str(v2), "-o", "json"))
    uploaded = json.loads(result.stdout)
    assert uploaded["format"] == "TAR_GZ" and uploaded["sha256"] == sha256(v2)
    # A name that says nothing about the format needs --format.
    ok(shoal(shared_suite, "app", "upload", uid, "3.0", str(v3), "--format", "tar.gz"))

    shown = json.loads(ok(shoal(shared_suite, "app", "show", uid, "-o", "json")).stdout)
    assert shown["default_version"] == ""
    assert [(v["name"], v["format"], int(v["size"]), v["sha256"]) for v in shown["versions"]] == [
        (f"applications/{uid}/versions/1.0", "ZIP", v1.stat().st_size, sha256(v1)),
        (f"applications/{uid}/versions/2.0", "TAR_GZ", v2.stat().st_size, sha256(v2)),
        (f"applications/{uid}/versions/3.0", "TAR_GZ", v3.stat().st_size, sha256(v3)),
    ]

    app = json.loads(ok(shoal(shared_suite, "app", "set-default", uid, "2.0", "-o", "json")).stdout)
    assert app["default_version"] == "2.0"
    table = ok(shoal(shared_suite, "app", "ls")).stdout.splitlines()
    assert table[0].split() == ["ID", "DEFAULT", "DISPLAY", "NAME", "CREATED"]
    assert [uid, "2.0", "The", "tool"] in [row.split()[:4] for row in table[1:]]
    text = ok(shoal(shared_suite, "app", "show", uid)).stdout
    assert ["default", "version", "2.0"] in [row.split() for row in text.splitlines()]
    assert "1.0" in text and "ZIP" in text and "TAR_GZ" in text

    result = ok(shoal(shared_suite, "app", "rm", uid, "1.0", "--yes"))
    assert result.stderr == f"deleted {uid} version 1.0\n"
    shown = json.loads(ok(shoal(shared_suite, "app", "show", uid, "-o", "json")).stdout)
    assert [v["name"].rsplit("/", 1)[-1] for v in shown["versions"]] == ["2.0", "3.0"]
    result = ok(shoal(shared_suite, "app", "rm", uid, "--yes"))
    assert result.stderr == f"deleted application {uid}\n"
    assert "not found" in one_line_error(shoal(shared_suite, "app", "show", uid), 1)


def test_upload_with_set_default(shared_suite: LocalSuite, uid: str, tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"run.sh": b"echo hi\n"})
    ok(shoal(shared_suite, "app", "create", uid))
    result = ok(shoal(shared_suite, "app", "upload", uid, "7", str(archive), "--set-default"))
    assert result.stderr.endswith("(now the default)\n")
    shown = json.loads(ok(shoal(shared_suite, "app", "show", uid, "-o", "json")).stdout)
    assert shown["default_version"] == "7"


def test_refusals_are_one_line_errors(shared_suite: LocalSuite, uid: str, tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"run.sh": b"echo hi\n"})
    result = shoal(shared_suite, "app", "upload", uid, "1", str(archive))
    assert "not found" in one_line_error(result, 1)
    ok(shoal(shared_suite, "app", "create", uid))
    result = shoal(shared_suite, "app", "create", uid)
    assert "already exists" in one_line_error(result, 1)
    ok(shoal(shared_suite, "app", "upload", uid, "1", str(archive)))
    result = shoal(shared_suite, "app", "upload", uid, "1", str(archive))
    assert "already exists" in one_line_error(result, 1)
    # Not an archive at all, whatever its name says: checked before it is stored.
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"this is not a zip file" * 100)
    one_line_error(shoal(shared_suite, "app", "upload", uid, "2", str(fake)), 1)
    result = shoal(shared_suite, "app", "set-default", uid, "2")
    one_line_error(result, 1)
    shown = json.loads(ok(shoal(shared_suite, "app", "show", uid, "-o", "json")).stdout)
    assert [v["name"].rsplit("/", 1)[-1] for v in shown["versions"]] == ["1"]
    assert shown["default_version"] == ""
    result = shoal(shared_suite, "app", "upload", uid, "bad/version", str(archive))
    assert "version" in one_line_error(result, 1)
