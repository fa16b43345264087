"""The typed helpers and one-line forms of resource files, output files and packages: pure
parsing into the protos the server receives."""

from __future__ import annotations

import pytest

from shoal import OutputFile, PackageReference, ResourceFile, ShoalError, StatusCode, TaskSpec
from shoal.task_specs import create_task_request
from shoal.v1 import task_pb2

Condition = task_pb2.OutputFile.UploadCondition


def rf(**fields: str) -> task_pb2.ResourceFile:
    return task_pb2.ResourceFile(**fields)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data:in/a.csv=a.csv", rf(container="data", object_key="in/a.csv", file_path="a.csv")),
        ("data:in/a.csv", rf(container="data", object_key="in/a.csv", file_path="in/a.csv")),
        (
            "data:bin/tool=tools/tool:0755",
            rf(container="data", object_key="bin/tool", file_path="tools/tool", file_mode="0755"),
        ),
        ("data", rf(container="data")),
        ("data/in/=inputs", rf(container="data", blob_prefix="in/", file_path="inputs")),
        ("data/in/=inputs/", rf(container="data", blob_prefix="in/", file_path="inputs")),
        ("data/in=.", rf(container="data", blob_prefix="in")),
        ("my-data:0644", rf(container="my-data", file_mode="0644")),
        # The last '=' starts PATH: keys holding '=' stay whole.
        ("data:k=v=out.txt", rf(container="data", object_key="k=v", file_path="out.txt")),
        # A URL keeps its query string ('=' included) and its port.
        (
            "https://h:8443/x.tgz?sig=a=b=x.tgz:0644",
            rf(http_url="https://h:8443/x.tgz?sig=a=b", file_path="x.tgz", file_mode="0644"),
        ),
        ("HTTP://h/a=a", rf(http_url="HTTP://h/a", file_path="a")),
    ],
)
def test_resource_file_forms(text: str, expected: task_pb2.ResourceFile) -> None:
    assert ResourceFile.parse(text).to_proto() == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "is empty"),
        ("=a", "no source"),
        ("https://h/x", "a URL needs =PATH"),
        ("Data:x=y", "expected CONTAINER:KEY"),
        ("/in=y", "expected CONTAINER:KEY"),
        ("data:=y", "no key after 'data:'"),
        ("data:k=", "empty PATH"),
    ],
)
def test_resource_file_errors_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        ResourceFile.parse(text)


def of(pattern: str, container: str, path: str, condition: int) -> task_pb2.OutputFile:
    return task_pb2.OutputFile(
        file_pattern=pattern, container=container, path=path, upload_condition=condition
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("out.txt=results", of("out.txt", "results", "", Condition.TASK_COMPLETION)),
        (
            "out/**/*.csv=results/t1:success",
            of("out/**/*.csv", "results", "t1", Condition.TASK_SUCCESS),
        ),
        ("err.log=logs/a/b.log:FAILURE", of("err.log", "logs", "a/b.log", Condition.TASK_FAILURE)),
        # '=' in the pattern and in the path (key=value directories): the pattern ends where
        # a container id follows.
        (
            "out/date=*/x.csv=results/date=today",
            of("out/date=*/x.csv", "results", "date=today", Condition.TASK_COMPLETION),
        ),
        # A path holding ':' is written with its condition.
        ("a=res/k:v:completion", of("a", "res", "k:v", Condition.TASK_COMPLETION)),
    ],
)
def test_output_file_forms(text: str, expected: task_pb2.OutputFile) -> None:
    assert OutputFile.parse(text).to_proto() == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("out.txt", "is not PATTERN=CONTAINER"),
        ("=results", "is not PATTERN=CONTAINER"),
        ("out.txt=Results", "is not PATTERN=CONTAINER"),
        ("out.txt=results/t1:sucess", "unknown upload condition 'sucess'"),
    ],
)
def test_output_file_errors_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        OutputFile.parse(text)


def test_package_forms() -> None:
    assert PackageReference.parse("blender") == PackageReference("blender", "")
    assert PackageReference.parse("blender:2.8").to_proto().version == "2.8"
    for bad in ("", ":2.8", "blender:"):
        with pytest.raises(ValueError):
            PackageReference.parse(bad)


def test_json_lines_take_strings_or_objects_and_name_the_bad_item() -> None:
    spec = TaskSpec.from_dict(
        {
            "id": "t1",
            "command_line": "run",
            "resource_files": [
                "data:a=a",
                {"http_url": "https://h/b", "file_path": "b", "file_mode": "0600"},
            ],
            "output_files": [{"file_pattern": "*.out", "container": "res", "path": "t1"}],
            "application_package_references": ["tool:1", {"application_id": "lib"}],
        }
    )
    task = create_task_request(spec).task
    assert [r.file_path for r in task.resource_files] == ["a", "b"]
    assert task.resource_files[1].file_mode == "0600"
    assert task.output_files[0].upload_condition == Condition.TASK_COMPLETION
    assert [(p.application_id, p.version) for p in task.application_package_references] == [
        ("tool", "1"),
        ("lib", ""),
    ]
    for bad, why in [
        ({"resource_files": "data:a=a"}, "'resource_files' must be a list"),
        ({"resource_files": ["data:a=a", 3]}, r"resource_files\[1\]: expected a string or"),
        ({"output_files": [{"file_pattern": "x"}]}, r"output_files\[0\]: missing 'container'"),
        ({"output_files": [{"file_pattern": "x", "container": "r", "when": "x"}]}, "unknown key"),
        ({"application_package_references": [{"version": "1"}]}, "missing 'application_id'"),
    ]:
        with pytest.raises(ValueError, match=why):
            TaskSpec.from_dict({"id": "t1", "command_line": "run", **bad})


def test_a_bad_string_given_to_the_client_is_invalid_argument_naming_the_field() -> None:
    from shoal import Client

    # Refused before any call: nothing listens at this address.
    with Client("127.0.0.1:9", "k") as client:
        with pytest.raises(ShoalError) as caught:
            client.add_task("j", "t", "run", resource_files=["data:a=a", "https://h/x"])
        assert caught.value.code == StatusCode.INVALID_ARGUMENT
        assert caught.value.field == "task.resource_files[1]"
        with pytest.raises(ShoalError) as caught:
            client.add_tasks("j", [TaskSpec("t", "run", output_files=("nope",))])
        assert caught.value.field == "tasks[0]"
        assert "output_files[0]" in caught.value.message
        with pytest.raises(ShoalError) as caught:
            client.create_pool("p", target_nodes=0, application_package_references=["a:"])
        assert caught.value.field == "pool.application_package_references[0]"
