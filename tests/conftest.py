"""Fixtures shared by every test that runs the real suite (four service processes, real
agents, real SQLite files) on free loopback ports."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from shoal.suite import LocalSuite
from tests.storage_support import MotoServer
from tests.support import FAST, print_logs, processes_mentioning, start_suite


def pytest_configure(config: pytest.Config) -> None:
    """No test reads or writes the profiles of whoever runs the tests: every process gets a
    config file of the run's own (tests that need one set their own)."""
    os.environ["SHOAL_CONFIG"] = str(Path(tempfile.mkdtemp(prefix="shoal-test-config-")) / "config.toml")


@pytest.fixture
def suite(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalSuite]:
    """A fresh suite for one test; checks that stopping it leaves no process behind. A test
    marked `@pytest.mark.timing(reconnect_grace=...)` gets those liveness timings instead of
    the short ones."""
    marker = request.node.get_closest_marker("timing")
    timing = replace(FAST, **marker.kwargs) if marker else FAST
    s = start_suite(tmp_path / "state", timing=timing)
    try:
        yield s
    finally:
        s.stop()
        print_logs(s)
        leftovers = processes_mentioning(str(s.state_dir))
        assert leftovers == {}, f"processes left behind: {leftovers}"


@pytest.fixture(scope="module")
def shared_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSuite]:
    """One suite for a module of tests that don't disturb each other (bad input, reads)."""
    s = start_suite(tmp_path_factory.mktemp("shared") / "state")
    try:
        yield s
    finally:
        s.stop()
        print_logs(s)


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's standalone S3 server over real HTTP, one for the whole run; tests use their own
    buckets."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()
