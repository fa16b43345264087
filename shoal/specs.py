"""Typed helpers for a task's resource files, output files and application packages.

    from shoal import ResourceFile, OutputFile, PackageReference
    client.add_task(
        "j1", "t1", "python render.py",
        resource_files=[ResourceFile.from_object("scenes", "s1.blend", "scene.blend"),
                        ResourceFile.from_container("assets", prefix="textures/")],
        output_files=[OutputFile("out/**/*.png", "frames", path="t1", upload_condition="success")],
        application_package_references=[PackageReference("blender", "2.8")],
    )

Each helper also parses the one-line syntax the `shoal` command and JSON-lines files use
(`ResourceFile.parse("scenes:s1.blend=scene.blend:0755")`). Parsing checks the shape only; the
server checks the values (container ids, keys, paths) and names the field it refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from shoal.v1 import application_pb2, task_pb2

# Container ids are lower-case letters, digits and hyphens: never '=', ':' or '/', which is
# what lets the one-line forms below find where a container id starts and ends.
_CONTAINER = r"[a-z0-9-]+"
_MODE_SUFFIX = re.compile(r":([0-7]{3,4})$")
_CONTAINER_AT_START = re.compile(rf"{_CONTAINER}(?=/|:|$)")
_URL = re.compile(r"https?://", re.IGNORECASE)

T = TypeVar("T")

CONDITIONS = {
    "success": "TASK_SUCCESS",
    "failure": "TASK_FAILURE",
    "completion": "TASK_COMPLETION",
    "task_success": "TASK_SUCCESS",
    "task_failure": "TASK_FAILURE",
    "task_completion": "TASK_COMPLETION",
}

# The one-line forms, documented once for `shoal task add --help` and for readers of JSON lines.
RESOURCE_FILE_SYNTAX = """\
SOURCE[=PATH][:MODE]  where SOURCE is one of
  CONTAINER:KEY       one object, written at PATH (default: the key)
  CONTAINER[/PREFIX]  every object whose key starts with PREFIX, each written
                      at PATH/KEY (PATH default: the working directory)
  http(s)://URL       fetched as is, written at PATH (required)
PATH is relative to the working directory. The last '=' starts PATH, so a
key or prefix holding '=' needs an explicit =PATH ('=.' for the working
directory). MODE: octal permission bits, default 0770.
e.g. data:in/a.csv=a.csv  data/in/=inputs  https://host/x.tgz=x.tgz:0644"""

OUTPUT_FILE_SYNTAX = """\
PATTERN=CONTAINER[/PATH][:success|failure|completion]
PATTERN is relative to the working directory: '*', '?', '[...]' match within
a directory, '**' across directories. PATH is the key for a pattern without
wildcards (default: the file's name), else a prefix of the keys. The
condition says when to upload (default: completion, whatever the outcome);
a PATH holding ':' needs an explicit condition after it.
e.g. out.txt=results/t1/out.txt  'out/**/*.csv=results/t1:success'"""

PACKAGE_SYNTAX = """\
APP[:VERSION]
No version: the application's default version when the node installs it."""


@dataclass(frozen=True)
class ResourceFile:
    """A file a node downloads into the task's working directory before the task starts.

    Exactly one source: `container` with `object_key` (one object) or with `blob_prefix` (all
    objects under it, possibly the whole container), or `http_url`.
    """

    file_path: str = ""
    """Relative to the working directory: the file for an object or URL, a directory for a
    container (each object lands at file_path/{key}; empty is the working directory)."""
    container: str = ""
    """Id of a container of the caller's account."""
    object_key: str = ""
    """One object of `container`."""
    blob_prefix: str = ""
    """With `container` and no `object_key`: every object whose key starts with this."""
    http_url: str = ""
    """An http(s) URL the node fetches as is, without credentials."""
    file_mode: str = ""
    """Octal permission bits such as "0755"; empty means 0770."""

    @classmethod
    def from_object(
        cls, container: str, key: str, file_path: str | None = None, *, file_mode: str = ""
    ) -> ResourceFile:
        """One object, written at `file_path` (default: the key)."""
        return cls(file_path if file_path is not None else key, container, key, "", "", file_mode)

    @classmethod
    def from_container(
        cls, container: str, prefix: str = "", file_path: str = "", *, file_mode: str = ""
    ) -> ResourceFile:
        """Every object of `container` whose key starts with `prefix`, each at file_path/{key}."""
        return cls(file_path, container, "", prefix, "", file_mode)

    @classmethod
    def from_url(cls, url: str, file_path: str, *, file_mode: str = "") -> ResourceFile:
        return cls(file_path, "", "", "", url, file_mode)

    @classmethod
    def parse(cls, text: str) -> ResourceFile:
        """The one-line form (see RESOURCE_FILE_SYNTAX); ValueError says what is wrong."""
        if not text:
            raise ValueError("is empty")
        rest, mode = _split_suffix(text, _MODE_SUFFIX)
        source, sep, given = rest.rpartition("=")
        path: str | None = given if sep else None
        if not sep:
            source = rest
        if not source:
            raise ValueError(f"{text!r} has no source before '='")
        if _URL.match(source):
            if not path:
                raise ValueError(f"{text!r}: a URL needs =PATH, the file to write")
            return cls.from_url(source, path, file_mode=mode)
        head = _CONTAINER_AT_START.match(source)
        if head is None:
            raise ValueError(
                f"{text!r}: expected CONTAINER:KEY, CONTAINER[/PREFIX] or an http(s) URL "
                "before '=' (container ids are lower-case letters, digits and '-')"
            )
        container, after = head.group(), source[head.end() :]
        if after.startswith(":"):
            key = after[1:]
            if not key:
                raise ValueError(f"{text!r}: no key after '{container}:'")
            if path == "":
                raise ValueError(f"{text!r}: empty PATH after '='")
            return cls.from_object(container, key, path, file_mode=mode)
        prefix = after[1:]  # after the '/', or '' for the whole container
        return cls.from_container(container, prefix, _directory(path or ""), file_mode=mode)

    @classmethod
    def from_dict(cls, raw: Any) -> ResourceFile:
        """From JSON: the one-line form as a string, or an object of the proto's fields."""
        if isinstance(raw, str):
            return cls.parse(raw)
        return cls(**_fields(cls, raw))

    def to_proto(self) -> task_pb2.ResourceFile:
        return task_pb2.ResourceFile(
            container=self.container,
            object_key=self.object_key,
            blob_prefix=self.blob_prefix,
            http_url=self.http_url,
            file_path=self.file_path,
            file_mode=self.file_mode,
        )


