"""Prometheus metrics of the real suite: each service's /metrics is scraped before and after a
real job (successes, failures, a retry, a requeue, a staging error, an uploaded output) and
the numbers move by exactly what happened; every metric a service serves is in the table of
deploy/README.md with the labels it lists, and every metric listed is served; the one gRPC
interceptor counts calls and errors by method and status, streams included."""

from __future__ import annotations

import re
import shlex
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from shoal.client import Client
from shoal.errors import ShoalError
from shoal.specs import OutputFile, ResourceFile
from shoal.suite import SERVICES, LocalSuite
from shoal.v1 import pool_pb2, task_pb2
from tests.support import wait_for

README = Path(__file__).resolve().parents[2] / "deploy" / "README.md"
Scrape = dict[str, tuple[str, list[Sample]]]
"""Family name -> (type, samples)."""


def scrape(suite: LocalSuite, service: str) -> Scrape:
    with urllib.request.urlopen(suite.metrics_url(service), timeout=10) as r:
        text = r.read().decode()
    return {f.name: (f.type, list(f.samples)) for f in text_string_to_metric_families(text)}


def value(s: Scrape, sample: str, **labels: str) -> float:
    """The sum of the samples named `sample` whose labels include `labels` (0 if none)."""
    family = re.sub(r"_(total|bucket|count|sum)$", "", sample)
    _, samples = s.get(family, ("", []))
    return sum(x.value for x in samples
               if x.name == sample and all(x.labels.get(k) == v for k, v in labels.items()))


def documented() -> dict[str, tuple[str, set[str], str]]:
    """metric -> (type, labels, service) from the table in deploy/README.md."""
    rows = [[cell.strip() for cell in line.split("|")[1:5]]
            for line in README.read_text().splitlines() if line.startswith("| `shoal_")]
    assert len(rows) > 15, "the metrics table of deploy/README.md was not found"
    return {name.strip("`"): (kind, set(re.findall(r"`(\w+)`", labels)), service)
            for name, kind, labels, service in rows}


def sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


@pytest.fixture(scope="module")
def suite(shared_suite: LocalSuite) -> LocalSuite:
    return shared_suite


def idle_nodes(c: Client, pool: str, count: int) -> list[str]:
    def idle() -> list[str] | None:
        ns = list(c.list_nodes(pool))
        ok = len(ns) == count and all(n.state == pool_pb2.Node.IDLE for n in ns)
        return [n.name.rsplit("/", 1)[-1] for n in ns] if ok else None

    return wait_for(idle, f"{count} idle nodes in {pool}")


def test_the_metrics_move_as_a_job_runs(suite: LocalSuite, tmp_path: Path) -> None:
    c = suite.client()
    c.create_container("out")
    c.create_pool("p", target_nodes=2, task_slots_per_node=2)
    nodes = idle_nodes(c, "p", 2)
    before = {s: scrape(suite, s) for s in SERVICES}
    sched = before["job-scheduler"]
    assert value(sched, "shoal_tasks", job="j") == 0  # no such job yet

    c.create_job("j", pool_id="p")
    marker, started, go = tmp_path / "failed-once", tmp_path / "started", tmp_path / "go"
    ok = [f"ok{i}" for i in range(5)]
    c.add_tasks("j", [{"id": t, "command_line": "/bin/true"} for t in ok])
    c.add_task("j", "bad1", "/bin/sh -c 'exit 3'")
    c.add_task("j", "bad2", "/bin/sh -c 'exit 3'")
    c.add_task("j", "retried", sh(f"test -e {marker} && exit 0; touch {marker}; exit 1"),
               max_task_retry_count=1)
    c.add_task("j", "missing", "/bin/true",
               resource_files=[ResourceFile.from_object("nope", "in.txt", "in.txt")])
    c.add_task("j", "upload", sh("echo forty-two bytes of output, more or less > out.txt"),
               output_files=[OutputFile("out.txt", "out", path="o/out.txt")])
    # Runs until its node is disabled with requeue, then (on the other node) succeeds.
    c.add_task("j", "requeued", sh(f"test -e {go} && exit 0; touch {go} {started}; exec sleep 300"))
    # Disabled only once it is the one task running, so it is the one requeued.
    running = wait_for(lambda: (t := c.get_task("j", "requeued")).state == task_pb2.Task.RUNNING
                       and started.exists() and c.get_job("j").task_counts.completed == 10
                       and t, "the other tasks to complete and the requeued one to run")
    node = running.execution_info.node.rsplit("/", 1)[-1]
    assert node in nodes
    c.disable_node_scheduling("p", node, "requeue")
    job = c.wait_job("j", timeout=60)
    c.enable_node_scheduling("p", node)
    assert job.task_counts.completed == 11 and job.task_counts.failed == 3

    after = {s: scrape(suite, s) for s in SERVICES}
    sched, sched0 = after["job-scheduler"], before["job-scheduler"]

    def moved(sample: str, **labels: str) -> float:
        return value(sched, sample, **labels) - value(sched0, sample, **labels)

    assert value(sched, "shoal_tasks", job="j", pool="p", state="completed") == 11
    assert value(sched, "shoal_tasks", job="j", state="active") == 0
    assert value(sched, "shoal_tasks", job="j", state="running") == 0
    assert value(sched, "shoal_tasks_completed", job="j", result="failure") == 3
    assert value(sched, "shoal_tasks_completed", job="j", result="success") == 8
    assert value(sched, "shoal_jobs", account="default", state="active") >= 1
    # 11 tasks, one retried once and one requeued once: 13 attempts, each dispatched once.
    assert moved("shoal_task_attempts_total", pool="p") == 13
    assert moved("shoal_task_retries_total", pool="p") == 1
    assert moved("shoal_task_requeues_total", pool="p") == 1
    assert moved("shoal_task_dispatch_seconds_count", pool="p") == 13
    assert moved("shoal_task_dispatch_seconds_bucket", pool="p", le="+Inf") == 13
    assert moved("shoal_task_dispatch_seconds_sum", pool="p") > 0
    assert value(sched, "shoal_task_slots", pool="p", state="free") \
        + value(sched, "shoal_task_slots", pool="p", state="used") == 4
    wait_for(lambda: value(scrape(suite, "job-scheduler"), "shoal_node_heartbeats_total",
                           pool="p") > value(sched, "shoal_node_heartbeats_total", pool="p"),
             "a heartbeat of an idle node to be counted")
    wait_for(lambda: value(scrape(suite, "pool-manager"), "shoal_nodes", pool="p",
                           state="idle") == 2, "both nodes idle in the node metrics")
    pm = after["pool-manager"]
    assert value(pm, "shoal_pool_target_nodes", pool="p") == 2
    assert value(pm, "shoal_pools", state="active") >= 1

    st, st0 = after["storage-stager"], before["storage-stager"]
    assert value(st, "shoal_staging_errors_total", code="RESOURCE_FILE_DOWNLOAD_FAILED") \
        - value(st0, "shoal_staging_errors_total", code="RESOURCE_FILE_DOWNLOAD_FAILED") == 1
    size = c.get_object("out", "o/out.txt").size
    assert value(st, "shoal_staging_objects_total", direction="upload") \
        - value(st0, "shoal_staging_objects_total", direction="upload") >= 1
    assert value(st, "shoal_storage_http_bytes_total", direction="received") \
        - value(st0, "shoal_storage_http_bytes_total", direction="received") >= size > 0
    assert value(st, "shoal_storage_http_requests_total", method="PUT", status="200") >= 1

    gw, gw0 = after["gateway"], before["gateway"]
    assert value(gw, "shoal_grpc_server_handled_total", grpc_method="CreateJob",
                 grpc_code="OK") - value(gw0, "shoal_grpc_server_handled_total",
                                         grpc_method="CreateJob", grpc_code="OK") == 1


