"""Azure's own Python SDK (azure-batch 15) against the real suite, with only the endpoint and
the key changed: Azure's basic workflow, the other operations the REST face covers, and bad
input the SDK lets through answered with Azure's error codes."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient, models
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from shoal.suite import LocalSuite
from tests.support import wait_for

POLL = 0.2  # the SDK's pollers (delete, resize, ...) check this often instead of every 5 s


def batch_client(suite: LocalSuite, key: str | None = None, account: str | None = None) -> BatchClient:
    """As Azure's samples make it: an account name and key, and the account's URL."""
    cc = suite.client_config
    credential = AzureNamedKeyCredential(account or cc.account, key or cc.key)
    return BatchClient(endpoint=suite.rest_endpoint, credential=credential)


@pytest.fixture(scope="module")
def client(shared_suite: LocalSuite) -> Iterator[BatchClient]:
    c = batch_client(shared_suite)
    yield c
    c.close()


@pytest.fixture(scope="module")
def pool(client: BatchClient) -> str:
    """A pool of two nodes for the tests that run tasks."""
    client.create_pool(models.BatchPoolCreateOptions(
        id="shared", vm_size="standard_d2s_v3", target_dedicated_nodes=2, task_slots_per_node=4,
    ))
    wait_for(lambda: [n.state for n in client.list_nodes("shared")] == [models.BatchNodeState.IDLE] * 2,
             "two idle nodes", 60)
    return "shared"


def error_of(call: Any) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as caught:
        call()
    return caught.value


def wait_completed(client: BatchClient, job_id: str, count: int) -> models.BatchTaskCounts:
    def done() -> models.BatchTaskCounts | None:
        counts = client.get_job_task_counts(job_id).task_counts
        return counts if counts.completed == count else None

    return wait_for(done, f"{count} tasks of {job_id} to complete", 120)


def test_azure_basic_workflow(client: BatchClient) -> None:
    # 1. A pool, as Azure's quickstart creates one (the VM image is Azure's business, not used).
    client.create_pool(models.BatchPoolCreateOptions(
        id="quickstart", vm_size="STANDARD_A1_v2", target_dedicated_nodes=2, task_slots_per_node=4,
        virtual_machine_configuration=models.VirtualMachineConfiguration(
            image_reference=models.BatchVmImageReference(
                publisher="canonical", offer="0001-com-ubuntu-server-focal", sku="20_04-lts"),
            node_agent_sku_id="batch.node.ubuntu 20.04"),
    ))
    pool = client.get_pool("quickstart")
    assert (pool.id, pool.state, pool.target_dedicated_nodes) == ("quickstart", models.BatchPoolState.ACTIVE, 2)
    assert pool.etag and pool.last_modified is not None

    # 2. A job on it.
    client.create_job(models.BatchJobCreateOptions(
        id="quickstart-job", pool_info=models.BatchPoolInfo(pool_id="quickstart")))

    # 3. 100 tasks in one collection call.
    tasks = [models.BatchTaskCreateOptions(id=f"task-{i:03}", command_line=f"/bin/sh -c 'echo line {i}'")
             for i in range(100)]
    added = client.create_tasks("quickstart-job", tasks)
    assert len(added.result_values) == 100
    assert {r.status for r in added.result_values} == {models.BatchTaskAddStatus.SUCCESS}

    # 4. Wait for them.
    counts = wait_completed(client, "quickstart-job", 100)
    assert (counts.succeeded, counts.failed) == (100, 0)

    # 5. Read a task's stdout.
    assert b"".join(client.download_task_file("quickstart-job", "task-042", "stdout.txt")) == b"line 42\n"
    task = client.get_task("quickstart-job", "task-042")
    assert task.execution_info.exit_code == 0
    assert task.execution_info.result == models.BatchTaskExecutionResult.SUCCESS
    assert task.node_info.pool_id == "quickstart"

    # 6. List with a filter across pages: 7 to a page, each page one request.
    pages = client.list_tasks("quickstart-job", filter="state eq 'completed' and startswith(id,'task-04')",
                              max_results=7, select=["id", "state"]).by_page()
    ids = [[t.id for t in page] for page in pages]
    assert [len(p) for p in ids] == [7, 3]
    assert sum(ids, []) == [f"task-04{i}" for i in range(10)]

    # 7. Delete the job and the pool; both are gone.
    client.begin_delete_job("quickstart-job", polling_interval=POLL).result()
    client.begin_delete_pool("quickstart", polling_interval=POLL).result()
    assert error_of(lambda: client.get_job("quickstart-job")).error.code == "JobNotFound"
    assert "quickstart" not in [p.id for p in client.list_pools()]


def test_bad_input_the_sdk_lets_through_gets_azure_error_codes(
    shared_suite: LocalSuite, client: BatchClient, pool: str
) -> None:
    client.create_job(models.BatchJobCreateOptions(id="bad-input", pool_info=models.BatchPoolInfo(pool_id=pool)))
    cases: list[tuple[Any, type[HttpResponseError], int, str]] = [
        (lambda: client.get_job("no-such-job"), ResourceNotFoundError, 404, "JobNotFound"),
        (lambda: client.get_pool("no-such-pool"), ResourceNotFoundError, 404, "PoolNotFound"),
        (lambda: client.get_task("bad-input", "no-such-task"), ResourceNotFoundError, 404, "TaskNotFound"),
        (lambda: client.get_node(pool, "no-such-node"), ResourceNotFoundError, 404, "NodeNotFound"),
        (lambda: client.get_job_schedule("no-such-schedule"), ResourceNotFoundError, 404, "JobScheduleNotFound"),
        (lambda: client.get_application("no-such-app"), ResourceNotFoundError, 404, "ApplicationNotFound"),
        (lambda: client.create_job(models.BatchJobCreateOptions(
            id="bad-input", pool_info=models.BatchPoolInfo(pool_id=pool))), ResourceExistsError, 409, "JobExists"),
        (lambda: client.create_pool(models.BatchPoolCreateOptions(id=pool, vm_size="x")),
         ResourceExistsError, 409, "PoolExists"),
        (lambda: client.create_job(models.BatchJobCreateOptions(
            id="orphan", pool_info=models.BatchPoolInfo(pool_id="no-such-pool"))),
         ResourceNotFoundError, 404, "PoolNotFound"),
        (lambda: client.create_task("no-such-job", models.BatchTaskCreateOptions(id="t", command_line="x")),
         ResourceNotFoundError, 404, "JobNotFound"),
        (lambda: client.create_job(models.BatchJobCreateOptions(
            id="bad id!", pool_info=models.BatchPoolInfo(pool_id=pool))), HttpResponseError, 400, "InvalidPropertyValue"),
        (lambda: client.create_job(models.BatchJobCreateOptions(
            id="prio", priority=5000, pool_info=models.BatchPoolInfo(pool_id=pool))),
         HttpResponseError, 400, "InvalidPropertyValue"),
        (lambda: client.create_task("bad-input", models.BatchTaskCreateOptions(id="t", command_line="")),
         HttpResponseError, 400, "MissingRequiredProperty"),
        (lambda: client.enable_pool_auto_scale(pool, models.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes=1;")), HttpResponseError, 400, "AutoScaleNotSupported"),
        (lambda: client.evaluate_pool_auto_scale(pool, models.BatchPoolEvaluateAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes=1;")), HttpResponseError, 400, "AutoScaleNotSupported"),
        (lambda: client.disable_pool_auto_scale("no-such-pool"), ResourceNotFoundError, 404, "PoolNotFound"),
        (lambda: client.list_tasks("bad-input", filter="state eq 'deleted'").next(),
         HttpResponseError, 400, "InvalidQueryParameterValue"),
    ]
    for call, kind, status, code in cases:
        e = error_of(call)
        assert isinstance(e, kind), (code, e)
        assert (e.status_code, e.error.code) == (status, code), (code, e.status_code, e.error.code, e.message)
        assert e.message  # Azure's message, then our request id
        assert e.response.headers["request-id"] in e.message
    # A download streams, and the SDK does not read a streamed error's body: only its status.
    missing = error_of(lambda: client.download_task_file("bad-input", "no-such-task", "stdout.txt"))
    assert isinstance(missing, ResourceNotFoundError) and missing.status_code == 404
    bad_id = error_of(lambda: client.create_job(models.BatchJobCreateOptions(
        id="bad id!", pool_info=models.BatchPoolInfo(pool_id=pool))))
    assert {d.code: d.message for d in bad_id.error.details}["PropertyName"] == "id"
    # Nothing of the refused calls was made.
    assert [j.id for j in client.list_jobs()] == ["bad-input"]

    # Wrong key, unknown account: Azure's 403 AuthenticationFailed.
    wrong_key = batch_client(shared_suite, key="A" * 86 + "==")
    unknown = batch_client(shared_suite, account="nobody")
    for other in (wrong_key, unknown):
        e = error_of(lambda c=other: c.get_job("bad-input"))  # type: ignore[misc]
        assert (e.status_code, e.error.code) == (403, "AuthenticationFailed")
    client.begin_delete_job("bad-input", polling_interval=POLL).result()


def test_a_task_collection_adds_what_it_can_as_azure_does(client: BatchClient, pool: str) -> None:
    client.create_job(models.BatchJobCreateOptions(id="partial", pool_info=models.BatchPoolInfo(pool_id=pool)))
    client.create_task("partial", models.BatchTaskCreateOptions(id="exists", command_line="/bin/true"))
    tasks = [
        models.BatchTaskCreateOptions(id="fine-1", command_line="/bin/true"),
        models.BatchTaskCreateOptions(id="exists", command_line="/bin/true"),
        models.BatchTaskCreateOptions(id="bad", command_line="/bin/true", required_slots=99),
        models.BatchTaskCreateOptions(id="fine-2", command_line="/bin/true"),
    ]
    result = client.create_task_collection("partial", models.BatchTaskGroup(task_values=tasks))
    by_id = {r.task_id: r for r in result.result_values}
    assert by_id["fine-1"].status == by_id["fine-2"].status == models.BatchTaskAddStatus.SUCCESS
    assert by_id["exists"].status == models.BatchTaskAddStatus.CLIENT_ERROR
    assert by_id["exists"].error.code == "TaskExists"
    assert by_id["bad"].status == models.BatchTaskAddStatus.CLIENT_ERROR
    assert by_id["bad"].error.code == "InvalidPropertyValue"
    assert sorted(t.id for t in client.list_tasks("partial")) == ["exists", "fine-1", "fine-2"]
    # The SDK's create_tasks treats TaskExists as done and reports the rest.
    with pytest.raises(models.CreateTasksError) as caught:
        client.create_tasks("partial", [models.BatchTaskCreateOptions(id="bad-2", command_line="/bin/true",
                                                                      required_slots=99)])
    assert [f.task_id for f in caught.value.failure_tasks] == ["bad-2"]
    client.begin_delete_job("partial", polling_interval=POLL).result()


def test_job_and_task_operations(client: BatchClient, pool: str, tmp_path: Path) -> None:
    client.create_job(models.BatchJobCreateOptions(
        id="ops", pool_info=models.BatchPoolInfo(pool_id=pool), priority=5, max_parallel_tasks=-1,
        constraints=models.BatchJobConstraints(max_task_retry_count=1),
        metadata=[models.BatchMetadataItem(name="owner", value="tests")]))
    job = client.get_job("ops")
    assert (job.priority, job.max_parallel_tasks, job.constraints.max_task_retry_count) == (5, -1, 1)
    assert job.metadata[0].name == "owner"

    client.begin_disable_job("ops", models.BatchJobDisableOptions(
        disable_tasks=models.DisableBatchJobOption.REQUEUE), polling_interval=POLL).result()
    assert client.get_job("ops").state == models.BatchJobState.DISABLED
    client.create_task("ops", models.BatchTaskCreateOptions(id="waits", command_line="/bin/true"))
    fixed = tmp_path / "fixed"
    client.create_task("ops", models.BatchTaskCreateOptions(
        id="fails", command_line=f"/bin/sh -c 'test -e {fixed} || exit 3'"))
    assert client.get_task("ops", "waits").state == models.BatchTaskState.ACTIVE
    client.begin_enable_job("ops", polling_interval=POLL).result()
    wait_completed(client, "ops", 2)
    failed = client.get_task("ops", "fails")
    assert (failed.execution_info.exit_code, failed.execution_info.retry_count) == (3, 1)
    assert failed.execution_info.result == models.BatchTaskExecutionResult.FAILURE

    fixed.touch()  # the cause is fixed: reactivate runs it again, with its retries afresh
    client.reactivate_task("ops", "fails")
    wait_completed(client, "ops", 2)
    again = client.get_task("ops", "fails")
    assert (again.execution_info.exit_code, again.execution_info.retry_count) == (0, 0)
    e = error_of(lambda: client.reactivate_task("ops", "waits"))
    assert e.status_code == 409

    client.create_task("ops", models.BatchTaskCreateOptions(id="long", command_line="/bin/sleep 60"))
    wait_for(lambda: client.get_task("ops", "long").state == models.BatchTaskState.RUNNING, "long to run")
    client.terminate_task("ops", "long")
    ended = wait_for(lambda: (t := client.get_task("ops", "long")).state == models.BatchTaskState.COMPLETED
                     and t, "long to be terminated")
    assert ended.execution_info.failure_info.code == "TASK_TERMINATED"
    client.delete_task("ops", "long")
    assert error_of(lambda: client.get_task("ops", "long")).error.code == "TaskNotFound"

    files = {f.name: f for f in client.list_task_files("ops", "waits")}
    assert set(files) <= {"stdout.txt", "stderr.txt"}
    props = client.get_task_file_properties("ops", "fails", "stderr.txt")
    assert props.content_length == 0 or props.content_length > 0

    client.begin_terminate_job("ops", {"terminateReason": "done here"},  # type: ignore[arg-type]
                               polling_interval=POLL).result()
    job = client.get_job("ops")
    assert job.state == models.BatchJobState.COMPLETED
    assert job.execution_info.termination_reason == "done here"
    assert error_of(lambda: client.create_task(
        "ops", models.BatchTaskCreateOptions(id="late", command_line="x"))).error.code == "JobCompleted"
    client.begin_delete_job("ops", polling_interval=POLL).result()


def test_a_job_is_patched_and_updated_with_its_etag(client: BatchClient, pool: str) -> None:
    client.create_job(models.BatchJobCreateOptions(
        id="patched", pool_info=models.BatchPoolInfo(pool_id=pool), priority=1,
        metadata=[models.BatchMetadataItem(name="keep", value="me")]))
    before = client.get_job("patched")
    client.update_job("patched", models.BatchJobUpdateOptions(priority=7, max_parallel_tasks=2),
                      etag=before.etag, match_condition=MatchConditions.IfNotModified)
    after = client.get_job("patched")
    assert (after.priority, after.max_parallel_tasks) == (7, 2)
    assert after.metadata[0].name == "keep"  # a patch leaves what it does not name
    assert after.etag != before.etag and after.last_modified >= before.last_modified

    # The etag read before the patch is stale now: nothing changes.
    stale = error_of(lambda: client.update_job(
        "patched", models.BatchJobUpdateOptions(priority=9), etag=before.etag,
        match_condition=MatchConditions.IfNotModified))
    assert isinstance(stale, ResourceModifiedError)
    assert (stale.status_code, stale.error.code) == (412, "ConditionNotMet")
    assert client.get_job("patched").priority == 7

    bad = error_of(lambda: client.update_job("patched", models.BatchJobUpdateOptions(priority=5000)))
    assert (bad.status_code, bad.error.code) == (400, "InvalidPropertyValue")
    assert {d.code: d.message for d in bad.error.details}["PropertyName"] == "priority"

    # Job - Update (PUT) sets every updatable property: what it leaves out goes to its default.
    client.replace_job("patched", models.BatchJob(pool_info=models.BatchPoolInfo(pool_id=pool), priority=3))
    replaced = client.get_job("patched")
    assert (replaced.priority, replaced.max_parallel_tasks, replaced.metadata) == (3, -1, None)
    moved = error_of(lambda: client.replace_job("patched", models.BatchJob(
        pool_info=models.BatchPoolInfo(pool_id="elsewhere"))))
    assert (moved.status_code, moved.error.code) == (400, "UnsupportedProperty")
    client.begin_delete_job("patched", polling_interval=POLL).result()


def test_pools_and_tasks_are_updated_with_their_etags(client: BatchClient) -> None:
    client.create_pool(models.BatchPoolCreateOptions(
        id="settings", vm_size="x", target_dedicated_nodes=0,
        metadata=[models.BatchMetadataItem(name="a", value="1")]))
    before = client.get_pool("settings")
    client.update_pool("settings", models.BatchPoolUpdateOptions(
        start_task=models.BatchStartTask(command_line="/bin/true")),
        etag=before.etag, match_condition=MatchConditions.IfNotModified)
    after = client.get_pool("settings")
    assert after.start_task.command_line == "/bin/true" and after.metadata[0].name == "a"
    assert after.etag != before.etag
    stale = error_of(lambda: client.update_pool("settings", models.BatchPoolUpdateOptions(
        metadata=[]), etag=before.etag, match_condition=MatchConditions.IfNotModified))
    assert (stale.status_code, stale.error.code) == (412, "ConditionNotMet")
    assert client.get_pool("settings").metadata[0].name == "a"
    # Update Properties sets all three: what it leaves out is cleared.
    client.replace_pool_properties("settings", models.BatchPoolReplaceOptions(
        application_package_references=[], metadata=[models.BatchMetadataItem(name="b", value="2")]))
    replaced = client.get_pool("settings")
    assert replaced.start_task is None and [m.name for m in replaced.metadata] == ["b"]
    refused = error_of(lambda: client.update_pool("settings", models.BatchPoolUpdateOptions(task_slots_per_node=8)))
    assert (refused.status_code, refused.error.code) == (400, "UnsupportedProperty")

    client.create_job(models.BatchJobCreateOptions(id="settings", pool_info=models.BatchPoolInfo(pool_id="settings")))
    client.create_task("settings", models.BatchTaskCreateOptions(id="t", command_line="/bin/true"))
    task = client.get_task("settings", "t")
    client.replace_task("settings", "t", models.BatchTask(constraints=models.BatchTaskConstraints(
        max_task_retry_count=3, max_wall_clock_time=timedelta(minutes=5))),
        etag=task.etag, match_condition=MatchConditions.IfNotModified)
    updated = client.get_task("settings", "t")
    assert updated.constraints.max_task_retry_count == 3
    assert updated.constraints.max_wall_clock_time == timedelta(minutes=5)
    stale = error_of(lambda: client.replace_task("settings", "t", models.BatchTask(
        constraints=models.BatchTaskConstraints(max_task_retry_count=1)),
        etag=task.etag, match_condition=MatchConditions.IfNotModified))
    assert (stale.status_code, stale.error.code) == (412, "ConditionNotMet")
    assert client.get_task("settings", "t").constraints.max_task_retry_count == 3
    client.begin_delete_job("settings", polling_interval=POLL).result()
    client.begin_delete_pool("settings", polling_interval=POLL).result()


def test_nodes_and_resize(client: BatchClient) -> None:
    client.create_pool(models.BatchPoolCreateOptions(id="grow", vm_size="x", target_dedicated_nodes=1))
    client.begin_resize_pool("grow", models.BatchPoolResizeOptions(target_dedicated_nodes=3),
                             polling_interval=POLL).result()
    wait_for(lambda: len([n for n in client.list_nodes("grow") if n.state == models.BatchNodeState.IDLE]) == 3,
             "three idle nodes", 60)
    nodes = list(client.list_nodes("grow", filter="state eq 'idle'", max_results=2))
    assert len(nodes) == 3
    node = client.get_node("grow", nodes[0].id)
    assert node.scheduling_state == models.SchedulingState.ENABLED and node.is_dedicated
    client.disable_node_scheduling("grow", node.id, models.BatchNodeDisableSchedulingOptions(
        node_disable_scheduling_option=models.BatchNodeDisableSchedulingOption.TASK_COMPLETION))
    assert client.get_node("grow", node.id).scheduling_state == models.SchedulingState.DISABLED
    client.enable_node_scheduling("grow", node.id)
    client.begin_resize_pool("grow", models.BatchPoolResizeOptions(
        target_dedicated_nodes=1, node_deallocation_option=models.BatchNodeDeallocationOption.TASK_COMPLETION),
        polling_interval=POLL).result()
    wait_for(lambda: len(list(client.list_nodes("grow"))) == 1, "two nodes to leave", 60)
    assert client.get_pool("grow").allocation_state == models.AllocationState.STEADY
    client.begin_delete_pool("grow", polling_interval=POLL).result()


def test_job_schedules_and_applications(shared_suite: LocalSuite, client: BatchClient, pool: str) -> None:
    client.create_job_schedule(models.BatchJobScheduleCreateOptions(
        id="nightly",
        schedule=models.BatchJobScheduleConfiguration(recurrence_interval=timedelta(hours=24)),
        job_specification=models.BatchJobSpecification(pool_info=models.BatchPoolInfo(pool_id=pool),
                                                       priority=3),
    ))
    schedule = client.get_job_schedule("nightly")
    assert schedule.schedule.recurrence_interval == timedelta(hours=24)
    assert schedule.job_specification.priority == 3
    assert client.job_schedule_exists("nightly")
    # HEAD of a missing schedule is 404; azure-batch 15's exception policy raises on it before
    # job_schedule_exists can answer False (against Azure as well).
    assert error_of(lambda: client.job_schedule_exists("daily")).status_code == 404
    assert [s.id for s in client.list_job_schedules(filter="state eq 'active'")] == ["nightly"]
    client.begin_delete_job_schedule("nightly", polling_interval=POLL).result()
    assert list(client.list_job_schedules()) == []

    shoal = shared_suite.client()
    shoal.create_application("tool", display_name="A tool")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("run.sh", "echo hi\n")
    shoal.upload_application_version("tool", "1.0", archive.getvalue(), format="zip")
    app = client.get_application("tool")
    assert (app.id, app.display_name, app.versions) == ("tool", "A tool", ["1.0"])
    assert [a.id for a in client.list_applications()] == ["tool"]