@dataclass(frozen=True)
class OutputFile:
    """Files a node uploads from the working directory when the task's process ends."""

    file_pattern: str
    """Relative to the working directory; `*`, `?`, `[...]` within a segment, `**` across."""
    container: str
    """Id of the destination container."""
    path: str = ""
    """The key for a pattern without wildcards (default: the file's name), else a prefix."""
    upload_condition: str = "completion"
    """success, failure or completion (whatever the outcome)."""

    def __post_init__(self) -> None:
        if self.upload_condition.lower() not in CONDITIONS:
            raise ValueError(
                f"upload_condition {self.upload_condition!r}: one of success, failure, completion"
            )

    @classmethod
    def parse(cls, text: str) -> OutputFile:
        """The one-line form (see OUTPUT_FILE_SYNTAX); ValueError says what is wrong."""
        # PATTERN ends at the first '=' that a container id follows: patterns and paths may
        # both hold '=' (key=value directories), container ids never do.
        for match in re.finditer("=", text):
            dest = text[match.end() :]
            if match.start() > 0 and _CONTAINER_AT_START.match(dest):
                break
        else:
            raise ValueError(
                f"{text!r} is not PATTERN=CONTAINER[/PATH][:CONDITION] (container ids are "
                "lower-case letters, digits and '-')"
            )
        pattern = text[: match.start()]
        condition = "completion"
        # Strict on purpose: a mistyped condition must not silently become part of the key.
        # A path holding ':' is written with an explicit condition after it.
        head, sep, tail = dest.rpartition(":")
        if sep:
            if tail.lower() not in CONDITIONS:
                raise ValueError(
                    f"{text!r}: unknown upload condition {tail!r} after the last ':'; one of "
                    "success, failure, completion"
                )
            dest, condition = head, tail.lower()
        container, _, path = dest.partition("/")
        return cls(pattern, container, path, condition)

    @classmethod
    def from_dict(cls, raw: Any) -> OutputFile:
        """From JSON: the one-line form as a string, or an object of the proto's fields."""
        if isinstance(raw, str):
            return cls.parse(raw)
        fields = _fields(cls, raw)
        for required in ("file_pattern", "container"):
            if required not in fields:
                raise ValueError(f"missing {required!r}")
        return cls(**fields)

    def to_proto(self) -> task_pb2.OutputFile:
        return task_pb2.OutputFile(
            file_pattern=self.file_pattern,
            container=self.container,
            path=self.path,
            upload_condition=CONDITIONS[self.upload_condition.lower()],  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class PackageReference:
    """An application package a pool's nodes or a task needs."""

    application_id: str
    version: str = ""
    """Empty: the application's default version when the node installs it."""

    @classmethod
    def parse(cls, text: str) -> PackageReference:
        """`APP[:VERSION]`; ValueError says what is wrong."""
        app, sep, version = text.partition(":")
        if not app:
            raise ValueError(f"{text!r} is not APP[:VERSION]")
        if sep and not version:
            raise ValueError(f"{text!r}: no version after ':' (leave out ':' for the default)")
        return cls(app, version)

    @classmethod
    def from_dict(cls, raw: Any) -> PackageReference:
        """From JSON: `"APP[:VERSION]"` or {"application_id": ..., "version": ...}."""
        if isinstance(raw, str):
            return cls.parse(raw)
        fields = _fields(cls, raw)
        if "application_id" not in fields:
            raise ValueError("missing 'application_id'")
        return cls(**fields)

    def to_proto(self) -> application_pb2.ApplicationPackageReference:
        return application_pb2.ApplicationPackageReference(
            application_id=self.application_id, version=self.version
        )


ResourceFileLike = ResourceFile | task_pb2.ResourceFile | str
OutputFileLike = OutputFile | task_pb2.OutputFile | str
PackageLike = PackageReference | application_pb2.ApplicationPackageReference | str


def resource_file_proto(value: ResourceFileLike) -> task_pb2.ResourceFile:
    if isinstance(value, task_pb2.ResourceFile):
        return value
    return (ResourceFile.parse(value) if isinstance(value, str) else value).to_proto()


def output_file_proto(value: OutputFileLike) -> task_pb2.OutputFile:
    if isinstance(value, task_pb2.OutputFile):
        return value
    return (OutputFile.parse(value) if isinstance(value, str) else value).to_proto()


def package_proto(value: PackageLike) -> application_pb2.ApplicationPackageReference:
    if isinstance(value, application_pb2.ApplicationPackageReference):
        return value
    return (PackageReference.parse(value) if isinstance(value, str) else value).to_proto()


class SpecError(ValueError):
    """One bad item of a list of specs; `field` names it, e.g. `resource_files[2]`."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


def spec_protos(values: Iterable[Any], convert: Callable[[Any], T], field: str) -> list[T]:
    """The protos of helpers / one-line strings / protos; SpecError names a bad one."""
    converted = []
    for i, value in enumerate(values):
        try:
            converted.append(convert(value))
        except ValueError as e:
            raise SpecError(f"{field}[{i}]", str(e)) from None
    return converted


def json_items(raw: Mapping[str, Any], key: str, parse: Callable[[Any], T]) -> tuple[T, ...]:
    """The list `raw[key]` of a JSON task, each item through `parse`; ValueError names a bad
    one."""
    values = raw.get(key) or []
    if not isinstance(values, list):
        raise ValueError(f"{key!r} must be a list")
    return tuple(spec_protos(values, parse, key))


def _split_suffix(text: str, suffix: re.Pattern[str]) -> tuple[str, str]:
    match = suffix.search(text)
    return (text[: match.start()], match.group(1)) if match else (text, "")


def _directory(path: str) -> str:
    # '.' means the working directory, which the API spells as an empty path.
    stripped = path.rstrip("/")
    return "" if stripped in ("", ".") else stripped


def _fields(cls: type, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"expected a string or a JSON object, got {type(raw).__name__}")
    allowed = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    for k, v in raw.items():
        if not isinstance(v, str):
            raise ValueError(f"{k!r} must be a string")
    return dict(raw)


@dataclass(frozen=True)
class NodeCommand:
    """A pool's start task, or a job's preparation or release task: a command a node runs for
    its pool or a job rather than as one of the job's tasks.

        client.create_pool("p", target_nodes=4, start_task=NodeCommand(
            "/bin/sh -c 'apt-get install -y ffmpeg'", wait_for_success=True))
    """

    command_line: str
    """Split like a shell splits words, run without a shell."""
    resource_files: tuple[Any, ...] = ()
    """ResourceFile helpers, one-line strings or protos, downloaded into its working dir."""
    environment: Mapping[str, str] | None = None
    """Extra environment variables."""
    max_task_retry_count: int = 0
    """Retries of a non-zero exit (start and preparation tasks)."""
    max_wall_clock_time: float | None = None
    """Seconds after which it is killed; None: no limit (release tasks: 15 minutes)."""
    wait_for_success: bool = True
    """Start tasks only: whether the node waits for it to succeed before taking tasks."""

    def _fill(self, msg: Any, field: str) -> Any:
        msg.command_line = self.command_line
        msg.resource_files.extend(
            spec_protos(self.resource_files, resource_file_proto, f"{field}.resource_files"))
        msg.environment.update(dict(self.environment or {}))
        if self.max_wall_clock_time is not None:
            msg.max_wall_clock_time.FromNanoseconds(int(self.max_wall_clock_time * 1e9))
        return msg

    def start_task(self) -> task_pb2.StartTask:
        msg = self._fill(task_pb2.StartTask(), "pool.start_task")
        msg.wait_for_success = self.wait_for_success
        msg.max_task_retry_count = self.max_task_retry_count
        return msg  # type: ignore[no-any-return]

    def job_preparation_task(self) -> task_pb2.JobPreparationTask:
        msg = self._fill(task_pb2.JobPreparationTask(), "job.job_preparation_task")
        msg.max_task_retry_count = self.max_task_retry_count
        return msg  # type: ignore[no-any-return]

    def job_release_task(self) -> task_pb2.JobReleaseTask:
        return self._fill(task_pb2.JobReleaseTask(), "job.job_release_task")  # type: ignore[no-any-return]
