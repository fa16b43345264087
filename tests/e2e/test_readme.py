"""The README's walkthrough and Python example work as typed: the blocks marked
`<!-- tested: ... -->` run against a real `shoal up`, from a directory of their own that
knows nothing of it (the CLI finds it through the profile `shoal up` wrote)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import kill_leftovers
from tests.support import processes_mentioning, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def readme_block(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- tested: {name} -->\n```\w+\n(.*?)\n```", text, re.S)
    assert m, f"README.md has no block marked `tested: {name}`"
    return m.group(1)


class ShoalUp:
    """`shoal up` as the README starts it, on free ports, its profile in a config of its own."""

    def __init__(self, tmp: Path) -> None:
        self.state = tmp / "up" / ".shoal"
        self.state.parent.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        self.env["SHOAL_CONFIG"] = str(tmp / "home" / "config.toml")
        self.env["PATH"] = f"{BIN}{os.pathsep}{self.env.get('PATH', '')}"  # `shoal` as installed
        self.log = tmp / "up.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                ["shoal", "up", "--port", "0"], cwd=self.state.parent, env=self.env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            )
        wait_for(lambda: "Shoal is up" in self.log.read_text() or self.proc.poll() is not None,
                 "shoal up", 60)
        assert self.proc.poll() is None, self.log.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        finally:
            kill_leftovers([*processes_mentioning(str(self.state)), self.proc.pid])


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalUp]:
    u = ShoalUp(tmp_path_factory.mktemp("readme"))
    try:
        yield u
    finally:
        u.stop()
        print(u.log.read_text()[-4000:])


def run(up: ShoalUp, cwd: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    cwd.mkdir()
    return subprocess.run(argv, cwd=cwd, env=up.env, capture_output=True, text=True, timeout=300)


def test_the_walkthrough_runs_as_typed(up: ShoalUp, tmp_path: Path) -> None:
    script = "set -euo pipefail\nset -x\n" + readme_block("walkthrough")
    done = run(up, tmp_path / "anywhere", ["bash", "-c", script])
    assert done.returncode == 0, done.stdout + done.stderr
    out, err = done.stdout, done.stderr
    assert "job-scheduler   SERVING" in out and "account" in out
    assert "error: 1 of 3 tasks failed: f3" in err
    failed = out[out.index("ID"):].splitlines()
    assert failed[1].split()[:3] == ["f3", "FAILED", "3"]
    assert '"id": "f1"' in out and '"exit_code": 0' in out
    assert "two\n" in out
    assert (tmp_path / "anywhere" / "results" / "f1.txt").read_text().strip() == "5"
    assert "deleted job frames" in err and "deleted pool farm" in err
    assert "Traceback" not in err


def test_the_python_example_runs_as_typed(up: ShoalUp, tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(readme_block("python"))
    done = run(up, tmp_path / "anywhere", [sys.executable, str(tmp_path / "example.py")])
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["100 b'49\\n'", "['apple', 'fig', 'pear']", "[]", "b'64\\n'"]
