"""The entry point every service process shares: `python -m <service> --config FILE`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from services.common import logging as shoal_logging
from shoal.cluster_config import ClusterConfig


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
    asyncio.run(serve(config))
