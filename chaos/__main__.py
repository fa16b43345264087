"""Run Shoal's fault experiments and print one table per experiment.

    python -m chaos                        # every experiment
    python -m chaos --only service-down    # some of them (comma-separated)
    python -m chaos --quick                # small counts, short faults: a smoke run

Each experiment is a module with `run(quick) -> list of rows` (a row maps a column to its
value, the same columns in every row, and "ok" to whether the row met its promise).
Progress goes to stderr; the exit code is 1 if a row missed its promise or an experiment
could not run.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

from chaos import service_down

Row = dict[str, object]
EXPERIMENTS: dict[str, tuple[str, Callable[[bool], list[Row]]]] = {
    "service-down": ("pool-manager, gateway and storage-stager each down 10 s mid-job, the "
                     "storage-stager also 30 s (--quick: 3 s each)",
                     service_down.run),
}


def table(rows: list[Row]) -> str:
    columns = list(rows[0])
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
             "-|-".join("-" * w for w in widths)]
    lines += [" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0],
                                epilog=f"experiments: {', '.join(EXPERIMENTS)}")
    p.add_argument("--quick", action="store_true", help="small counts and short faults")
    p.add_argument("--only", metavar="NAME[,NAME]", default="")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        p.error(f"unknown experiment {unknown[0]!r}; choose from {', '.join(EXPERIMENTS)}")
    failed = False
    for name in names:
        title, run = EXPERIMENTS[name]
        print(f"[{name}] {title}", file=sys.stderr, flush=True)
        try:
            rows = run(args.quick)
        except Exception as e:  # noqa: BLE001 - one experiment must not cost the others
            traceback.print_exc(file=sys.stderr)
            print(f"\n{name}: could not run: {type(e).__name__}: {e}")
            failed = True
            continue
        print(f"\n{name}: {title}\n{table(rows)}")
        failed = failed or not all(r.get("ok", True) for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
