"""The dashboard driven in headless Chromium against the real suite, as a person uses it: the
login refusing a wrong key, a pool's nodes on its map (and a task showing up on one), a job's
progress reaching 100 % live, a failed task found through the filters and paging and its log
shown, and `why` for a waiting task next to a log followed as it is written. Each test takes
a screenshot (into docs/dashboard/ with SHOAL_UPDATE_SCREENSHOTS=1).

Tasks that must be running at a given moment wait for a file the test creates; no test
depends on how long anything takes.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from shoal.suite import LocalSuite
from tests.dashboard.browser import one, screenshot, texts, until
from tests.support import wait_for

WAIT = 60.0


def sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


def waits_for(gate: Path, before: str = "", after: str = "") -> str:
    return sh(f"{f'echo {before}; ' if before else ''}while [ ! -e {gate} ]; do sleep 0.05; done"
              f"{f'; echo {after}' if after else ''}")


def sign_in(b: webdriver.Chrome, suite: LocalSuite, key: str) -> None:
    one(b, "#key").send_keys(key)
    one(b, "#sign-in").click()


def signed_in(b: webdriver.Chrome, suite: LocalSuite, path: str) -> None:
    """Open a page of the dashboard, signing in first if the browser has no session."""
    b.get(suite.dashboard_url + path)
    if "/login" in b.current_url:
        sign_in(b, suite, suite.client_config.key)
    until(b, lambda d: d.current_url.endswith(path) and "/login" not in d.current_url,
          f"the page {path} after signing in")


def ids_shown(b: webdriver.Chrome) -> list[str]:
    return [r.get_attribute("data-task") or "" for r in
            b.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")]


def test_the_login_refuses_a_wrong_key_and_takes_the_right_one(
    browser: webdriver.Chrome, suite: LocalSuite, tmp_path: Path
) -> None:
    b = browser
    b.delete_all_cookies()
    b.get(suite.dashboard_url)
    until(b, lambda d: "/login" in d.current_url, "the dashboard to ask for a key")
    sign_in(b, suite, "shoal_not-the-key")
    until(b, lambda d: "failed=1" in d.current_url and one(d, "#failed").is_displayed(),
          "the login to say the key is not valid")
    assert b.get_cookie("shoal_session") is None
    screenshot(b, "login-refused", tmp_path)
    sign_in(b, suite, suite.client_config.key)
    until(b, lambda d: one(d, "#account").text == "account default", "the overview, signed in")
    cookie = b.get_cookie("shoal_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # The script cannot read it.
    assert "shoal_session" not in b.execute_script("return document.cookie")


def test_a_pools_nodes_are_shown_and_follow_their_tasks(
    browser: webdriver.Chrome, suite: LocalSuite, tmp_path: Path
) -> None:
    b, c = browser, suite.client()
    c.create_pool("render", target_nodes=3, task_slots_per_node=2)
    signed_in(b, suite, "pools/render")
    until(b, lambda d: texts(d, ".node .node-id") and all(
        t.get_attribute("data-state") == "idle" for t in d.find_elements(By.CSS_SELECTOR, ".node"))
        and len(texts(d, ".node")) == 3, "three idle nodes on the map")
    expected = sorted(n.name.rsplit("/", 1)[-1] for n in c.list_nodes("render"))
    assert sorted(texts(b, ".node .node-id")) == expected
    # A task starts: its node shows it, without reloading the page.
    b.execute_script("window.notReloaded = true")
    gate = tmp_path / "go"
    c.create_job("frames", pool_id="render")
    c.add_task("frames", "f1", waits_for(gate))
    # The map is drawn again as it changes: read what a tile says inside the wait.
    busy = until(b, lambda d: [t.get_attribute("data-node")
                               for t in d.find_elements(By.CSS_SELECTOR, ".node")
                               if t.get_attribute("data-running") == "1"
                               and t.get_attribute("data-state") == "running"],
                 "a node running the task")
    node = c.get_task("frames", "f1").execution_info.node.rsplit("/", 1)[-1]
    assert busy == [node]
    assert b.execute_script("return window.notReloaded") is True
    screenshot(b, "pool", tmp_path)
    gate.touch()
    until(b, lambda d: all(t.get_attribute("data-state") == "idle"
                           for t in d.find_elements(By.CSS_SELECTOR, ".node")),
          "the node idle again")


def test_a_jobs_progress_reaches_100_percent(
    browser: webdriver.Chrome, suite: LocalSuite, tmp_path: Path
) -> None:
    b, c = browser, suite.client()
    gate = tmp_path / "go"
    c.create_job("progress", pool_id="render")
    c.add_tasks("progress", [{"id": f"quick{i}", "command_line": "echo quick"} for i in range(10)])
    c.add_tasks("progress", [{"id": f"slow{i}", "command_line": waits_for(gate)} for i in range(10)])
    wait_for(lambda: c.get_job("progress").task_counts.completed == 10, "the quick tasks", WAIT)
    signed_in(b, suite, "jobs/progress")
    until(b, lambda d: one(d, "#job-progress .pct").text == "50 %", "the job at 50 %")
    b.execute_script("window.notReloaded = true")
    gate.touch()
    until(b, lambda d: one(d, "#job-progress .pct").text == "100 %", "the job at 100 %", WAIT)
    assert b.execute_script("return window.notReloaded") is True
    until(b, lambda d: "20/20 done" in one(d, "#job-progress").text, "20/20 done")
    # The task list followed too: no task is shown running any more.
    until(b, lambda d: len(ids_shown(d)) == 20 and "running" not in texts(d, "#tasks .badge"),
          "the task list to show every task done")
    screenshot(b, "job", tmp_path)


def test_a_failed_task_is_found_through_the_filters_and_its_log_shown(
    browser: webdriver.Chrome, suite: LocalSuite, tmp_path: Path
) -> None:
    b, c = browser, suite.client()
    c.create_job("search", pool_id="render")
    c.add_tasks("search", [
        {"id": f"t{i:02d}", "command_line": sh("echo it broke at step 37 >&2; exit 9")
         if i == 37 else f"echo ok {i}"} for i in range(60)])
    wait_for(lambda: c.get_job("search").task_counts.completed == 60, "the 60 tasks", WAIT)
    signed_in(b, suite, "jobs/search")
    until(b, lambda d: ids_shown(d)[:1] == ["t00"] and len(ids_shown(d)) == 50, "the first page")
    one(b, "#next").click()
    until(b, lambda d: ids_shown(d) == [f"t{i}" for i in range(50, 60)], "the second page")
    assert not one(b, "#next").is_enabled()
    Select(one(b, "#filter-result")).select_by_value("FAILURE")
    one(b, "#filter-exit_code").send_keys("9")
    one(b, "#apply").click()
    until(b, lambda d: ids_shown(d) == ["t37"], "only the failed task")
    assert "result=FAILURE" in b.current_url and "exit_code=9" in b.current_url
    screenshot(b, "tasks-filtered", tmp_path)
    one(b, "#tasks a[href$='/tasks/t37']").click()
    until(b, lambda d: d.current_url.endswith("/jobs/search/tasks/t37")
          and texts(d, "#attempt-table tbody tr"), "the task's page with its attempts")
    until(b, lambda d: texts(d, "#attempt-table tbody td:nth-child(6)") == ["9"],
          "one attempt, exit code 9")
    one(b, "#tab-stderr").click()
    until(b, lambda d: "it broke at step 37" in one(d, "#log").text, "the task's stderr")
    screenshot(b, "task-failed", tmp_path)


def test_why_for_a_waiting_task_and_a_log_followed_as_it_is_written(
    browser: webdriver.Chrome, suite: LocalSuite, tmp_path: Path
) -> None:
    b, c = browser, suite.client()
    gate = tmp_path / "go"
    c.create_pool("one", target_nodes=1, task_slots_per_node=1)
    c.create_job("wait", pool_id="one")
    c.add_task("wait", "busy", waits_for(gate, before="first", after="second"))
    c.add_task("wait", "next", "echo next")
    signed_in(b, suite, "jobs/wait/tasks/next")
    until(b, lambda d: "free slot" in one(d, "#why-summary").text
          and "NO_FREE_SLOT" in one(d, "#why").text, "why: no free slot", WAIT)
    screenshot(b, "why", tmp_path)
    signed_in(b, suite, "jobs/wait/tasks/busy")
    until(b, lambda d: one(d, "#log").text.strip() == "first", "the log so far")
    assert "following" in one(b, "#log-state").text
    gate.touch()
    until(b, lambda d: one(d, "#log").text.split() == ["first", "second"]
          and "ended" in one(d, "#log-state").text, "the rest of the log, then its end")
    screenshot(b, "task-log", tmp_path)