def test_every_metric_served_is_documented_with_its_labels(suite: LocalSuite) -> None:
    # Runs after the job above (module order): every family has series by now.
    docs = documented()
    served: set[str] = set()
    for service in SERVICES:
        for family, (kind, samples) in scrape(suite, service).items():
            if not family.startswith("shoal_"):
                continue
            name = family + "_total" if kind == "counter" else family
            served.add(name)
            assert name in docs, f"{name} ({service}) is not in deploy/README.md's table"
            doc_kind, labels, where = docs[name]
            assert doc_kind == kind, name
            assert where == "all four" or where == service, (name, service, where)
            for sample in samples:
                assert set(sample.labels) - {"le"} == labels, (name, sample)
    # Dashboard metrics appear once someone opened it; the rest must all be served now.
    missing = {n for n in docs if not n.startswith("shoal_dashboard_")} - served
    assert not missing, f"documented but not served: {sorted(missing)}"


def test_the_interceptor_counts_calls_and_errors(suite: LocalSuite) -> None:
    c = suite.client()

    def handled(service: str, method: str, code: str) -> float:
        return value(scrape(suite, service), "shoal_grpc_server_handled_total",
                     grpc_method=method, grpc_code=code)

    def timed(service: str, method: str) -> float:
        return value(scrape(suite, service), "shoal_grpc_server_handling_seconds_count",
                     grpc_method=method)

    ok = {s: handled(s, "GetJob", "OK") for s in ("gateway", "job-scheduler")}
    missing = {s: handled(s, "GetJob", "NOT_FOUND") for s in ("gateway", "job-scheduler")}
    count = timed("gateway", "GetJob")
    c.create_job("counted", pool_id="p")
    c.get_job("counted")
    with pytest.raises(ShoalError):
        c.get_job("no-such-job")
    for service in ("gateway", "job-scheduler"):
        assert handled(service, "GetJob", "OK") - ok[service] == 1, service
        assert handled(service, "GetJob", "NOT_FOUND") - missing[service] == 1, service
    assert timed("gateway", "GetJob") - count == 2
    # A server stream is counted when it ends, with its type.
    c.add_task("counted", "hello", "echo hello")
    c.wait_task("counted", "hello", timeout=60)
    before = handled("job-scheduler", "ReadTaskFile", "OK")
    assert c.read_task_file("counted", "hello", "stdout.txt") == b"hello\n"
    s = scrape(suite, "job-scheduler")
    assert value(s, "shoal_grpc_server_handled_total", grpc_method="ReadTaskFile",
                 grpc_type="server_stream", grpc_code="OK") - before == 1
    # An unauthenticated call is refused by the gateway and counted there.
    bad = Client(suite.endpoint, "shoal_wrong-key")
    refused = handled("gateway", "ListPools", "UNAUTHENTICATED")
    with pytest.raises(ShoalError):
        list(bad.list_pools())
    assert handled("gateway", "ListPools", "UNAUTHENTICATED") - refused == 1
