"""The entry point every service process shares: `python -m <service> --config FILE`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import structlog

from services.common import logging as shoal_logging
from shoal.cluster_config import ClusterConfig
from shoal.dbfiles import DatabaseUnreadable

EXIT_DATABASE = 65
"""A service's exit code when its database cannot be used (sysexits' EX_DATAERR)."""


def run_service(
    name: str,
    module: str,
    serve: Callable[[ClusterConfig], Coroutine[Any, Any, None]],
    argv: Sequence[str] | None = None,
) -> None:
    """Parse `--config`, load the cluster file, set up logging for `name`, and run `serve`
    until it returns (on SIGTERM/SIGINT)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("--config", required=True, type=Path, help="the cluster JSON file")
    args = parser.parse_args(argv)
    config = ClusterConfig.load(args.config)
    shoal_logging.configure(name, config.log_level)
    try:
        asyncio.run(serve(config))
    except DatabaseUnreadable as e:
        # One line, no traceback: the file, what is wrong, what to do. os._exit: no thread
        # left behind (a database connection's) may keep a stopped service alive.
        structlog.get_logger().error(f"cannot start: {e}", path=str(e.path))
        sys.stderr.flush()
        os._exit(EXIT_DATABASE)
    except KeyboardInterrupt:
        os._exit(130)
    except Exception:
        structlog.get_logger().exception("service failed")
        sys.stderr.flush()
        os._exit(1)
