"""Shoal's fault experiments against the real suite.

    python -m chaos                      # every experiment
    python -m chaos --only agent-kill    # some of them
    python -m chaos --quick              # fewer trials: a smoke run

Prints a table to stdout (progress to stderr); exits 1 when a target is missed or an
experiment could not finish. Each experiment is a module with `run(quick) -> Outcome`
(bench.figures), registered below by name.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from collections.abc import Callable

from bench import report
from bench.common import measured
from bench.figures import Outcome
from chaos import agent_kill, corrupt_db, scheduler_kill

EXPERIMENTS: dict[str, Callable[[bool], Outcome]] = {
    "agent-kill": agent_kill.run,
    "scheduler-kill": scheduler_kill.run,
    "corrupt-db": corrupt_db.run,
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m chaos", description="Fault experiments against the real suite.",
        epilog=f"experiments: {', '.join(EXPERIMENTS)}")
    p.add_argument("--quick", action="store_true", help="fewer trials, for a smoke run")
    p.add_argument("--only", metavar="NAME[,NAME]", default="", help="run only these")
    args = p.parse_args(argv)
    args.names = [n.strip() for n in args.only.split(",") if n.strip()] or list(EXPERIMENTS)
    unknown = [n for n in args.names if n not in EXPERIMENTS]
    if unknown:
        p.error(f"unknown experiment {unknown[0]!r}; choose from {', '.join(EXPERIMENTS)}")
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # An exception runs the `finally` blocks that stop the suites.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    machine = report.machine()
    outcomes = [measured(name, functools.partial(EXPERIMENTS[name], args.quick))
                for name in args.names]
    print(f"\nShoal fault experiments{' (--quick)' if args.quick else ''}: "
          f"{report.machine_line(machine)}")
    print(f"{report.summary(outcomes)}\n")
    print(report.table(outcomes).replace("| benchmark |", "| experiment |", 1))
    judged = [f.passed for o in outcomes for f in o.figures if f.passed is not None]
    return 1 if any(o.error for o in outcomes) or not all(judged) else 0


if __name__ == "__main__":
    sys.exit(main())
