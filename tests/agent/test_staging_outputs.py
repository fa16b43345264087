"""Output files: which files an outcome uploads (patterns with `**`, conditions, keys),
symlinks leading out refused, and the uploads themselves to the real S3 server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent.staging import OUTPUT_FILE_UPLOAD_FAILED, StagingFailure
from agent.staging.attempt import Staging
from agent.staging.outputs import select_outputs
from shoal.agent.v1 import agent_pb2
from shoal.v1 import task_pb2
from tests.agent.staging_support import Bucket, SchedulerStandIn, make_staging
from tests.storage_support import MotoServer

OF = task_pb2.OutputFile
SUCCESS, FAILURE, COMPLETION = OF.TASK_SUCCESS, OF.TASK_FAILURE, OF.TASK_COMPLETION


def out(pattern: str, path: str = "", condition: int = COMPLETION, container: str = "results") -> OF:
    return OF(file_pattern=pattern, container=container, path=path, upload_condition=condition)  # type: ignore[arg-type]


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


@pytest.fixture
def wd(tmp_path: Path) -> Path:
    d = tmp_path / "attempt" / "wd"
    d.mkdir(parents=True)
    write(d, {
        "out/a.csv": "a", "out/sub/b.csv": "b", "out/sub/deeper/c.csv": "c", "out/readme.txt": "r",
        "top.csv": "t", "report.pdf": "p",
    })
    return d


def chosen(wd: Path, specs: list[OF], succeeded: bool = True) -> dict[str, str]:
    return {f"{o.container}:{o.key}": o.rel for o in select_outputs(wd, specs, succeeded)}


def test_double_star_matches_any_depth_and_keys_keep_the_path_below_the_fixed_part(wd: Path) -> None:
    assert chosen(wd, [out("out/**/*.csv", path="run1")]) == {
        "results:run1/a.csv": "out/a.csv",
        "results:run1/sub/b.csv": "out/sub/b.csv",
        "results:run1/sub/deeper/c.csv": "out/sub/deeper/c.csv",
    }
    assert chosen(wd, [out("**/*.csv")]) == {
        "results:top.csv": "top.csv", "results:out/a.csv": "out/a.csv",
        "results:out/sub/b.csv": "out/sub/b.csv",
        "results:out/sub/deeper/c.csv": "out/sub/deeper/c.csv",
    }
    assert chosen(wd, [out("out/*.csv")]) == {"results:a.csv": "out/a.csv"}


def test_a_pattern_without_wildcards_is_one_file_and_path_is_its_key(wd: Path) -> None:
    assert chosen(wd, [out("report.pdf", path="reports/final.pdf")]) == {
        "results:reports/final.pdf": "report.pdf"}
    assert chosen(wd, [out("out/readme.txt")]) == {"results:readme.txt": "out/readme.txt"}
    assert chosen(wd, [out("missing.txt")]) == {}


def test_conditions_follow_the_outcome(wd: Path) -> None:
    specs = [out("top.csv", path="on-success", condition=SUCCESS),
             out("top.csv", path="on-failure", condition=FAILURE),
             out("top.csv", path="always", condition=COMPLETION),
             out("top.csv", path="default", condition=OF.UPLOAD_CONDITION_UNSPECIFIED)]
    assert sorted(chosen(wd, specs, succeeded=True)) == [
        "results:always", "results:default", "results:on-success"]
    assert sorted(chosen(wd, specs, succeeded=False)) == [
        "results:always", "results:default", "results:on-failure"]


def test_a_planted_symlink_to_etc_passwd_is_refused_naming_the_file(wd: Path) -> None:
    (wd / "out" / "stolen.csv").symlink_to("/etc/passwd")
    with pytest.raises(StagingFailure) as exc:
        select_outputs(wd, [out("out/**/*.csv")], True)
    assert exc.value.code == OUTPUT_FILE_UPLOAD_FAILED
    assert "'out/stolen.csv'" in exc.value.message and "outside" in exc.value.message
    # Also when named exactly.
    with pytest.raises(StagingFailure, match="'out/stolen.csv'"):
        select_outputs(wd, [out("out/stolen.csv")], True)


def test_a_symlink_inside_the_wd_uploads_its_target(wd: Path) -> None:
    (wd / "latest.csv").symlink_to("out/a.csv")
    [o] = select_outputs(wd, [out("latest.csv")], True)
    assert o.key == "latest.csv" and o.source == Path(os.path.realpath(wd / "out/a.csv"))


def test_symlinked_directories_are_not_walked(wd: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, {"secret.csv": "s"})
    (wd / "out" / "linked").symlink_to(elsewhere)
    (wd / "linked-top").symlink_to(elsewhere)
    assert "out/linked/secret.csv" not in chosen(wd, [out("out/**/*.csv")]).values()
    assert chosen(wd, [out("linked-top/*.csv")]) == {}
    assert chosen(wd, [out("linked-top/secret.csv")]) == {}
    # A pattern that names the symlinked directory itself leads outside: refused.
    with pytest.raises(StagingFailure, match="'linked-top'"):
        select_outputs(wd, [out("linked-*")], True)


def test_the_same_destination_twice_is_uploaded_once(wd: Path) -> None:
    got = select_outputs(wd, [out("top.csv"), out("*.csv")], True)
    assert [o.key for o in got] == ["top.csv"]


# --- the uploads, to the real S3 server ------------------------------------------------


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> Iterator[Bucket]:
    yield Bucket(moto_s3)


@pytest.fixture
async def staging(tmp_path: Path, bucket: Bucket) -> AsyncIterator[tuple[Staging, SchedulerStandIn]]:
    sched = SchedulerStandIn(bucket)
    s = make_staging(tmp_path / "node", sched)
    yield s, sched
    await s.transfers.close()


def assignment(aid: str, specs: list[OF]) -> agent_pb2.Assignment:
    a = agent_pb2.Assignment(attempt_id=aid, job_id="j", task_id="t", command_line="true")
    a.files.output_files.extend(specs)
    return a


def ended(aid: str, exit_code: int) -> agent_pb2.TaskResult:
    return agent_pb2.TaskResult(attempt_id=aid, exit_code=exit_code)


async def test_outputs_and_non_empty_logs_are_uploaded(
    staging: tuple[Staging, SchedulerStandIn], bucket: Bucket, wd: Path
) -> None:
    s, sched = staging
    specs = [out("out/**/*.csv", path="up1", container="results")]
    sched.output_specs["u1"] = specs
    (wd.parent / "stdout.txt").write_text("hello from the task\n")
    (wd.parent / "stderr.txt").write_text("")  # empty: not uploaded
    r = await s.finish(assignment("u1", specs), wd.parent, wd, ended("u1", 0))
    assert r.exit_code == 0 and not r.HasField("failure_info")
    assert bucket.keys("results/up1/") == [
        "results/up1/a.csv", "results/up1/sub/b.csv", "results/up1/sub/deeper/c.csv"]
    assert bucket.read("results/up1/sub/deeper/c.csv") == b"c"
    assert bucket.keys("logs/u1/") == ["logs/u1/stdout.txt"]
    assert bucket.read("logs/u1/stdout.txt") == b"hello from the task\n"
    [req] = sched.requests
    assert req.kind == agent_pb2.UPLOADS
    assert [(u.container, u.key) for u in req.uploads] == [
        ("results", "up1/a.csv"), ("results", "up1/sub/b.csv"),
        ("results", "up1/sub/deeper/c.csv"), ("", "stdout.txt")]


async def test_nothing_to_upload_asks_for_nothing(
    staging: tuple[Staging, SchedulerStandIn], wd: Path
) -> None:
    s, sched = staging
    specs = [out("*.csv", condition=FAILURE)]
    r = await s.finish(assignment("u2", specs), wd.parent, wd, ended("u2", 0))
    assert r == ended("u2", 0) and sched.requests == []


async def test_a_refused_symlink_fails_the_attempt_keeping_its_exit_code_and_logs_go_up(
    staging: tuple[Staging, SchedulerStandIn], bucket: Bucket, wd: Path
) -> None:
    s, sched = staging
    specs = [out("**/*.csv", path="up3")]
    sched.output_specs["u3"] = specs
    (wd / "passwd.csv").symlink_to("/etc/passwd")
    (wd.parent / "stderr.txt").write_text("trying to steal\n")
    r = await s.finish(assignment("u3", specs), wd.parent, wd, ended("u3", 3))
    assert r.exit_code == 3
    assert r.failure_info.code == OUTPUT_FILE_UPLOAD_FAILED and "'passwd.csv'" in r.failure_info.message
    assert bucket.keys("results/up3/") == []
    assert bucket.read("logs/u3/stderr.txt") == b"trying to steal\n"


async def test_a_grant_failure_fails_outputs_but_only_warns_for_logs(
    staging: tuple[Staging, SchedulerStandIn], bucket: Bucket, wd: Path
) -> None:
    s, sched = staging
    refused = task_pb2.FailureInfo(category=task_pb2.FailureInfo.USER_ERROR,
                                   code=OUTPUT_FILE_UPLOAD_FAILED,
                                   message="container 'results' not found")
    sched.answer = lambda req: agent_pb2.StagingGrant(
        attempt_id=req.attempt_id, kind=req.kind, failure=refused)
    (wd.parent / "stdout.txt").write_text("x\n")
    r = await s.finish(assignment("u4", [out("top.csv")]), wd.parent, wd, ended("u4", 0))
    assert r.exit_code == 0 and r.failure_info == refused
    logs_only = await s.finish(assignment("u5", []), wd.parent, wd, ended("u5", 0))
    assert logs_only == ended("u5", 0)


async def test_a_failed_put_names_the_output_file(
    staging: tuple[Staging, SchedulerStandIn], bucket: Bucket, wd: Path
) -> None:
    s, sched = staging
    # A URL into a bucket that does not exist: the PUT answers 404.
    sched.answer = lambda req: agent_pb2.StagingGrant(
        attempt_id=req.attempt_id, kind=req.kind,
        upload_urls=[bucket.put_url("x").replace(bucket.name, "t-no-such-bucket")])
    r = await s.finish(assignment("u6", [out("top.csv")]), wd.parent, wd, ended("u6", 1))
    assert r.exit_code == 1 and r.failure_info.code == OUTPUT_FILE_UPLOAD_FAILED
    assert "output file 'top.csv'" in r.failure_info.message
    assert "HTTP 404" in r.failure_info.message or "HTTP 403" in r.failure_info.message
