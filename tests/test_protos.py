"""The protos are enough for a client in any language: the usual options for other
languages' code generators, and every error reason the services give is named in the protos'
comments."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
FILES = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
OPTIONS = ("csharp_namespace", "go_package", "java_multiple_files", "java_package",
           "objc_class_prefix", "php_namespace", "ruby_package")


@pytest.mark.parametrize("name", FILES)
def test_every_proto_carries_the_generators_options(name: str) -> None:
    text = (PROTOS / name).read_text()
    package = re.search(r"^package ([\w.]+);", text, re.M).group(1)  # type: ignore[union-attr]
    found = {k: v.strip('"') for k, v in re.findall(r'^option (\w+) = ("[^"]*"|\w+);', text, re.M)}
    assert sorted(found) == sorted(OPTIONS), name
    parts = package.split(".")  # shoal.agent.v1
    assert found["java_package"] == "dev." + package
    assert found["go_package"].startswith(f"shoal.dev/go/{'/'.join(parts)};")
    assert found["csharp_namespace"] == ".".join(p.capitalize() for p in parts)
    assert found["php_namespace"] == "\\\\".join(p.capitalize() for p in parts)
    assert found["ruby_package"] == "::".join(p.capitalize() for p in parts)


@pytest.mark.parametrize("module", ["shoal.v1.task_pb2", "shoal.v1.conventions_pb2",
                                    "shoal.agent.v1.agent_pb2", "shoal.internal.v1.staging_pb2"])
def test_protoc_read_the_options(module: str) -> None:
    # What protoc compiled (the generated descriptors), not only what the files say.
    options = importlib.import_module(module).DESCRIPTOR.GetOptions()
    package = importlib.import_module(module).DESCRIPTOR.package
    assert options.java_multiple_files is True
    assert options.java_package == "dev." + package
    assert options.objc_class_prefix.startswith("SHL")
    assert options.go_package.endswith("v1")


# Reasons only the services' own callers see (agents, the pool-manager, the admin command),
# not clients of shoal.v1.
NOT_PUBLIC = {
    "INVALID_NODE_CREDENTIAL", "INVALID_JOIN_TOKEN", "INVALID_STAGING_REQUEST",
    "ATTEMPT_NOT_ASSIGNED", "LOG_NOT_FOUND", "ACCOUNT_NOT_FOUND", "ACCOUNT_ALREADY_EXISTS",
    "ACCOUNT_NOT_EMPTY", "SERVICE_UNAVAILABLE", "UNAUTHENTICATED", "STORAGE_NOT_CONFIGURED",
}


def reasons_in_code() -> set[str]:
    found = set()
    for path in [*ROOT.glob("services/**/*.py"), *ROOT.glob("gateway/*.py")]:
        text = path.read_text()
        found |= set(re.findall(r'ShoalError\(\s*Code\.\w+,\s*"([A-Z_]+)"', text))
        found |= set(re.findall(r'failed_precondition\(\s*"([A-Z_]+)"', text))
        found |= set(re.findall(r'reason="([A-Z_]+)"', text))
        found |= {f"{k.upper()}_NOT_FOUND" for k in re.findall(r'not_found\("(\w+)"', text)}
        found |= {f"{k.upper()}_ALREADY_EXISTS"
                  for k in re.findall(r'already_exists\("(\w+)"', text)}
    found |= {p for p in re.findall(r'Peer\("[\w-]+", "([A-Z_]+)"\)',
                                    (ROOT / "services/common/rpc.py").read_text())}
    return found


def test_every_reason_a_client_can_get_is_in_the_protos() -> None:
    documented = " ".join(p.read_text() for p in (PROTOS / "shoal" / "v1").glob("*.proto"))
    reasons = reasons_in_code()
    assert len(reasons) > 40  # the scan finds them
    missing = sorted(r for r in reasons - NOT_PUBLIC if not re.search(rf"\b{r}\b", documented))
    assert missing == []
