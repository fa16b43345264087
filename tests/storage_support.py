"""A real S3 endpoint for tests: moto's standalone server, run as a subprocess over HTTP.

Tests count the requests it served from its access log, e.g. to show that a node's content
cache fetched an object once. A `durable` server keeps what it stored across `restart()`,
as a real object store does when it goes down and comes back: moto records every request it
serves, and a restarted server replays the recording before it listens again.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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

    def __init__(self, log_path: Path, *, durable: bool = False) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.recording = log_path.with_suffix(".recording") if durable else None
        self._start()

    def _start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        if self.recording is not None:
            env.update(MOTO_ENABLE_RECORDING="true", MOTO_RECORDER_FILEPATH=str(self.recording))
            argv = [sys.executable, "-c", "from tests.storage_support import serve_durable; "
                    f"serve_durable({self.port})"]
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=ROOT)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start; see {self.log_path}") from None
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

    def kill(self) -> None:
        """The endpoint goes down at once (connections refused from now on)."""
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def restart(self) -> None:
        """Up again on the same port; a durable server with everything it had stored."""
        self.stop()
        self._start()


def serve_durable(port: int) -> None:
    """moto's server that first replays its recording (MOTO_RECORDER_FILEPATH) in-process,
    then listens: nothing reaches it before it has everything it stored before."""
    from moto.moto_api import recorder
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple
    from werkzeug.test import Client

    app = DomainDispatcherApplication(create_backend_app)
    recording = Path(os.environ["MOTO_RECORDER_FILEPATH"])
    if recording.exists():
        recorder.stop_recording()
        client = Client(app)
        for line in recording.read_text().splitlines():
            entry = json.loads(line)
            body = entry.get("body") or b""
            if entry.get("body_encoded"):
                body = base64.b64decode(body)
            headers = {k: v for k, v in entry["headers"].items()
                       if k.lower() not in ("transfer-encoding", "content-length")}
            client.open(entry["url"], method=entry["method"], headers=headers, data=body)
        recorder.start_recording()
    run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
