"""Azure Batch's basic workflow through the real suite, on both storage backends: inputs and an
application package uploaded, tasks that download their inputs and write outputs, outputs
uploaded, results and logs read back — and the failures and refusals on the way.

Every test runs twice: against the local store and against moto's S3 server over real HTTP.
"""

from __future__ import annotations

import io
import secrets
import shlex
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal import OutputFile, PackageReference, ResourceFile
from shoal.cluster_config import StorageConfig
from shoal.errors import ShoalError
from shoal.suite import LocalSuite
from shoal.v1 import job_pb2, pool_pb2, task_pb2
from tests.storage_support import MotoServer
from tests.support import PY, print_logs, processes_mentioning, start_suite, wait_for


@pytest.fixture(scope="module", params=["local", "s3"])
def store_suite(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalSuite, MotoServer | None]]:
    moto: MotoServer | None = None
    storage = None
    if request.param == "s3":
        moto = request.getfixturevalue("moto_s3")
        storage = StorageConfig(
            backend="s3", endpoint_url=moto.endpoint_url, region=moto.region,
            access_key_id="shoal-e2e-key-id", secret_access_key=f"shoal-e2e-{secrets.token_hex(8)}",
            bucket=f"shoal-e2e-{secrets.token_hex(4)}", prefix="cluster/")
    s = start_suite(tmp_path_factory.mktemp(f"store-{request.param}") / "state", storage)
    try:
        yield s, moto
    finally:
        s.stop()
        print_logs(s)


def _gets(suite: LocalSuite, moto: MotoServer | None, key: str) -> int:
    """How many times the storage server served `key` to anyone."""
    if moto is not None:
        return moto.requests("GET", key)
    log = suite.log_path("storage-stager").read_text(errors="replace")
    return sum(1 for line in log.splitlines()
               if '"http request"' in line and '"GET"' in line and key in line)


def _idle(c, pool: str, n: int) -> None:  # type: ignore[no-untyped-def]
    wait_for(lambda: len([x for x in c.list_nodes(pool) if x.state == pool_pb2.Node.IDLE]) == n,
             f"{n} idle nodes in {pool}")


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def _uid() -> str:
    return secrets.token_hex(3)


def test_inputs_in_outputs_out_with_an_application_package(
    store_suite: tuple[LocalSuite, MotoServer | None],
) -> None:
    suite, _ = store_suite
    c = suite.client()
    u = _uid()
    c.create_container(f"in-{u}")
    c.create_container(f"out-{u}")
    for i in range(6):
        c.upload_object(f"in-{u}", f"numbers/{i}.txt", f"{i}\n{i + 10}\n".encode())
    c.create_application(f"summer{u}")
    script = "import sys\nprint(sum(int(x) for x in open(sys.argv[1])))\n"
    c.upload_application_version(f"summer{u}", "1.0", _zip({"sum.py": script}), format="zip")
    c.set_default_version(f"summer{u}", "1.0")
    c.create_pool(f"p{u}", target_nodes=2, task_slots_per_node=2)
    _idle(c, f"p{u}", 2)
    c.create_job(f"j{u}", pool_id=f"p{u}", on_all_tasks_complete="terminate_job")
    var = f"SHOAL_APP_PACKAGE_SUMMER{u.upper()}"
    for i in range(6):
        cmd = f"/bin/sh -c {shlex.quote(f'mkdir -p out && {PY} ${var}/sum.py in.txt > out/sum.txt')}"
        c.add_task(
            f"j{u}", f"t{i}", cmd,
            resource_files=[ResourceFile.from_object(f"in-{u}", f"numbers/{i}.txt", "in.txt")],
            output_files=[OutputFile("out/*.txt", f"out-{u}", path=f"t{i}", upload_condition="success")],
            application_package_references=[PackageReference(f"summer{u}")],
        )
    job = c.wait_job(f"j{u}", timeout=120)
    failed = [(t.name, t.execution_info.failure_info) for t in c.list_tasks(f"j{u}")
              if t.execution_info.result != task_pb2.TaskExecutionInfo.SUCCESS]
    assert failed == [] and job.task_counts.succeeded == 6
    keys = sorted(o.key for o in c.list_objects(f"out-{u}"))
    assert keys == [f"t{i}/sum.txt" for i in range(6)]
    for i in range(6):
        assert c.read_object(f"out-{u}", f"t{i}/sum.txt") == f"{2 * i + 10}\n".encode()


