"""Fixtures of the client / CLI tests."""

from __future__ import annotations

import hashlib
import re

import pytest

from shoal.suite import LocalSuite, tail


@pytest.fixture
def uid(request: pytest.FixtureRequest) -> str:
    """An id of the running test's own (a valid pool / job id), so tests sharing one suite
    never see each other's pools, jobs and tasks."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name.removeprefix("test_"))
    if len(name) > 48:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:39]}-{digest}"
    return name


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A failed test on the module's shared suite gets the suite's logs (agents' included) in
    its report: the suite outlives the test, so the fixture's own print comes too late."""
    report = yield
    suite = getattr(item, "funcargs", {}).get("shared_suite")
    if report.when == "call" and report.failed and isinstance(suite, LocalSuite):
        for log in sorted(suite.logs_dir.glob("*.log")):
            report.sections.append((f"log {log.name}", tail(log, 40)))
    return report
