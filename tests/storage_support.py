"""A real S3 endpoint for tests: moto's standalone server, run as a subprocess over HTTP.

Tests count the requests it served from its access log, e.g. to show that a node's content
cache fetched an object once.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""moto colours the access-log lines of non-200 answers."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """moto_server on a free loopback port. Credentials are arbitrary: moto accepts any."""

    region = "us-east-1"
    access_key_id = "testing"
    secret_access_key = "testing"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start; see {log_path}") from None
                time.sleep(0.05)

    def requests(self, method: str, path_contains: str) -> int:
        """How many `method` requests whose path contains `path_contains` were served."""
        self._log.flush()
        needle = f'"{method} '
        return sum(
            1
            for line in ANSI.sub("", self.log_path.read_text(errors="replace")).splitlines()
            if needle in line and path_contains in line.split(needle, 1)[1].split(" ", 1)[0]
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
