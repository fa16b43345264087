"""The dashboard's tests run against the real suite: the gateway serves the dashboard on its
own port and reads everything through its own gRPC API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver

from shoal.suite import LocalSuite
from tests.dashboard.browser import start_browser


@pytest.fixture(scope="module")
def suite(shared_suite: LocalSuite) -> LocalSuite:
    """One suite per module (tests/conftest.py's)."""
    return shared_suite


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """A file whose creation lets the tasks that wait for it go on."""
    return tmp_path / "go"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fresh profile, for a module of tests."""
    driver = start_browser(tmp_path_factory.mktemp("chromium"))
    try:
        yield driver
    finally:
        driver.quit()
