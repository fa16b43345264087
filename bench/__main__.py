"""Shoal's benchmarks against the real suite.

    python -m bench                       # everything (~12 minutes on 2 cores)
    python -m bench --quick               # small counts: a smoke test of the benchmarks
    python -m bench --only latency,bulk   # some of them

Prints a table to stdout (progress to stderr) and writes the figures to
bench/results/latest.json. A full run (neither --quick nor --only) also writes
docs/bench-latest.json and docs/throughput.svg, the committed copies.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import (
    bigjob,
    bulk,
    ceiling,
    concurrent,
    fairness,
    latency,
    manynodes,
    observe,
    report,
    throughput,
    watch,
)
from bench.common import measured
from bench.figures import Outcome

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"

Runner = Callable[[bool, float | None], Outcome]
BENCHMARKS: dict[str, Runner] = {
    "ceiling": lambda quick, _: ceiling.run(quick),
    "throughput": throughput.run,
    "latency": lambda quick, _: latency.run(quick),
    "concurrent": lambda quick, _: concurrent.run(quick),
    "fairness": lambda quick, _: fairness.run(quick),
    "bulk": lambda quick, _: bulk.run(quick),
    "bigjob": lambda quick, _: bigjob.run(quick),
    "manynodes": manynodes.run,
    "watch": lambda quick, _: watch.run(quick),
    "observe": lambda quick, _: observe.run(quick),
}
# Their throughput figures are read against the ceiling, so it runs first whenever they do.
NEEDS_CEILING = {"throughput", "manynodes"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark Shoal against the real suite.",
        epilog=f"benchmarks, in the order they run: {', '.join(BENCHMARKS)}",
    )
    p.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    p.add_argument("--only", metavar="NAME[,NAME]", default="",
                   help="run only these benchmarks (the ceiling too when a throughput needs it)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    args.names = names
    return args


def selection(names: list[str]) -> list[str]:
    if not names:
        return list(BENCHMARKS)
    chosen = set(names)
    if chosen & NEEDS_CEILING:
        chosen.add("ceiling")
    return [n for n in BENCHMARKS if n in chosen]


def run_one(name: str, quick: bool, ceiling_rate: float | None) -> Outcome:
    return measured(name, lambda: BENCHMARKS[name](quick, ceiling_rate))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # An exception, unlike the default SIGTERM death, runs the `finally` blocks that stop the
    # suites and the light agents.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    names = selection(args.names)
    machine = report.machine()
    print(f"Shoal benchmarks on {report.machine_line(machine)}: {', '.join(names)}"
          f"{' (--quick)' if args.quick else ''}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    outcomes: list[Outcome] = []
    ceiling_rate: float | None = None
    for name in names:
        outcome = run_one(name, args.quick, ceiling_rate)
        outcomes.append(outcome)
        if name == "ceiling" and outcome.figures:
            ceiling_rate = outcome.figures[0].value
    run = {"quick": args.quick, "only": args.names, "benchmarks": names,
           "seconds": round(time.perf_counter() - start, 1)}
    report.print_report(outcomes, machine, run)

    data = report.to_json(outcomes, machine, run)
    report.write_json(RESULTS / "latest.json", data)
    written = [RESULTS / "latest.json"]
    full = not args.quick and not args.names
    svg = chart(outcomes, machine, ceiling_rate)
    if svg is not None:
        report.write_text(RESULTS / "throughput.svg", svg)
        written.append(RESULTS / "throughput.svg")
    if full:
        report.write_json(DOCS / "bench-latest.json", data)
        written.append(DOCS / "bench-latest.json")
        if svg is not None:
            report.write_text(DOCS / "throughput.svg", svg)
            written.append(DOCS / "throughput.svg")
    print("\nwrote " + ", ".join(str(p.relative_to(ROOT)) for p in written)
          + ("" if full else " (docs/ is written by full runs only)"))
    return 1 if any(o.error for o in outcomes) else 0


def chart(outcomes: list[Outcome], machine: dict, ceiling_rate: float | None) -> str | None:
    found = next((o for o in outcomes if o.name == "throughput" and o.series.get("sweep")), None)
    if found is None:
        return None
    sweep = found.series["sweep"]
    headline = None
    head = found.series.get("headline")
    rate = next((f.value for f in found.figures if f.key == "throughput.tasks_per_s"), None)
    if head and rate is not None:
        legend = (f"headline: {head['tasks']:,} tasks, median of {len(head['runs'])} runs: "
                  f"{rate:,.0f}/s")
        headline = (head["total_slots"], legend, rate)
    return report.throughput_svg(sweep, ceiling_rate, machine, headline=headline,
                                 target=throughput.TARGET.value)


if __name__ == "__main__":
    sys.exit(main())
