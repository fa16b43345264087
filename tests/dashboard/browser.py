"""Headless Chromium for the dashboard's browser tests: Debian's `chromium` and
`chromium-driver` packages driven by Selenium (`python3 dev.py test` installs the packages
when they are missing and it can). Every wait is bounded.

Without the packages the tests are skipped with a message saying how to get them; on CI
(`CI` set) they fail instead, since there they must run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000")
WAIT = 30.0
"""Seconds any one thing may take to show on the page."""
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"
T = TypeVar("T")


def start_browser(profile: Path) -> webdriver.Chrome:
    missing = [p for p in (CHROMIUM, DRIVER) if not shutil.which(p)]
    if missing:
        message = (f"{' and '.join(missing)} not installed: `python3 dev.py test` installs "
                   "Debian's chromium and chromium-driver (as root), or apt-get install them")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # The Debian driver, named: Selenium would otherwise try to download one.
    try:
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    except WebDriverException:
        # On a loaded machine Chromium can miss the driver's start-up deadline; once more.
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


def until(driver: webdriver.Chrome, check: Callable[[webdriver.Chrome], T], what: str,
          timeout: float = WAIT) -> T:
    """Wait for `check` to return something truthy (elements that were replaced meanwhile
    are looked up again); fail naming `what` and showing the page at the deadline."""
    def probe(d: webdriver.Chrome) -> T | bool:
        try:
            return check(d)
        except (StaleElementReferenceException, WebDriverException):
            return False

    try:
        return cast(T, WebDriverWait(driver, timeout, poll_frequency=0.1).until(probe))
    except Exception as e:
        body = driver.find_element(By.TAG_NAME, "body").text[:2000]
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; the page at "
                             f"{driver.current_url} shows:\n{body}") from e


def texts(driver: webdriver.Chrome, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def one(driver: webdriver.Chrome, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, css)


def screenshot(driver: webdriver.Chrome, name: str, tmp: Path) -> Path:
    """A PNG of the page: into docs/dashboard/ when SHOAL_UPDATE_SCREENSHOTS is set (how the
    README's pictures are made), else next to the test's files."""
    where = SCREENSHOTS if os.environ.get("SHOAL_UPDATE_SCREENSHOTS") else tmp
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path
