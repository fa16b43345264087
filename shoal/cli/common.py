"""What every `shoal` command shares: the client from the global options, one-line errors,
and table / JSON output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import grpc
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from shoal.client import Client, default_state_dir, resolve_config
from shoal.errors import ShoalError
from shoal.suite import SuiteError

# Tables go to stdout; progress, notes and errors to stderr, so stdout stays pipeable.
# Piped, a table takes the width it needs (rich would cut it to 80 columns and drop columns).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 100_000)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliState:
    """The global options, and the client made from them on first use."""

    def __init__(
        self, state_dir: Path | None = None, endpoint: str | None = None, key: str | None = None
    ) -> None:
        self.state_dir = state_dir
        self.endpoint = endpoint
        self.key = key
        self._client: Client | None = None

    @property
    def effective_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else default_state_dir()

    def client(self) -> Client:
        if self._client is None:
            config = resolve_config(self.state_dir, endpoint=self.endpoint, key=self.key)
            # Remembered before connecting, so "cannot reach" can say where it tried.
            self.endpoint = config.endpoint
            self._client = Client(config.endpoint, config.key)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


pass_state = click.make_pass_decorator(CliState, ensure=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one `error: ...` line to stderr and exit with `code`."""
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(code)


def describe(e: ShoalError, endpoint: str | None) -> str:
    if e.unreachable:
        return (
            f"cannot reach Shoal at {endpoint or 'the configured endpoint'}: is `shoal up` running?"
        )
    one_line = " ".join(e.message.split())
    return f"{one_line} [{e.reason}]" if e.reason else one_line


class ShoalGroup(click.Group):
    """The root group: turns every failure of a command into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except ShoalError as e:
            state = ctx.find_object(CliState)
            fail(describe(e, state.endpoint if state else None))
        except grpc.RpcError as e:
            state = ctx.find_object(CliState)
            fail(describe(ShoalError.from_rpc_error(e), state.endpoint if state else None))
        except SuiteError as e:
            fail(e.summary)
        except Exception as e:
            if os.environ.get("SHOAL_DEBUG"):
                raise
            fail(f"unexpected {type(e).__name__}: {e} (set SHOAL_DEBUG=1 for a traceback)")


def key_values(pairs: Sequence[str], option: str) -> dict[str, str]:
    """`K=V` strings to a dict; a usage error names the bad one."""
    result: dict[str, str] = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        result[k] = v
    return result


output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


def to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def when(ts: timestamp_pb2.Timestamp) -> str:
    """Local time of a timestamp; '-' when unset."""
    if ts.seconds == 0 and ts.nanos == 0:
        return "-"
    local = ts.ToDatetime(tzinfo=UTC).astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def enum_name(enum: Any, value: int) -> str:
    try:
        name = str(enum.Name(value))
    except ValueError:
        return str(value)
    return "-" if name.endswith("UNSPECIFIED") else name


def last(name: str) -> str:
    return name.rsplit("/", 1)[-1] if name else "-"


def render_list(
    items: Iterable[Message],
    output: str,
    columns: Sequence[str],
    row: Callable[[Any], Sequence[str]],
    empty: str,
) -> None:
    if output == "json":
        print_json([to_dict(m) for m in items])
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for c in columns:
        # One line per row, so `| grep` and `| wc -l` work; long cells end in an ellipsis.
        table.add_column(c, no_wrap=True, overflow="ellipsis")
    n = 0
    for m in items:
        table.add_row(*row(m))
        n += 1
    if n == 0:
        err.print(empty)
    else:
        out.print(table)


def render_one(message: Message, output: str, rows: Sequence[tuple[str, str]]) -> None:
    if output == "json":
        print_json(to_dict(message))
        return
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)


def state_choice(enum: Any) -> click.Choice:
    names = [n for n in enum.keys() if not n.endswith("UNSPECIFIED")]
    return click.Choice(names, case_sensitive=False)
