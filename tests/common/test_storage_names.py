"""The shared rules for storage names, node paths and output patterns."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from services.common.errors import ShoalError
from services.common.storage_names import (
    check_container_id,
    check_object_key,
    check_pattern,
    check_relative_path,
    check_version_id,
    fixed_prefix,
    match_pattern,
    output_key,
    parse_file_mode,
    upload_allowed,
)


@dataclass
class Out:
    file_pattern: str
    container: str = "results"
    path: str = ""


@pytest.mark.parametrize("good", ["abc", "my-data", "a1b", "x" * 63, "0-9"])
def test_container_ids_follow_azure_storage(good: str) -> None:
    assert check_container_id(good, "container") == good


@pytest.mark.parametrize("bad", ["", "ab", "Abc", "a--b", "-ab", "ab-", "a_b", "x" * 64, "a/b", "a\x00b"])
def test_bad_container_ids_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ShoalError) as e:
        check_container_id(bad, "resource_files[0].container")
    assert e.value.field == "resource_files[0].container"


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "..", "a//b", "./a", "a/.", "a\x00", "a\\b", "a\nb", "k" * 1025])
def test_keys_that_could_leave_a_directory_are_refused(bad: str) -> None:
    with pytest.raises(ShoalError) as e:
        check_object_key(bad, "key")
    assert e.value.field == "key"


def test_keys_may_have_any_printable_segments() -> None:
    assert check_object_key("in/part 1/ä.csv", "key") == "in/part 1/ä.csv"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", "a\x00", "..", "a/./b"])
def test_relative_paths_refuse_escapes(bad: str) -> None:
    with pytest.raises(ShoalError):
        check_relative_path(bad, "file_path")


def test_relative_path_may_be_empty_when_optional_and_loses_a_trailing_slash() -> None:
    assert check_relative_path("", "file_path", required=False) == ""
    assert check_relative_path("data/", "file_path") == "data"
    with pytest.raises(ShoalError):
        check_relative_path("", "file_path")


def test_versions() -> None:
    assert check_version_id("1.2.3-rc_1", "version_id") == "1.2.3-rc_1"
    for bad in ("", ".", "..", "1/2", "v" * 65):
        with pytest.raises(ShoalError):
            check_version_id(bad, "version_id")


def test_file_modes_are_octal_without_special_bits() -> None:
    assert parse_file_mode("", "file_mode") == 0o770
    assert parse_file_mode("0755", "file_mode") == 0o755
    for bad in ("rwx", "9", "04755", "-1"):
        with pytest.raises(ShoalError) as e:
            parse_file_mode(bad, "file_mode")
        assert e.value.field == "file_mode"


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "d/a.txt", False),
        ("**/*.txt", "a.txt", True),
        ("**/*.txt", "d/e/a.txt", True),
        ("out/**", "out/a/b", True),
        ("out/**", "other/a", False),
        ("out/*/x.csv", "out/1/x.csv", True),
        ("out/*/x.csv", "out/1/2/x.csv", False),
        ("r?.bin", "r1.bin", True),
        ("[ab].bin", "c.bin", False),
        ("exact.txt", "exact.txt", True),
    ],
)
def test_patterns_match_like_azure_batch(pattern: str, path: str, hit: bool) -> None:
    assert match_pattern(pattern, path) is hit


def test_patterns_refuse_escapes_and_half_double_stars() -> None:
    for bad in ("../*.txt", "/tmp/*", "a**/b", "x\x00"):
        with pytest.raises(ShoalError):
            check_pattern(bad, "output_files[0].file_pattern")


def test_fixed_prefix_is_the_literal_leading_directories() -> None:
    assert fixed_prefix("out/run/**/*.csv") == ("out", "run")
    assert fixed_prefix("*.txt") == ()
    assert fixed_prefix("a/b.txt") == ("a",)


def test_output_keys_follow_azure_batch() -> None:
    assert output_key(Out("result.txt"), "result.txt") == "result.txt"
    assert output_key(Out("out/result.txt", path="r/1.txt"), "out/result.txt") == "r/1.txt"
    assert output_key(Out("out/**/*.csv", path="runs/7"), "out/a/b.csv") == "runs/7/a/b.csv"
    assert output_key(Out("*.csv"), "x.csv") == "x.csv"


def test_uploads_are_allowed_only_where_a_spec_could_put_them() -> None:
    specs = [Out("out/**/*.csv", path="runs/7"), Out("summary.txt", container="other")]
    assert upload_allowed(specs, "results", "runs/7/a/b.csv")
    assert not upload_allowed(specs, "results", "runs/7/a/b.exe")
    assert not upload_allowed(specs, "results", "runs/8/a.csv")
    assert upload_allowed(specs, "other", "summary.txt")
    assert not upload_allowed(specs, "other", "summary2.txt")
    assert not upload_allowed(specs, "third", "runs/7/a.csv")
