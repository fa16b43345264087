"""Validation of the file parts of a task or pool spec — resource files, output files,
application package references — when a client sends them (pure).

What passes here is safe to hand to a node: paths are relative and stay inside their
directory, names are valid ids. Whether the containers, objects and applications exist is
found out when the node needs them (as Azure Batch does), and reported on the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from services.common.errors import invalid
from services.common.ids import check_id
from services.common.storage_names import (
    check_container_id,
    check_key_prefix,
    check_object_key,
    check_pattern,
    check_relative_path,
    check_version_id,
    has_wildcards,
    parse_file_mode,
)
from shoal.v1 import application_pb2, task_pb2

MAX_RESOURCE_FILES = 1000
MAX_OUTPUT_FILES = 100
MAX_PACKAGES = 10
MAX_URL = 8192


def check_resource_files(files: Sequence[task_pb2.ResourceFile], field: str) -> None:
    if len(files) > MAX_RESOURCE_FILES:
        raise invalid(field, f"at most {MAX_RESOURCE_FILES} resource files, got {len(files)}")
    for i, f in enumerate(files):
        at = f"{field}[{i}]"
        if bool(f.container) == bool(f.http_url):
            raise invalid(at, "give exactly one source: container (with object_key or "
                              "blob_prefix) or http_url")
        if f.http_url:
            url = urlsplit(f.http_url)
            if url.scheme not in ("http", "https") or not url.netloc or len(f.http_url) > MAX_URL:
                raise invalid(f"{at}.http_url", f"{f.http_url[:80]!r} is not an http(s) URL")
            if f.object_key or f.blob_prefix:
                raise invalid(at, "object_key and blob_prefix go with container, not http_url")
        else:
            check_container_id(f.container, f"{at}.container")
            if f.object_key and f.blob_prefix:
                raise invalid(at, "give object_key (one object) or blob_prefix (many), not both")
            if f.object_key:
                check_object_key(f.object_key, f"{at}.object_key")
            check_key_prefix(f.blob_prefix, f"{at}.blob_prefix")
        one_file = bool(f.http_url or f.object_key)
        check_relative_path(f.file_path, f"{at}.file_path", required=one_file)
        parse_file_mode(f.file_mode, f"{at}.file_mode")


def check_output_files(files: Sequence[task_pb2.OutputFile], field: str) -> None:
    if len(files) > MAX_OUTPUT_FILES:
        raise invalid(field, f"at most {MAX_OUTPUT_FILES} output files, got {len(files)}")
    for i, f in enumerate(files):
        at = f"{field}[{i}]"
        check_pattern(f.file_pattern, f"{at}.file_pattern")
        check_container_id(f.container, f"{at}.container")
        if f.path:
            if has_wildcards(f.file_pattern):
                check_key_prefix(f.path, f"{at}.path")
            else:
                check_object_key(f.path, f"{at}.path")
        if f.upload_condition not in task_pb2.OutputFile.UploadCondition.values():
            raise invalid(f"{at}.upload_condition", f"unknown value {f.upload_condition}")


def check_package_refs(
    refs: Sequence[application_pb2.ApplicationPackageReference], field: str
) -> None:
    if len(refs) > MAX_PACKAGES:
        raise invalid(field, f"at most {MAX_PACKAGES} application packages, got {len(refs)}")
    seen: set[str] = set()
    for i, r in enumerate(refs):
        at = f"{field}[{i}]"
        check_id(r.application_id, f"{at}.application_id")
        if r.version:
            check_version_id(r.version, f"{at}.version")
        if r.application_id.lower() in seen:
            raise invalid(f"{at}.application_id", f"{r.application_id!r} is referenced twice")
        seen.add(r.application_id.lower())
