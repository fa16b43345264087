"""The results three ways: a Markdown table for stdout, JSON, and the throughput chart as SVG.

The chart is drawn by hand (no plotting library is a dependency of Shoal): a log2 x-axis of
total task slots, a linear y-axis of tasks per second, the machine's spawn ceiling as a
reference line.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bench.figures import Figure, Outcome

SYMBOLS = {">=": "≥", "<=": "≤"}


# Machine facts


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return {
        "nproc": usable,
        "cpu_model": cpu_model(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def machine_line(m: dict[str, Any]) -> str:
    return (f"{m['nproc']} × {m['cpu_model']}, {m['memory_gib']:g} GiB, Python {m['python']}, "
            f"Linux {m['kernel']}, {m['date']}")


# Values


def number(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.1f} s"
    if unit.startswith("%"):
        return f"{value:.1f} {unit}"
    if unit == "×":
        return f"{value:.2f}×"
    if unit in ("tasks", ""):
        return f"{value:,.0f}"
    return f"{value:,.0f} {unit}"


def target_text(f: Figure) -> str:
    if f.target is None:
        return ""
    return f"{SYMBOLS[f.target.op]} {number(f.target.value, f.unit)}"


def result_text(f: Figure) -> str:
    parts = ["—" if f.value is None else number(f.value, f.unit)]
    if f.passed is not None:
        parts.append("**PASS**" if f.passed else "**MISS**")
    text = " ".join(parts)
    return f"{text} ({f.note})" if f.note else text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(outcomes: Sequence[Outcome]) -> str:
    rows = ["| benchmark | figure | target | result |", "| --- | --- | --- | --- |"]
    for o in outcomes:
        if o.error is not None:
            first = o.error.strip().splitlines()[0] if o.error.strip() else "failed"
            rows.append(f"| {o.name} | did not finish | | ERROR: {_cell(first)} |")
        for f in o.figures:
            rows.append(f"| {o.name} | {_cell(f.label)} | {target_text(f)} | "
                        f"{_cell(result_text(f))} |")
    return "\n".join(rows)


def summary(outcomes: Sequence[Outcome]) -> str:
    judged = [f.passed for o in outcomes for f in o.figures if f.passed is not None]
    errors = [o.name for o in outcomes if o.error is not None]
    text = f"{sum(judged)}/{len(judged)} targets met"
    if errors:
        text += f"; {len(errors)} benchmark(s) failed: {', '.join(errors)}"
    return text


# JSON


def to_json(outcomes: Sequence[Outcome], m: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    return {
        "machine": m,
        "run": run,
        "figures": [
            {
                "key": f.key,
                "benchmark": o.name,
                "figure": f.label,
                "value": f.value,
                "unit": f.unit,
                "target": None
                if f.target is None
                else {"op": f.target.op, "value": f.target.value},
                "pass": f.passed,
                "note": f.note,
            }
            for o in outcomes
            for f in o.figures
        ],
        "benchmarks": {
            o.name: {"seconds": round(o.seconds, 2), "error": o.error, "series": o.series}
            for o in outcomes
        },
    }


def _rounded(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_rounded(x) for x in v]
    return v


def dumps(v: Any, depth: int = 0) -> str:
    """JSON with objects one key a line but lists of plain values on one line: the committed
    copy stays readable and its diffs small (a thousand samples are one line, not a thousand)."""
    pad = "  " * (depth + 1)
    if isinstance(v, dict) and v:
        items = [f"{pad}{json.dumps(k)}: {dumps(x, depth + 1)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"
    if isinstance(v, list) and any(isinstance(x, dict | list) for x in v):
        items = [f"{pad}{dumps(x, depth + 1)}" for x in v]
        return "[\n" + ",\n".join(items) + "\n" + "  " * depth + "]"
    return json.dumps(v, ensure_ascii=False)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dumps(_rounded(data)) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# SVG

W, H = 820, 550
LEFT, RIGHT, TOP, BOTTOM = 84, 36, 96, 106
LABEL_ABOVE, LABEL_BELOW = -6, 14
BLUE, RED, GREY, ORANGE = "#1f5fa8", "#c0392b", "#7f8c8d", "#e67e22"


def nice_step(span: float, ticks: int = 6) -> float:
    """A round step (1, 2 or 5 × 10^k) giving about `ticks` intervals over `span`."""
    raw = span / ticks
    k = 10 ** math.floor(math.log10(raw))
    return next(m * k for m in (1, 2, 5, 10) if m * k >= raw)


def _text(x: float, y: float, s: str, *, size: int = 12, anchor: str = "middle",
          fill: str = "#222", weight: str = "normal", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{fill}" font-weight="{weight}"{extra}>{escape(s)}</text>')


def throughput_svg(
    sweep: Sequence[dict[str, Any]],
    ceiling: float | None,
    m: dict[str, Any],
    *,
    headline: tuple[int, str, float] | None = None,
    target: float | None = None,
) -> str:
    """Throughput against total task slots. `headline` is (total slots, its legend,
    tasks/s): the headline run drawn as a square."""
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    xs = [int(p["total_slots"]) for p in sweep]
    lo, hi = math.log2(min(xs)) - 0.35, math.log2(max(xs)) + 0.35

    def x(slots: float) -> float:
        return LEFT + (math.log2(slots) - lo) / (hi - lo) * pw

    values = [float(p["tasks_per_s"]) for p in sweep]
    top = max(values + [ceiling or 0, target or 0] + ([headline[2]] if headline else []))
    step = nice_step(top * 1.12)
    ymax = step * math.ceil(top * 1.12 / step)

    def y(v: float) -> float:
        return TOP + ph - v / ymax * ph

    nodes = sweep[0]["nodes"]
    tasks = sweep[0]["tasks"]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif">',
        f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
        _text(LEFT, 30, f"Shoal throughput: /bin/true tasks on {nodes} local nodes",
              size=18, anchor="start", weight="bold"),
        _text(LEFT, 52, f"{tasks:,} tasks per point, added in one BatchCreateTasks call, "
              "timed until GetJob shows all completed", size=11, anchor="start", fill="#555"),
        _text(LEFT, 68, f"{machine_line(m)} · load average at start "
              f"{m['load_average_at_start'][0]:g}", size=11, anchor="start", fill="#555"),
    ]
    v = 0.0
    while v <= ymax + 1e-9:
        out.append(f'<line x1="{LEFT}" y1="{y(v):.1f}" x2="{LEFT + pw}" y2="{y(v):.1f}" '
                   f'stroke="#e6e6e6" stroke-width="1"/>')
        out.append(_text(LEFT - 8, y(v) + 4, f"{v:,.0f}", size=11, anchor="end", fill="#444"))
        v += step
    for p in sweep:
        px = x(p["total_slots"])
        out.append(f'<line x1="{px:.1f}" y1="{TOP + ph}" x2="{px:.1f}" y2="{TOP + ph + 5}" '
                   f'stroke="#444"/>')
        out.append(_text(px, TOP + ph + 19, f"{p['total_slots']}", size=11, fill="#444"))
        out.append(_text(px, TOP + ph + 33, f"({nodes}×{p['slots_per_node']})", size=10,
                         fill="#888"))
    out += [
        f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{LEFT + pw}" y2="{TOP + ph}" stroke="#444"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" stroke="#444"/>',
        _text(LEFT + pw / 2, TOP + ph + 54, f"total task slots ({nodes} nodes × slots per "
              "node), log scale", size=12),
        _text(22, TOP + ph / 2, "tasks per second", size=12,
              extra=f' transform="rotate(-90 22 {TOP + ph / 2:.1f})"'),
    ]
    # The higher of the two reference lines is labelled above, the lower below, so no label
    # is struck through by the other line.
    ceiling_higher = ceiling is not None and (not target or ceiling >= target)
    if target:
        out.append(f'<line x1="{LEFT}" y1="{y(target):.1f}" x2="{LEFT + pw}" '
                   f'y2="{y(target):.1f}" stroke="{GREY}" stroke-width="1.5" '
                   f'stroke-dasharray="2 4"/>')
        dy = LABEL_BELOW if ceiling_higher else LABEL_ABOVE
        out.append(_text(LEFT + 6, y(target) + dy, f"target {target:,.0f} tasks/s", size=11,
                         anchor="start", fill=GREY))
    if ceiling:
        out.append(f'<line x1="{LEFT}" y1="{y(ceiling):.1f}" x2="{LEFT + pw}" '
                   f'y2="{y(ceiling):.1f}" stroke="{RED}" stroke-width="1.5" '
                   f'stroke-dasharray="7 5"/>')
        dy = LABEL_ABOVE if ceiling_higher else LABEL_BELOW
        out.append(_text(LEFT + pw - 6, y(ceiling) + dy,
                         f"ceiling: bare /bin/true spawns from one asyncio process, "
                         f"{ceiling:,.0f}/s", size=11, anchor="end", fill=RED))
    points = " ".join(f"{x(p['total_slots']):.1f},{y(p['tasks_per_s']):.1f}" for p in sweep)
    out.append(f'<polyline points="{points}" fill="none" stroke="{BLUE}" stroke-width="2.5"/>')
    for p in sweep:
        px, py = x(p["total_slots"]), y(p["tasks_per_s"])
        out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4.5" fill="{BLUE}"/>')
        out.append(_text(px, py - 10, f"{p['tasks_per_s']:,.0f}", size=11, fill=BLUE,
                         weight="bold"))
    # The legend sits below the axis label, where no data can run into it.
    ly = H - 18
    out.append(f'<circle cx="{LEFT + 6}" cy="{ly - 4}" r="4.5" fill="{BLUE}"/>')
    out.append(_text(LEFT + 16, ly, f"sweep: {tasks:,} tasks per point, one run each",
                     size=11, anchor="start"))
    if headline:
        slots, legend, rate = headline
        hx, hy = x(slots), y(rate)
        out.append(f'<rect x="{hx - 5:.1f}" y="{hy - 5:.1f}" width="10" height="10" '
                   f'fill="{ORANGE}"/>')
        lx = LEFT + pw / 2
        out.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="10" height="10" fill="{ORANGE}"/>')
        out.append(_text(lx + 16, ly, legend, size=11, anchor="start"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def print_report(outcomes: Sequence[Outcome], m: dict[str, Any], run: dict[str, Any]) -> None:
    print(f"\nShoal benchmarks{' (--quick)' if run.get('quick') else ''}: {machine_line(m)}")
    print(f"load average at start {m['load_average_at_start']}; "
          f"ran {run['seconds']:.0f}s; {summary(outcomes)}\n")
    print(table(outcomes))
    sys.stdout.flush()
