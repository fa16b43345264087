"""Fixtures of the client / CLI tests."""

from __future__ import annotations

import hashlib
import re

import pytest


@pytest.fixture
def uid(request: pytest.FixtureRequest) -> str:
    """An id of the running test's own (a valid pool / job id), so tests sharing one suite
    never see each other's pools, jobs and tasks."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name.removeprefix("test_"))
    if len(name) > 48:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:39]}-{digest}"
    return name
