"""`shoal storage ...` and the task / pool flags for files and packages, against the real suite
(local store) or no server at all. Tests share one suite per module; each works in a
container, a pool and a job named after itself."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import secrets
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shoal.cli.main import cli
from shoal.cli.storage import human_size
from shoal.suite import LocalSuite, free_port
from tests.cli.test_cli import ROOT, ok, shoal

MiB = 1024 * 1024


@pytest.fixture
def cid(uid: str) -> str:
    """A container id of the test's own: 3-63 of a-z, 0-9 and single hyphens."""
    name = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", uid.lower())).strip("-")
    return f"{name[:50].rstrip('-')}-{hashlib.sha1(uid.encode()).hexdigest()[:6]}"


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def make_tree(root: Path) -> dict[str, bytes]:
    """A folder with nested files (one empty, one binary); relative path -> content."""
    files = {
        "a.txt": b"alpha\n",
        "empty.dat": b"",
        "sub/b.bin": secrets.token_bytes(3000) + b"\x00\xff",
        "sub/deeper/c.txt": b"gamma " * 1000,
        "sub/deeper/with space.txt": b"spaced\n",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def tree_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def listing(suite: LocalSuite, location: str) -> dict[str, dict[str, object]]:
    rows = json.loads(ok(shoal(suite, "storage", "ls", location, "-o", "json")).stdout)
    return {r["key"]: r for r in rows}


# Without a server: bad input is a usage error before any call


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (
            ["task", "add", "j", "t", "--resource-file", "https://h/x", "--", "true"],
            "--resource-file",
        ),
        (["task", "add", "j", "t", "--resource-file", "Data:x=y", "--", "true"], "--resource-file"),
        (["task", "add", "j", "t", "--output-file", "out.txt", "--", "true"], "--output-file"),
        (
            ["task", "add", "j", "t", "--output-file", "o=res/x:sucess", "--", "true"],
            "unknown upload condition 'sucess'",
        ),
        (["task", "add", "j", "t", "--app-package", "tool:", "--", "true"], "--app-package"),
        (["pool", "create", "p", "--nodes", "1", "--app-package", ":1"], "--app-package"),
        (["storage", "upload", "/no/such/file", "data"], "/no/such/file: no such file"),
        (["storage", "rm", "data"], "names no object"),
        (["storage", "download", "data", "out"], "names no object"),
        (["storage", "ls", "/x"], "does not start with a container id"),
        (["app", "upload", "tool", "1", "/no/such.zip"], "no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2_without_calling_the_server(
    args: list[str], names: str
) -> None:
    result = CliRunner().invoke(
        cli, ["--endpoint", f"127.0.0.1:{free_port()}", "--key", "k", *args]
    )
    assert names in one_line_error(result, 2)
    assert "cannot reach" not in result.output


def test_a_folder_needs_r_and_clashing_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    (tmp_path / "d1" / "x").write_text("1")
    (tmp_path / "d2" / "x").write_text("2")
    base = ["--endpoint", f"127.0.0.1:{free_port()}", "--key", "k", "storage", "upload"]
    result = CliRunner().invoke(cli, [*base, str(tmp_path / "d1"), "data"])
    assert "is a directory; upload folders with -r" in one_line_error(result, 2)
    result = CliRunner().invoke(
        cli, [*base, "-r", str(tmp_path / "d1"), str(tmp_path / "d2"), "data/p"]
    )
    assert "would both be stored as 'p/x'" in one_line_error(result, 2)
    archive = tmp_path / "tool.rar"
    archive.write_bytes(b"x")
    result = CliRunner().invoke(cli, [*base[:4], "app", "upload", "tool", "1", str(archive)])
    assert "--format: cannot tell the format of 'tool.rar'" in one_line_error(result, 2)


# Against the real suite


def test_recursive_upload_ls_download_and_rm(
    shared_suite: LocalSuite, cid: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    ok(shoal(shared_suite, "storage", "container", "create", cid))
    result = ok(shoal(shared_suite, "storage", "upload", "-r", str(src), f"{cid}/in"))
    total = human_size(sum(map(len, files.values())))
    assert result.stderr == f"uploaded 5 files ({total}) to {cid}/in/\n"
    assert result.stdout == ""

    objects = listing(shared_suite, cid)
    assert sorted(objects) == sorted(f"in/{rel}" for rel in files)
    for rel, data in files.items():
        o = objects[f"in/{rel}"]
        assert int(str(o["size"])) == len(data)
        assert o["sha256"] == hashlib.sha256(data).hexdigest()
    # ls takes a plain prefix; the table has one row per object.
    table = ok(shoal(shared_suite, "storage", "ls", f"{cid}/in/sub/deeper/")).stdout.splitlines()
    assert table[0].split() == ["KEY", "SIZE", "UPDATED"]
    assert [row.split()[0] for row in table[1:]] == ["in/sub/deeper/c.txt", "in/sub/deeper/with"]

    # -r takes the prefix as a folder: 'in' is 'in/', and the keys' paths below it are kept.
    out = tmp_path / "out"
    result = ok(shoal(shared_suite, "storage", "download", "-r", f"{cid}/in", str(out)))
    assert result.stderr.startswith("downloaded 5 files")
    assert tree_of(out) == files
    # One object, into an existing folder or to a file name.
    ok(shoal(shared_suite, "storage", "download", f"{cid}/in/sub/b.bin", str(out)))
    ok(shoal(shared_suite, "storage", "download", f"{cid}/in/a.txt", str(tmp_path / "copy.txt")))
    assert (tmp_path / "copy.txt").read_bytes() == files["a.txt"]
    ok(shoal(shared_suite, "storage", "download", f"{cid}/in/a.txt", f"{tmp_path / 'new'}/"))
    assert (tmp_path / "new" / "a.txt").read_bytes() == files["a.txt"]
    assert not list(out.glob(".shoal-*")) and not list(tmp_path.glob(".shoal-*"))

    # rm -r removes below the folder only, not keys that merely share the prefix.
    ok(shoal(shared_suite, "storage", "upload", str(src / "a.txt"), f"{cid}/in-other.txt"))
    result = ok(shoal(shared_suite, "storage", "rm", "-r", f"{cid}/in/sub", "-y"))
    assert result.stderr == f"deleted 3 objects below {cid}/in/sub/\n"
    assert sorted(listing(shared_suite, cid)) == ["in-other.txt", "in/a.txt", "in/empty.dat"]
    result = ok(shoal(shared_suite, "storage", "rm", f"{cid}/in/a.txt", "-y"))
    assert result.stderr == f"deleted {cid}/in/a.txt\n"
    result = shoal(shared_suite, "storage", "rm", f"{cid}/in/a.txt", "-y")
    assert "not found" in one_line_error(result, 1)
    # A download that finds nothing is an error, not an empty folder.
    result = shoal(shared_suite, "storage", "download", "-r", f"{cid}/nothing", str(tmp_path / "n"))
    assert one_line_error(result, 1) == f"error: no objects below {cid}/nothing/\n"

    ok(shoal(shared_suite, "storage", "container", "rm", cid, "-y"))
    containers = json.loads(ok(shoal(shared_suite, "storage", "ls", "-o", "json")).stdout)
    assert f"containers/{cid}" not in [c["name"] for c in containers]


def test_a_failed_recursive_download_says_how_far_it_got(
    shared_suite: LocalSuite, cid: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src")
    ok(shoal(shared_suite, "storage", "container", "create", cid))
    ok(shoal(shared_suite, "storage", "upload", "-r", str(tmp_path / "src"), cid))
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where the folder 'sub' must go")
    result = shoal(shared_suite, "storage", "download", "-r", cid, str(out))
    assert result.exit_code == 1
    note, error = result.stderr.splitlines()
    assert note == "2 of 5 files were downloaded before the error"
    assert error.startswith(f"error: cannot write {out / 'sub' / 'b.bin'}: ")
    assert tree_of(out) == {
        "a.txt": b"alpha\n",
        "empty.dat": b"",
        "sub": b"a file where the folder 'sub' must go",
    }


def test_file_uploads_keep_names_under_a_prefix_or_take_an_exact_key(
    shared_suite: LocalSuite, cid: str, tmp_path: Path
) -> None:
    (tmp_path / "a.csv").write_text("a")
    (tmp_path / "b.csv").write_text("bb")
    ok(shoal(shared_suite, "storage", "container", "create", cid))
    ok(shoal(shared_suite, "storage", "upload", str(tmp_path / "a.csv"), f"{cid}/today.csv"))
    ok(shoal(shared_suite, "storage", "upload", str(tmp_path / "a.csv"), f"{cid}/dir/"))
    result = ok(
        shoal(
            shared_suite,
            "storage",
            "upload",
            str(tmp_path / "a.csv"),
            str(tmp_path / "b.csv"),
            f"{cid}/two",
            "-o",
            "json",
        )
    )
    assert [o["key"] for o in json.loads(result.stdout)] == ["two/a.csv", "two/b.csv"]
    ok(shoal(shared_suite, "storage", "upload", str(tmp_path / "b.csv"), cid))
    assert sorted(listing(shared_suite, cid)) == [
        "b.csv",
        "dir/a.csv",
        "today.csv",
        "two/a.csv",
        "two/b.csv",
    ]


def test_a_large_file_round_trips_intact_without_a_bar_when_piped(
    shared_suite: LocalSuite, cid: str, tmp_path: Path
) -> None:
    data = secrets.token_bytes(20 * MiB + 12345)
    (tmp_path / "big.bin").write_bytes(data)
    ok(shoal(shared_suite, "storage", "container", "create", cid))
    result = ok(shoal(shared_suite, "storage", "upload", str(tmp_path / "big.bin"), f"{cid}/big"))
    # Not a terminal: no progress bar, only the summary.
    assert result.stderr == f"uploaded 1 file (20.0 MiB) to {cid}/big\n"
    assert listing(shared_suite, cid)["big"]["sha256"] == hashlib.sha256(data).hexdigest()
    result = ok(shoal(shared_suite, "storage", "download", f"{cid}/big", str(tmp_path / "back")))
    assert result.stderr == f"downloaded 1 file (20.0 MiB) to {tmp_path / 'back'}\n"
    assert (tmp_path / "back").read_bytes() == data


def test_a_corrupted_stored_object_is_caught_and_nothing_is_replaced(
    shared_suite: LocalSuite, cid: str, tmp_path: Path
) -> None:
    data = secrets.token_bytes(300_000)
    (tmp_path / "x.bin").write_bytes(data)
    ok(shoal(shared_suite, "storage", "container", "create", cid))
    ok(shoal(shared_suite, "storage", "upload", str(tmp_path / "x.bin"), f"{cid}/x.bin"))
    # Rot on the store's disk (the one thing a test has to do by hand): same size, one bit.
    blob = next(
        p
        for p in shared_suite.state_dir.rglob("*")
        if p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data
    )
    with open(blob, "r+b") as f:
        f.seek(123_456)
        byte = f.read(1)
        f.seek(123_456)
        f.write(bytes([byte[0] ^ 1]))
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"what was here before")
    result = shoal(shared_suite, "storage", "download", f"{cid}/x.bin", str(dest))
    assert "[CHECKSUM_MISMATCH]" in one_line_error(result, 1)
    assert dest.read_bytes() == b"what was here before"
    # No partial file is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest.bin", "x.bin"]


def test_bad_container_names_and_missing_containers_are_clean_errors(
    shared_suite: LocalSuite, cid: str, tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("x")
    result = shoal(shared_suite, "storage", "container", "create", "Bad_Name")
    err = one_line_error(result, 1)
    assert "'Bad_Name' is not a valid container id" in err and err.endswith("[INVALID_ARGUMENT]\n")
    result = shoal(shared_suite, "storage", "upload", str(tmp_path / "f"), "Bad_Name/f")
    assert "is not a valid container id" in one_line_error(result, 1)
    result = shoal(shared_suite, "storage", "upload", str(tmp_path / "f"), f"{cid}/f")
    assert "not found" in one_line_error(result, 1)
    result = shoal(shared_suite, "storage", "ls", cid)
    assert "not found" in one_line_error(result, 1)


def test_task_add_with_files_and_packages_reads_back(
    shared_suite: LocalSuite, uid: str, cid: str
) -> None:
    ok(shoal(shared_suite, "storage", "container", "create", cid))
    ok(shoal(shared_suite, "pool", "create", uid, "--nodes", "0", "--app-package", "tool:1.0"))
    pool = json.loads(ok(shoal(shared_suite, "pool", "show", uid, "-o", "json")).stdout)
    assert pool["application_package_references"] == [{"application_id": "tool", "version": "1.0"}]
    ok(shoal(shared_suite, "job", "create", uid, "--pool", uid))
    ok(
        shoal(
            shared_suite,
            "task",
            "add",
            uid,
            "t1",
            "--resource-file",
            f"{cid}:in/a.csv=a.csv",
            "--resource-file",
            f"{cid}/in/=inputs:0755",
            "--resource-file",
            "https://example.com/x.tgz?sig=a=b=x.tgz",
            "--output-file",
            f"out/**/*.csv={cid}/results/t1:success",
            "--output-file",
            f"log.txt={cid}",
            "--app-package",
            "tool",
            "--app-package",
            "lib:2",
            "--",
            "true",
        )
    )
    task = json.loads(ok(shoal(shared_suite, "task", "show", uid, "t1", "-o", "json")).stdout)
    blank = {"container": "", "object_key": "", "blob_prefix": "", "http_url": "", "file_mode": ""}
    assert task["resource_files"] == [
        {**blank, "container": cid, "object_key": "in/a.csv", "file_path": "a.csv"},
        {
            **blank,
            "container": cid,
            "blob_prefix": "in/",
            "file_path": "inputs",
            "file_mode": "0755",
        },
        {**blank, "http_url": "https://example.com/x.tgz?sig=a=b", "file_path": "x.tgz"},
    ]
    assert task["output_files"] == [
        {
            "file_pattern": "out/**/*.csv",
            "container": cid,
            "path": "results/t1",
            "upload_condition": "TASK_SUCCESS",
        },
        {
            "file_pattern": "log.txt",
            "container": cid,
            "path": "",
            "upload_condition": "TASK_COMPLETION",
        },
    ]
    assert task["application_package_references"] == [
        {"application_id": "tool", "version": ""},
        {"application_id": "lib", "version": "2"},
    ]


def test_add_many_takes_files_and_packages_in_both_forms(
    shared_suite: LocalSuite, uid: str, cid: str
) -> None:
    ok(shoal(shared_suite, "storage", "container", "create", cid))
    ok(shoal(shared_suite, "pool", "create", uid, "--nodes", "0"))
    ok(shoal(shared_suite, "job", "create", uid, "--pool", uid))
    lines = [
        {
            "id": "t1",
            "command_line": "true",
            "resource_files": [f"{cid}:in/1.csv=in.csv"],
            "output_files": [f"out/*={cid}/t1:failure"],
            "application_package_references": ["tool:3"],
        },
        {
            "id": "t2",
            "command_line": "true",
            "resource_files": [{"container": cid, "object_key": "in/2.csv", "file_path": "in.csv"}],
            "output_files": [{"file_pattern": "o.txt", "container": cid, "path": "t2/o.txt"}],
            "application_package_references": [{"application_id": "tool"}],
        },
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    ok(shoal(shared_suite, "task", "add-many", uid, "-", input=text))
    t1 = json.loads(ok(shoal(shared_suite, "task", "show", uid, "t1", "-o", "json")).stdout)
    t2 = json.loads(ok(shoal(shared_suite, "task", "show", uid, "t2", "-o", "json")).stdout)
    assert t1["resource_files"][0]["object_key"] == "in/1.csv"
    assert t1["output_files"][0]["upload_condition"] == "TASK_FAILURE"
    assert t1["application_package_references"] == [{"application_id": "tool", "version": "3"}]
    assert t2["resource_files"][0]["object_key"] == "in/2.csv"
    assert t2["output_files"][0]["path"] == "t2/o.txt"
    # A bad line is named, and nothing is sent.
    bad = json.dumps({"id": "t3", "command_line": "true", "output_files": ["nowhere"]}) + "\n"
    result = shoal(shared_suite, "task", "add-many", uid, "-", input=bad)
    assert "<stdin> line 1: output_files[0]: 'nowhere' is not" in one_line_error(result, 1)


def test_a_terminal_gets_a_progress_bar_on_large_uploads(
    shared_suite: LocalSuite, cid: str, tmp_path: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(secrets.token_bytes(12 * MiB))
    ok(shoal(shared_suite, "storage", "container", "create", cid))
    screen = run_in_terminal(
        shared_suite, "storage", "upload", str(tmp_path / "big.bin"), f"{cid}/big.bin"
    )
    assert "big.bin" in screen and "MiB" in screen and "━" in screen
    assert f"uploaded 1 file (12.0 MiB) to {cid}/big.bin" in screen


def run_in_terminal(suite: LocalSuite, *args: str) -> str:
    """The real command with stdout and stderr on a pseudo-terminal; everything it drew."""
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if (not k.startswith("SHOAL_") or k == "SHOAL_CONFIG")}
    env.update(TERM="xterm", COLUMNS="120", LINES="40")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoal.cli.main",
            "--endpoint",
            suite.endpoint,
            "--key",
            suite.client_config.key,
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        cwd=ROOT,
        env=env,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is done
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=30) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    return b"".join(chunks).decode(errors="replace")