def test_a_whole_container_prefix_lands_under_file_path_and_outputs_keep_their_tree(
    store_suite: tuple[LocalSuite, MotoServer | None],
) -> None:
    suite, _ = store_suite
    c = suite.client()
    u = _uid()
    c.create_container(f"data-{u}")
    c.create_container(f"res-{u}")
    for key in ("set/a.txt", "set/sub/b.txt", "other/c.txt"):
        c.upload_object(f"data-{u}", key, key.encode())
    c.create_pool(f"p{u}", target_nodes=1)
    c.create_job(f"j{u}", pool_id=f"p{u}")
    copy = "mkdir -p res/x/y && cp inputs/set/sub/b.txt res/x/y/b.out && cp inputs/set/a.txt res/a.out"
    c.add_task(
        f"j{u}", "t", f"/bin/sh -c {shlex.quote(copy + ' && ls -R inputs')}",
        resource_files=[ResourceFile.from_container(f"data-{u}", prefix="set/", file_path="inputs")],
        output_files=[OutputFile("res/**/*.out", f"res-{u}", path="run1")],
    )
    t = c.wait_task(f"j{u}", "t", timeout=60)
    assert t.execution_info.result == task_pb2.TaskExecutionInfo.SUCCESS, t.execution_info
    assert "c.txt" not in c.read_task_file(f"j{u}", "t", "stdout.txt").decode()
    assert sorted(o.key for o in c.list_objects(f"res-{u}")) == ["run1/a.out", "run1/x/y/b.out"]
    assert c.read_object(f"res-{u}", "run1/x/y/b.out") == b"set/sub/b.txt"


def test_an_object_many_tasks_need_is_downloaded_once_per_node(
    store_suite: tuple[LocalSuite, MotoServer | None],
) -> None:
    suite, moto = store_suite
    c = suite.client()
    u = _uid()
    c.create_container(f"ref-{u}")
    c.upload_object(f"ref-{u}", f"genome-{u}.bin", secrets.token_bytes(3 * 1024 * 1024))
    c.create_pool(f"p{u}", target_nodes=1, task_slots_per_node=4)
    c.create_job(f"j{u}", pool_id=f"p{u}", on_all_tasks_complete="terminate_job")
    for i in range(12):
        c.add_task(f"j{u}", f"t{i}", "/usr/bin/wc -c genome.bin",
                   resource_files=[ResourceFile.from_object(f"ref-{u}", f"genome-{u}.bin", "genome.bin")])
    job = c.wait_job(f"j{u}", timeout=120)
    assert job.task_counts.succeeded == 12
    for i in range(12):
        assert c.read_task_file(f"j{u}", f"t{i}", "stdout.txt") == b"3145728 genome.bin\n"
    assert _gets(suite, moto, f"genome-{u}.bin") == 1


def test_a_failed_download_fails_the_task_before_it_runs_without_retries(
    store_suite: tuple[LocalSuite, MotoServer | None], tmp_path: Path,
) -> None:
    suite, _ = store_suite
    c = suite.client()
    u = _uid()
    c.create_container(f"c-{u}")
    c.create_pool(f"p{u}", target_nodes=1)
    c.create_job(f"j{u}", pool_id=f"p{u}")
    ran = tmp_path / "ran"
    c.add_task(f"j{u}", "missing", f"/usr/bin/touch {ran}", max_task_retry_count=3,
               resource_files=[ResourceFile.from_object(f"c-{u}", "no/such.txt", "x.txt")])
    c.add_task(f"j{u}", "nocontainer", f"/usr/bin/touch {ran}", max_task_retry_count=3,
               resource_files=[ResourceFile.from_container(f"gone-{u}")])
    for tid in ("missing", "nocontainer"):
        t = c.wait_task(f"j{u}", tid, timeout=60)
        info = t.execution_info
        assert info.result == task_pb2.TaskExecutionInfo.FAILURE
        assert info.failure_info.code == "RESOURCE_FILE_DOWNLOAD_FAILED"
        assert info.failure_info.category == task_pb2.FailureInfo.USER_ERROR
        assert "resource_files[0]" in info.failure_info.message
        assert info.retry_count == 0 and not info.HasField("exit_code")
    assert not ran.exists()


