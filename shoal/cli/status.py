"""`shoal status`: is Shoal up, where, as whom, and what it holds."""

from __future__ import annotations

from collections import Counter
from typing import Any

import click

from shoal.cli.common import CliState, enum_name, fail, output_option, pass_state, print_json
from shoal.client import SERVICES_BEHIND_GATEWAY
from shoal.errors import ShoalError
from shoal.v1 import job_pb2, pool_pb2


def _by_state(states: Counter[str]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"


@click.command("status")
@output_option
@pass_state
def status(state: CliState, output: str) -> None:
    """Is Shoal up: the gateway and the services behind it, the endpoint and account in use,
    and how many pools, nodes, jobs and tasks the account has. Exit 1 unless all serve."""
    config = state.config()
    client = state.client()
    report: dict[str, Any] = {"endpoint": config.endpoint, "from": config.source}
    try:
        report["services"] = client.health()
    except ShoalError as e:
        report["services"] = {"gateway": "UNREACHABLE"}
        return _print(report, output, problem=f"cannot reach Shoal at {config.endpoint}: "
                                              f"{e.message}")
    serving = all(v == "SERVING" for v in report["services"].values())
    try:
        report["account"] = client.account()
        pools = list(client.list_pools())
        jobs = list(client.list_jobs())
    except ShoalError as e:
        return _print(report, output, problem=f"{e.message} [{e.reason}]" if e.reason else e.message)
    report["pools"] = {
        "total": len(pools),
        "by_state": dict(Counter(enum_name(pool_pb2.Pool.State, p.state) for p in pools)),
        "nodes": sum(p.current_nodes for p in pools),
        "target_nodes": sum(p.target_nodes for p in pools),
    }
    counts = Counter[str]()
    for j in jobs:
        c = j.task_counts
        counts.update(active=c.active, running=c.running, succeeded=c.succeeded, failed=c.failed)
    report["jobs"] = {
        "total": len(jobs),
        "by_state": dict(Counter(enum_name(job_pb2.Job.State, j.state) for j in jobs)),
        "tasks": {k: counts[k] for k in ("active", "running", "succeeded", "failed")},
    }
    _print(report, output, problem="" if serving else "not every service is serving")


def _print(report: dict[str, Any], output: str, problem: str) -> None:
    if output == "json":
        print_json({**report, "ok": not problem})
    else:
        rows = [("endpoint", report["endpoint"]), ("from", report["from"])]
        if "account" in report:
            rows.append(("account", report["account"] or "-"))
        services = report["services"]
        for name in ("gateway", *SERVICES_BEHIND_GATEWAY):
            if name in services:
                rows.append((name, services[name]))
        if "pools" in report:
            p, j = report["pools"], report["jobs"]
            rows.append(("pools", f"{p['total']} ({_by_state(Counter(p['by_state']))}); "
                                  f"nodes {p['nodes']} of {p['target_nodes']}"))
            t = j["tasks"]
            rows.append(("jobs", f"{j['total']} ({_by_state(Counter(j['by_state']))}); tasks "
                                 f"{t['active']} active, {t['running']} running, "
                                 f"{t['succeeded']} succeeded, {t['failed']} failed"))
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            click.echo(f"{k:<{width}}  {v}")
    if problem:
        fail(problem)
