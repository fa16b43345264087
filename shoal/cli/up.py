"""`shoal up`: run the whole suite on this machine until Ctrl-C, restarting a service that
dies (with backoff: shoal.supervise) while the others keep running.

$SHOAL_SERVICE_COMMANDS, a JSON object of service name -> argv, replaces how services are
started (`--config PATH` is appended): to run one under a profiler or debugger, or a
stand-in in tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import click

from shoal import profiles
from shoal.cli.common import CliState, err, pass_state
from shoal.client import default_state_dir
from shoal.cluster_config import RestConfig
from shoal.errors import ShoalError
from shoal.profiles import Profile
from shoal.suite import DEFAULT_REST_PORT, HOST, SERVICES, LocalSuite, SchedulerTiming, SuiteError
from shoal.supervise import Restarts

# How often a running suite is checked for dead services.
CHECK_INTERVAL = 0.5


class Stop(Exception):
    """SIGTERM or SIGHUP arrived: stop like on Ctrl-C."""


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into `Stop` for the duration (Ctrl-C is KeyboardInterrupt already)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def service_commands() -> dict[str, list[str]] | None:
    raw = os.environ.get("SHOAL_SERVICE_COMMANDS")
    if not raw:
        return None
    try:
        commands = json.loads(raw)
        ok = isinstance(commands, dict) and all(
            s in SERVICES and isinstance(v, list) and v and all(isinstance(a, str) for a in v)
            for s, v in commands.items()
        )
    except ValueError:
        ok = False
    if not ok:
        raise click.UsageError(
            "SHOAL_SERVICE_COMMANDS must be a JSON object mapping service names "
            f"({', '.join(SERVICES)}) to argv lists"
        )
    return commands


def report_dead(suite: LocalSuite, service: str) -> None:
    err.print(
        f"[bold red]{service} died[/] (exit code {suite.exit_code(service)}); "
        f"last lines of {suite.log_path(service)}:",
    )
    err.print(suite.log_tail(service) or "(empty log)", markup=False)


def serve_until_stopped(suite: LocalSuite, restart_timeout: float = 30) -> None:
    """Block until Ctrl-C / SIGTERM; the caller stops the suite. A service that dies is
    restarted (shoal.supervise.Restarts says when) while the others keep running."""
    restarts = Restarts()
    try:
        while True:
            now = time.monotonic()
            for service in suite.check():
                if restarts.waiting(service):
                    continue
                report_dead(suite, service)
                when = restarts.died(service, now) - now
                err.print(f"restarting {service}" + (f" in {when:.0f}s" if when >= 1 else "")
                          + " ...")
            for service in restarts.due(now):
                try:
                    suite.restart(service, timeout=restart_timeout)
                except SuiteError as e:
                    when = restarts.died(service, time.monotonic()) - time.monotonic()
                    err.print(f"[bold red]{service} did not restart[/] "
                              f"(attempt {restarts.attempts[service]}): {e.summary}; "
                              f"next attempt in {when:.0f}s")
                    continue
                restarts.started(service, time.monotonic())
                err.print(f"[bold green]{service} restarted[/] (pid {suite.pid(service)}, "
                          f"attempt {restarts.attempts[service]})")
            time.sleep(CHECK_INTERVAL)
    except (KeyboardInterrupt, Stop):
        err.print("\nstopping Shoal ...")


def register_profile(suite: LocalSuite, name: str) -> str:
    """Add (or point again) profile `name` at this suite's state dir, so the CLI finds it
    from any directory; the first profile also becomes the default. Returns how to use it."""
    try:
        config = profiles.read_profiles()
        path = profiles.save_profile(Profile(name, state_dir=str(suite.state_dir)))
    except ShoalError as e:
        err.print(f"(not saving profile {name}: {e.message})", markup=False)
        return f"export SHOAL_STATE_DIR={suite.state_dir}\n  "
    if config.default in ("", name):
        err.print(f"(profile {name} in {path} is the default: `shoal` finds this Shoal from "
                  "any directory)", markup=False)
        return ""
    err.print(f"(saved profile {name} in {path}; the default is {config.default})", markup=False)
    return f"export SHOAL_PROFILE={name}\n  "


def usage_hint(prefix: str) -> str:
    return (
        "Try it from another terminal:\n"
        f"  {prefix}shoal pool create p1 --nodes 2 --slots 2\n"
        "  shoal job create j1 --pool p1\n"
        "  shoal task add j1 hello -- echo hello from Shoal\n"
        "  shoal task wait j1 && shoal task logs j1 hello"
    )


def print_banner(suite: LocalSuite, hint: str) -> None:
    cc = suite.client_config
    metrics = [f"{suite.metrics_url(s)}  ({s})" for s in SERVICES if suite.metrics_url(s)]
    lines = [
        "[bold green]Shoal is up.[/]",
        f"  gateway   {suite.endpoint}   (account {cc.account!r}, key in {suite.state_dir / 'client.json'})",
        f"  dashboard {suite.dashboard_url or '(off)'}   (log in with the account key)",
        "  metrics   " + ("\n            ".join(metrics) or "(off)"),
    ]
    if suite.rest_endpoint:
        lines.append(
            f"  REST      {suite.rest_endpoint}   (Azure Batch's REST API: Shared Key with account "
            f"{cc.account!r} and the same key)"
        )
    lines += [
        f"  state     {suite.state_dir}",
        f"  logs      {suite.logs_dir}/{{{','.join(SERVICES)}}}.log",
        "",
        usage_hint(hint),
        "",
        "Press Ctrl-C to stop.",
    ]
    err.print("\n".join(lines))


@click.command("up")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State directory (default: the global --state-dir, $SHOAL_STATE_DIR or ./.shoal).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65532),
    default=50051,
    show_default=True,
    help="Gateway port; the other services take the next three (0: free ports for all).",
)
@click.option(
    "--rest-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_REST_PORT,
    show_default=True,
    help="Port of the Azure Batch REST API (0: a free port; a free port too with --port 0).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65532),
    help="Port of the gateway's Prometheus /metrics; the pool-manager, job-scheduler and "
    "storage-stager take the next three. Default 9451 (free ports with --port 0).",
)
@click.option(
    "--dashboard-port",
    type=click.IntRange(0, 65535),
    help="Port of the web dashboard. Default 8051 (a free port with --port 0).",
)
@click.option("--heartbeat-interval", type=click.FloatRange(min=0, min_open=True), help="Seconds.")
@click.option("--unreachable-after", type=click.FloatRange(min=0, min_open=True), help="Seconds.")
@click.option("--lost-after", type=click.FloatRange(min=0, min_open=True), help="Seconds.")
@click.option("--reconnect-grace", type=click.FloatRange(min=0), help="Seconds.")
@click.option(
    "--staging-outage-timeout", type=click.FloatRange(min=0, min_open=True),
    help="Seconds nodes wait out storage being unavailable before a task's staging fails "
         "(default 300).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option("--profile-name", default="local", show_default=True, metavar="NAME",
              help="The profile that points at this Shoal (in ~/.config/shoal/config.toml).")
@click.option("--no-profile", is_flag=True, help="Write no profile.")
@click.option(
    "--start-timeout", type=click.FloatRange(min=1), default=30, show_default=True, hidden=True
)
@pass_state
def up(
    state: CliState,
    state_dir: Path | None,
    port: int,
    rest_port: int,
    metrics_port: int | None,
    dashboard_port: int | None,
    heartbeat_interval: float | None,
    unreachable_after: float | None,
    lost_after: float | None,
    reconnect_grace: float | None,
    staging_outage_timeout: float | None,
    log_level: str,
    profile_name: str,
    no_profile: bool,
    start_timeout: float,
) -> None:
    """Run Shoal's four services on this machine until Ctrl-C."""
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "heartbeat_interval": heartbeat_interval,
            "unreachable_after": unreachable_after,
            "lost_after": lost_after,
            "reconnect_grace": reconnect_grace,
            "staging_outage_timeout": staging_outage_timeout,
        }.items()
        if v is not None
    }
    ports = [port + i if port else 0 for i in range(4)]
    suite = LocalSuite(
        state_dir or state.effective_state_dir,
        gateway_port=ports[0],
        pool_manager_port=ports[1],
        scheduler_port=ports[2],
        stager_port=ports[3],
        rest=RestConfig(address=f"{HOST}:{rest_port if port else 0}"),
        metrics_port=metrics_port,
        dashboard_port=dashboard_port,
        timing=replace(SchedulerTiming(), **overrides),
        log_level=log_level,
        commands=service_commands(),
    )
    code = 0
    with stop_on_signals():
        try:
            err.print(f"starting Shoal in {suite.state_dir} ...")
            suite.start(timeout=start_timeout)
            if suite.leftovers_stopped:
                err.print(
                    f"(stopped {suite.leftovers_stopped} processes left running by an earlier "
                    "Shoal on this state dir)"
                )
            default = default_state_dir().resolve()
            hint = "" if suite.state_dir == default else f"export SHOAL_STATE_DIR={suite.state_dir}\n  "
            if not no_profile:
                hint = register_profile(suite, profile_name)
            print_banner(suite, hint)
            serve_until_stopped(suite, restart_timeout=start_timeout)
        except (KeyboardInterrupt, Stop):
            err.print("\nstopping Shoal ...")
        except SuiteError as e:
            err.print(f"[bold red]error:[/] {e.summary}")
            if e.log_tail:
                err.print(e.log_tail, markup=False)
            code = 1
        finally:
            suite.stop()
    if code == 0:
        err.print("Shoal stopped.")
    raise click.exceptions.Exit(code)