def test_an_http_url_resource_file_is_fetched_as_is(
    store_suite: tuple[LocalSuite, MotoServer | None], tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from tests.storage_support import free_port

    suite, _ = store_suite
    c = suite.client()
    u = _uid()
    (tmp_path / "hello.txt").write_text("over plain http\n")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c.create_pool(f"p{u}", target_nodes=1)
        c.create_job(f"j{u}", pool_id=f"p{u}")
        c.add_task(f"j{u}", "t", "/bin/cat fetched/hello.txt",
                   resource_files=[ResourceFile.from_url(f"http://127.0.0.1:{port}/hello.txt",
                                                         "fetched/hello.txt")])
        t = c.wait_task(f"j{u}", "t", timeout=60)
        assert t.execution_info.result == task_pb2.TaskExecutionInfo.SUCCESS, t.execution_info
        assert c.read_task_file(f"j{u}", "t", "stdout.txt") == b"over plain http\n"
    finally:
        server.terminate()
        server.wait()


def test_upload_conditions_and_an_upload_failure(
    store_suite: tuple[LocalSuite, MotoServer | None],
) -> None:
    suite, _ = store_suite
    c = suite.client()
    u = _uid()
    c.create_container(f"r-{u}")
    c.create_pool(f"p{u}", target_nodes=1, task_slots_per_node=3)
    c.create_job(f"j{u}", pool_id=f"p{u}")
    write = "echo data > r.txt"
    outs = [OutputFile("r.txt", f"r-{u}", path="{t}/on-success.txt", upload_condition="success"),
            OutputFile("r.txt", f"r-{u}", path="{t}/on-failure.txt", upload_condition="failure"),
            OutputFile("r.txt", f"r-{u}", path="{t}/always.txt")]
    for tid, tail in (("ok", "true"), ("bad", "false")):
        c.add_task(f"j{u}", tid, f"/bin/sh -c {shlex.quote(write + ' && ' + tail)}",
                   output_files=[OutputFile(o.file_pattern, o.container, o.path.format(t=tid),
                                            o.upload_condition) for o in outs])
    c.add_task(f"j{u}", "nowhere", "/bin/sh -c 'echo x > r.txt'", max_task_retry_count=2,
               output_files=[OutputFile("r.txt", f"missing-{u}")])
    for tid in ("ok", "bad", "nowhere"):
        c.wait_task(f"j{u}", tid, timeout=60)
    keys = sorted(o.key for o in c.list_objects(f"r-{u}"))
    assert keys == ["bad/always.txt", "bad/on-failure.txt", "ok/always.txt", "ok/on-success.txt"]
    t = c.get_task(f"j{u}", "nowhere")
    assert t.execution_info.failure_info.code == "OUTPUT_FILE_UPLOAD_FAILED"
    assert t.execution_info.exit_code == 0 and t.execution_info.retry_count == 0


def test_a_symlink_planted_by_the_task_is_not_followed_out(
    store_suite: tuple[LocalSuite, MotoServer | None],
) -> None:
    suite, _ = store_suite
    c = suite.client()
    u = _uid()
    c.create_container(f"r-{u}")
    c.create_pool(f"p{u}", target_nodes=1)
    c.create_job(f"j{u}", pool_id=f"p{u}")
    plant = "mkdir out && echo fine > out/ok.txt && ln -s /etc/passwd out/leak.txt"
    c.add_task(f"j{u}", "t", f"/bin/sh -c {shlex.quote(plant)}",
               output_files=[OutputFile("out/*.txt", f"r-{u}", path="o")])
    t = c.wait_task(f"j{u}", "t", timeout=60)
    info = t.execution_info
    assert info.failure_info.code == "OUTPUT_FILE_UPLOAD_FAILED"
    assert "leak.txt" in info.failure_info.message
    keys = [o.key for o in c.list_objects(f"r-{u}")]
    assert "o/leak.txt" not in keys


def test_paths_that_escape_are_refused_when_the_task_is_added(
    store_suite: tuple[LocalSuite, MotoServer | None],
) -> None:
    suite, _ = store_suite
    c = suite.client()
    u = _uid()
    c.create_pool(f"p{u}", target_nodes=0)
    c.create_job(f"j{u}", pool_id=f"p{u}")
    bad = [
        ({"resource_files": [ResourceFile.from_object("data", "k", "../../etc/x")]},
         "task.resource_files[0].file_path"),
        ({"resource_files": [ResourceFile.from_object("data", "k", "/etc/x")]},
         "task.resource_files[0].file_path"),
        ({"resource_files": [ResourceFile.from_object("data", "../k", "x")]},
         "task.resource_files[0].object_key"),
        ({"output_files": [OutputFile("../*.txt", "data")]}, "task.output_files[0].file_pattern"),
        ({"output_files": [OutputFile("/etc/*", "data")]}, "task.output_files[0].file_pattern"),
        ({"output_files": [OutputFile("a.txt", "data", path="../x")]}, "task.output_files[0].path"),
        ({"output_files": [OutputFile("a\x00.txt", "data")]}, "task.output_files[0].file_pattern"),
    ]
    for kwargs, field in bad:
        with pytest.raises(ShoalError) as e:
            c.add_task(f"j{u}", "t", "/bin/true", **kwargs)
        assert e.value.code.name == "INVALID_ARGUMENT", kwargs
        assert e.value.field == field, (kwargs, e.value)
    assert list(c.list_tasks(f"j{u}")) == []


def test_logs_outlive_the_node(store_suite: tuple[LocalSuite, MotoServer | None]) -> None:
    suite, _ = store_suite
    c = suite.client()
    u = _uid()
    c.create_pool(f"p{u}", target_nodes=1)
    c.create_job(f"j{u}", pool_id=f"p{u}")
    c.add_task(f"j{u}", "t", "/bin/sh -c 'echo to-out; echo to-err >&2'")
    c.add_task(f"j{u}", "quiet", "/bin/true")
    for tid in ("t", "quiet"):
        c.wait_task(f"j{u}", tid, timeout=60)
    c.resize_pool(f"p{u}", 0)
    wait_for(lambda: list(c.list_nodes(f"p{u}")) == [], "the node to be gone")
    assert c.read_task_file(f"j{u}", "t", "stdout.txt") == b"to-out\n"
    assert c.read_task_file(f"j{u}", "t", "stderr.txt") == b"to-err\n"
    assert c.read_task_file(f"j{u}", "quiet", "stdout.txt") == b""
    c.delete_job(f"j{u}")


def test_a_pool_package_that_does_not_exist_makes_its_nodes_unusable(
    store_suite: tuple[LocalSuite, MotoServer | None],
) -> None:
    suite, _ = store_suite
    c = suite.client()
    u = _uid()
    c.create_pool(f"p{u}", target_nodes=1,
                  application_package_references=[PackageReference(f"nope{u}")])
    node = wait_for(lambda: next((n for n in c.list_nodes(f"p{u}")
                                  if n.state == pool_pb2.Node.UNUSABLE), None), "an unusable node")
    assert [e.code for e in node.errors] == ["APPLICATION_PACKAGE_FAILED"]
    c.create_job(f"j{u}", pool_id=f"p{u}")
    c.add_task(f"j{u}", "t", "/bin/true")
    assert c.get_task(f"j{u}", "t").state == task_pb2.Task.ACTIVE
    assert c.get_job(f"j{u}").state == job_pb2.Job.ACTIVE


def test_nodes_hold_no_storage_credentials(
    store_suite: tuple[LocalSuite, MotoServer | None],
) -> None:
    """Agents get URLs, never keys: neither the cluster secret nor the S3 secret is in any
    agent's command line or environment."""
    suite, _ = store_suite
    c = suite.client()
    u = _uid()
    c.create_pool(f"p{u}", target_nodes=1)
    _idle(c, f"p{u}", 1)
    secrets_ = [suite.config.secret, suite.config.service_token]
    if suite.config.storage.secret_access_key:
        secrets_ += [suite.config.storage.secret_access_key, suite.config.storage.access_key_id]
    agents = {pid: cmd for pid, cmd in processes_mentioning(str(suite.state_dir)).items()
              if " -m agent " in f" {cmd} "}
    assert agents
    for pid, cmd in agents.items():
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        for s in secrets_:
            assert s not in cmd and s not in environ, f"agent {pid} holds a secret"
