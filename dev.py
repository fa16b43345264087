#!/usr/bin/env python3
"""Shoal's commands, needing nothing but python3 (3.11+):

    python3 dev.py demo    # make .venv, install Shoal, run a real parallel job end to end
    python3 dev.py test    # make .venv, install Shoal with its test tools, run every test
                           # (as root, apt-get installs chromium for the browser tests if missing)
    python3 dev.py bench   # make .venv, run the benchmarks against the real suite (bench/)
    python3 dev.py chaos   # make .venv, run the fault experiments against the real suite (chaos/)

Anything after the command is passed on (to `shoal demo`, to pytest, or to `python -m bench`
and `python -m chaos`: `--quick`, `--only NAME[,NAME]`).
Why not make: a fresh machine with only python3 may have no make; this file is the Makefile.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"


def ensure_env() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - runs under any system python3
        sys.exit(f"Shoal needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / ".installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("installing Shoal and its dependencies into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    # compat mode puts the checkout itself on sys.path, so `python -m agent` and the
    # services import from any working directory, packages added later included.
    subprocess.run(
        [*pip, "-e", f"{ROOT}[test]", "--config-settings", "editable_mode=compat"], check=True
    )
    stamp.write_text(want)


# Debian packages the dashboard's browser tests drive (headless Chromium through its WebDriver).
BROWSER_PACKAGES = {"chromium": "/usr/bin/chromium", "chromium-driver": "/usr/bin/chromedriver"}


def ensure_browser() -> None:
    """Install Chromium and its driver with apt when they are missing and we can (root, apt);
    otherwise say why the browser tests will be skipped (on CI they fail instead)."""
    missing = [pkg for pkg, path in BROWSER_PACKAGES.items() if not os.path.exists(path)]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        why = "not root" if os.geteuid() != 0 else "no apt-get"
        print(f"note: {' and '.join(missing)} missing and cannot be installed here ({why}): "
              "the dashboard's browser tests will be skipped", flush=True)
        return
    print(f"installing {' '.join(missing)} for the dashboard's browser tests ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=False, stdout=subprocess.DEVNULL, env=env)
    done = subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=False,
                          stdout=subprocess.DEVNULL, env=env)
    if done.returncode != 0:
        print(f"note: apt-get install {' '.join(missing)} failed (exit {done.returncode}): the "
              "dashboard's browser tests will be skipped, or fail on CI", flush=True)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test", "bench", "chaos"):
        print(__doc__)
        return 2
    cmd, rest = sys.argv[1], sys.argv[2:]
    ensure_env()
    os.chdir(ROOT)
    if cmd == "demo":
        argv = [str(BIN / "shoal"), "demo", *rest]
    elif cmd in ("bench", "chaos"):
        argv = [str(BIN / "python"), "-m", cmd, *rest]
    else:
        ensure_browser()
        # Two workers, a test file each at a time (module-scoped suites stay shared): the
        # suite mostly waits on real processes, so it takes about half the wall time on 2
        # cores (1,386 tests: 8 min 20 s against 15 min 40 s). `-n 0` after it runs serially.
        argv = [str(BIN / "python"), "-m", "pytest", "-n", "2", "--dist", "loadfile", *rest]
    return subprocess.call(argv)


if __name__ == "__main__":
    sys.exit(main())
