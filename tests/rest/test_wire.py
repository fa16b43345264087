"""Each resource's JSON mapping, pure: bodies as Azure's SDK serializes its own models become
the Shoal requests they mean; what Shoal answers reads back through the SDK's models; what
Shoal cannot do is refused naming the property."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.batch import models
from azure.batch._utils.model_base import SdkJSONEncoder

from gateway.rest.errors import RestError
from gateway.rest.wire import jobs, pools, tasks
from gateway.rest.wire.common import Body, format_duration, parse_duration
from shoal.v1 import job_pb2, pool_pb2, task_pb2

BASE = "http://127.0.0.1:1"


def sent(model: Any) -> Body:
    """The JSON Azure's SDK sends for a model."""
    return Body.of(json.loads(json.dumps(model, cls=SdkJSONEncoder, exclude_readonly=True)))


def refused(call: Any, code: str) -> RestError:
    with pytest.raises(RestError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


def test_a_task_as_the_sdk_sends_it() -> None:
    body = sent(models.BatchTaskCreateOptions(
        id="t1", command_line="/bin/sh -c 'echo hi'", display_name="first",
        environment_settings=[models.EnvironmentSetting(name="A", value="1")],
        resource_files=[models.ResourceFile(auto_storage_container_name="data", blob_prefix="in/",
                                            file_path="inputs"),
                        models.ResourceFile(http_url="https://example.com/x.tgz", file_path="x.tgz")],
        output_files=[models.OutputFile(
            file_pattern="out/*.csv",
            destination=models.OutputFileDestination(container=models.OutputFileBlobContainerDestination(
                container_url="https://acct.blob.core.windows.net/results?sv=sas", path="t1")),
            upload_options=models.OutputFileUploadConfiguration(
                upload_condition=models.OutputFileUploadCondition.TASK_SUCCESS))],
        constraints=models.BatchTaskConstraints(max_wall_clock_time=timedelta(minutes=90),
                                                max_task_retry_count=2),
        depends_on=models.BatchTaskDependencies(task_ids=["a"], task_id_ranges=[
            models.BatchTaskIdRange(start=1, end=10)]),
        exit_conditions=models.ExitConditions(
            exit_codes=[models.ExitCodeMapping(code=3, exit_options=models.ExitOptions(
                job_action=models.BatchJobActionKind.TERMINATE,
                dependency_action=models.DependencyAction.SATISFY))],
            default=models.ExitOptions(job_action=models.BatchJobActionKind.NONE)),
        required_slots=2,
        application_package_references=[models.BatchApplicationPackageReference(application_id="app")],
    ))
    req = tasks.task_in(body)
    t = req.task
    assert req.task_id == "t1" and t.command_line == "/bin/sh -c 'echo hi'"
    assert dict(t.environment) == {"A": "1"} and t.required_slots == 2
    assert [(f.container, f.blob_prefix, f.file_path) for f in t.resource_files[:1]] == [("data", "in/", "inputs")]
    assert t.resource_files[1].http_url == "https://example.com/x.tgz"
    out = t.output_files[0]
    assert (out.container, out.path, out.upload_condition) == ("results", "t1", task_pb2.OutputFile.TASK_SUCCESS)
    assert t.constraints.max_wall_clock_time.ToTimedelta() == timedelta(minutes=90)
    assert t.constraints.max_task_retry_count == 2
    assert list(t.depends_on.task_ids) == ["a"] and t.depends_on.task_id_ranges[0].end == 10
    assert t.exit_conditions.exit_codes[0].exit_options.job_action == task_pb2.ExitOptions.TERMINATE
    assert t.application_package_references[0].application_id == "app"


def test_a_task_answered_reads_back_through_the_sdk() -> None:
    t = task_pb2.Task(name="jobs/j1/tasks/t1", command_line="echo", state=task_pb2.Task.COMPLETED,
                      required_slots=1)
    t.create_time.FromDatetime(datetime(2026, 5, 1, tzinfo=UTC))
    t.execution_info.exit_code = 3
    t.execution_info.result = task_pb2.TaskExecutionInfo.FAILURE
    t.execution_info.node = "pools/p/nodes/n1"
    t.execution_info.failure_info.code = "X"
    t.execution_info.failure_info.category = task_pb2.FailureInfo.USER_ERROR
    t.constraints.retention_time.FromTimedelta(timedelta(days=7))
    read = models.BatchTask(tasks.task_json(t, BASE))
    assert read.id == "t1" and read.state == models.BatchTaskState.COMPLETED
    assert read.creation_time == datetime(2026, 5, 1, tzinfo=UTC)
    assert read.execution_info.exit_code == 3
    assert read.execution_info.result == models.BatchTaskExecutionResult.FAILURE
    assert read.execution_info.failure_info.category == models.BatchErrorSourceCategory.USER_ERROR
    assert read.node_info.node_id == "n1" and read.url == f"{BASE}/jobs/j1/tasks/t1"
    assert read.constraints.retention_time == timedelta(days=7)


def test_a_pool_as_the_sdk_sends_it_and_as_it_reads_back() -> None:
    body = sent(models.BatchPoolCreateOptions(
        id="p1", vm_size="standard_d2s_v3", target_dedicated_nodes=3, task_slots_per_node=4,
        task_scheduling_policy=models.BatchTaskSchedulingPolicy(node_fill_type=models.BatchNodeFillType.PACK),
        start_task=models.BatchStartTask(command_line="/bin/true", wait_for_success=False,
                                         max_task_retry_count=1),
        metadata=[models.BatchMetadataItem(name="team", value="render")],
    ))
    req = pools.create_request(body)
    assert (req.pool_id, req.pool.target_nodes, req.pool.task_slots_per_node) == ("p1", 3, 4)
    assert req.pool.node_fill_type == pool_pb2.PACK and dict(req.pool.metadata) == {"team": "render"}
    assert req.pool.start_task.HasField("wait_for_success") and not req.pool.start_task.wait_for_success
    pool = pool_pb2.Pool(name="pools/p1", target_nodes=3, current_nodes=1, state=pool_pb2.Pool.ACTIVE,
                         allocation_state=pool_pb2.Pool.RESIZING, task_slots_per_node=4,
                         start_task=req.pool.start_task, metadata={"team": "render"})
    read = models.BatchPool(pools.pool_json(pool, BASE))
    assert read.allocation_state == models.AllocationState.RESIZING
    assert (read.current_dedicated_nodes, read.target_dedicated_nodes) == (1, 3)
    assert read.start_task.wait_for_success is False and read.metadata[0].value == "render"


def test_a_job_as_the_sdk_sends_it_and_as_it_reads_back() -> None:
    body = sent(models.BatchJobCreateOptions(
        id="j1", pool_info=models.BatchPoolInfo(pool_id="p1"), priority=10, max_parallel_tasks=-1,
        all_tasks_complete_mode=models.BatchAllTasksCompleteMode.TERMINATE_JOB,
        constraints=models.BatchJobConstraints(max_wall_clock_time=timedelta(hours=2)),
        job_preparation_task=models.BatchJobPreparationTask(command_line="/bin/true"),
        uses_task_dependencies=True,
    ))
    req = jobs.create_request(body)
    j = req.job
    assert (req.job_id, j.pool, j.priority, j.max_parallel_tasks) == ("j1", "pools/p1", 10, 0)
    assert j.on_all_tasks_complete == job_pb2.TERMINATE_JOB and j.uses_task_dependencies
    assert j.constraints.max_wall_clock_time.ToTimedelta() == timedelta(hours=2)
    j.name, j.state = "jobs/j1", job_pb2.Job.DISABLED
    read = models.BatchJob(jobs.job_json(j, BASE))
    assert read.state == models.BatchJobState.DISABLED and read.max_parallel_tasks == -1
    assert read.pool_info.pool_id == "p1" and read.job_preparation_task.command_line == "/bin/true"
    assert read.all_tasks_complete_mode == models.BatchAllTasksCompleteMode.TERMINATE_JOB


@pytest.mark.parametrize(
    ("body", "call", "code", "prop"),
    [
        ({"id": "p", "vmSize": "x", "enableAutoScale": True, "autoScaleFormula": "$x=1;"},
         pools.create_request, "AutoScaleNotSupported", None),
        ({"id": "p", "vmSize": "x", "targetLowPriorityNodes": 2}, pools.create_request,
         "UnsupportedProperty", "targetLowPriorityNodes"),
        ({"id": "j", "poolInfo": {"poolId": "p"}, "jobManagerTask": {"id": "m", "commandLine": "x"}},
         jobs.create_request, "UnsupportedProperty", "jobManagerTask"),
        ({"id": "j", "poolInfo": {"autoPoolSpecification": {"poolLifetimeOption": "job"}}},
         jobs.create_request, "UnsupportedProperty", "poolInfo.autoPoolSpecification"),
        ({"id": "j"}, jobs.create_request, "MissingRequiredProperty", "poolInfo"),
        ({"id": "j", "poolInfo": {"poolId": "p"}, "constraints": {"maxTaskRetryCount": -1}},
         jobs.create_request, "InvalidPropertyValue", "constraints.maxTaskRetryCount"),
        ({"id": "j", "poolInfo": {"poolId": "p"}, "priority": "high"}, jobs.create_request,
         "InvalidPropertyValue", "priority"),
        ({"id": "t", "commandLine": "x", "containerSettings": {"imageName": "ubuntu"}},
         tasks.task_in, "UnsupportedProperty", "containerSettings"),
        ({"id": "t", "commandLine": "x", "multiInstanceSettings": {"numberOfInstances": 2}},
         tasks.task_in, "UnsupportedProperty", "multiInstanceSettings"),
        ({"id": "t"}, tasks.task_in, "MissingRequiredProperty", "commandLine"),
        ({"id": "t", "commandLine": "x", "constraints": {"maxWallClockTime": "1 hour"}},
         tasks.task_in, "InvalidPropertyValue", "constraints.maxWallClockTime"),
        ({"id": "t", "commandLine": "x", "resourceFiles": [{"storageContainerUrl": "https://a/b"}]},
         tasks.task_in, "UnsupportedProperty", "resourceFiles[0].storageContainerUrl"),
        ({"id": "t", "commandLine": "x", "outputFiles": [{"filePattern": "*", "destination": {
            "container": {"containerUrl": "https://a/b/c"}}, "uploadOptions": {"uploadCondition": "taskcompletion"}}]},
         tasks.task_in, "InvalidPropertyValue", "outputFiles[0].destination.container.containerUrl"),
        ({"id": "t", "commandLine": "x", "exitConditions": {"default": {"jobAction": "explode"}}},
         tasks.task_in, "InvalidPropertyValue", "exitConditions.default.jobAction"),
    ],
)
def test_what_shoal_cannot_do_is_refused_naming_the_property(
    body: dict[str, Any], call: Any, code: str, prop: str | None
) -> None:
    e = refused(lambda: call(Body.of(body)), code)
    assert e.status == 400
    if prop is not None:
        assert dict(e.values)["PropertyName"] == prop


def test_infrastructure_azure_describes_is_taken_and_not_used() -> None:
    req = pools.create_request(Body.of({
        "id": "p", "vmSize": "STANDARD_D2S_V3", "resizeTimeout": "PT15M", "targetLowPriorityNodes": 0,
        "virtualMachineConfiguration": {"imageReference": {"publisher": "canonical"}, "nodeAgentSKUId": "x"},
        "enableAutoScale": False, "enableInterNodeCommunication": False,
    }))
    assert req.pool_id == "p"


@pytest.mark.parametrize(
    ("text", "span"),
    [("PT1H30M", timedelta(hours=1, minutes=30)), ("P7D", timedelta(days=7)),
     ("P1DT2H3M4.5S", timedelta(days=1, hours=2, minutes=3, seconds=4.5)), ("PT0S", timedelta(0)),
     ("P1W", timedelta(weeks=1)), ("P", None), ("PT", None), ("1h", None), ("P1Y", None)],
)
def test_iso_durations(text: str, span: timedelta | None) -> None:
    assert parse_duration(text) == span


def test_no_limit_is_no_limit_and_durations_go_back_as_azure_writes_them() -> None:
    body = Body.of({"t": "P10675199DT2H48M5.4775807S", "u": "PT90M"})
    assert body.duration("t") is None
    d = body.duration("u")
    assert d is not None and format_duration(d) == "PT1H30M"
    assert parse_duration(format_duration(d)) == timedelta(minutes=90)
