"""What every `shoal` command shares: the client from the global options, one-line errors,
and table / JSON output."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import grpc
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shoal.client import Client, ClientConfig, default_state_dir, resolve_config
from shoal.errors import ShoalError
from shoal.listing import Listing
from shoal.suite import SuiteError

T = TypeVar("T")

# Tables go to stdout; progress, notes and errors to stderr, so stdout stays pipeable.
# Piped, a table takes the width it needs (rich would cut it to 80 columns and drop columns).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 100_000)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliState:
    """The global options, and the client made from them on first use."""

    def __init__(
        self,
        state_dir: Path | None = None,
        endpoint: str | None = None,
        key: str | None = None,
        profile: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.endpoint = endpoint
        self.key = key
        self.profile = profile
        self._client: Client | None = None

    @property
    def effective_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else default_state_dir()

    def config(self) -> ClientConfig:
        """Where the client goes and as whom (see shoal.client.resolve_config)."""
        return resolve_config(
            self.state_dir, endpoint=self.endpoint, key=self.key, profile=self.profile)

    def client(self) -> Client:
        if self._client is None:
            config = self.config()
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


# Groups: the same verbs everywhere


ALIASES = {"ls": "list", "rm": "delete"}


class Group(click.Group):
    """A command group where `ls` is `list` and `rm` is `delete`, as in every group."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in ALIASES:
            command = super().get_command(ctx, ALIASES[cmd_name])
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # The canonical name, so usage lines and errors say `list`, not `ls`.
        _, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            alias = next((a for a, n in ALIASES.items() if n == name), None)
            label = f"{name} ({alias})" if alias else name
            rows.append((label, command.get_short_help_str(formatter.width - 6 - len(label))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class ShoalGroup(Group):
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

_INT64 = {
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
}


def to_dict(message: Message) -> dict[str, Any]:
    """A message as JSON for people and scripts: the protos' field names, every field, enums
    by name, 64-bit integers as numbers (protobuf's JSON makes them strings), and — for a
    resource — its `id` first, the last part of its `name`."""
    d = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _numbers(message.DESCRIPTOR, d)
    name = d.get("name")
    if isinstance(name, str) and "name" in message.DESCRIPTOR.fields_by_name:
        d = {"id": last(name), **d}
    return d


def _numbers(descriptor: Any, d: dict[str, Any]) -> None:
    for f in descriptor.fields:
        if f.name not in d:
            continue
        value = d[f.name]
        if f.type in _INT64:
            d[f.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif f.message_type is not None and not f.message_type.full_name.startswith("google."):
            if f.message_type.GetOptions().map_entry:
                value_field = f.message_type.fields_by_name["value"]
                if value_field.type in _INT64:
                    d[f.name] = {k: int(v) for k, v in value.items()}
                elif value_field.message_type is not None:
                    for v in value.values():
                        _numbers(value_field.message_type, v)
            elif isinstance(value, list):
                for v in value:
                    _numbers(f.message_type, v)
            elif isinstance(value, dict):
                _numbers(f.message_type, value)


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


def terminal_width() -> int | None:
    """Columns of the terminal stdout is; None when stdout is piped (nothing is cut)."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def render_list(
    items: Iterable[Message],
    output: str,
    columns: Sequence[str | Flex],
    row: Callable[[Any], Sequence[str]],
    empty: str,
) -> None:
    """A table of `items` (or a JSON list). Columns given as `Flex` are the ones cut to fit
    the terminal; every other column — ids, states, numbers — is always shown whole."""
    if output == "json":
        print_json([to_dict(m) for m in items])
        return
    rows = [list(row(m)) for m in items]
    if not rows:
        err.print(empty, markup=False)
        return
    for line in table_lines(columns, rows, terminal_width()):
        click.echo(line)


def table_lines(
    columns: Sequence[str | Flex], rows: Sequence[Sequence[str]], width: int | None
) -> list[str]:
    """The lines of a table `width` columns wide (None: as wide as it needs). If it does
    not fit, the Flex columns give way, the last one first, down to their header's width;
    a cut cell ends in '…'. One line per row, so `| grep` and `| wc -l` work."""
    headers = [str(c) for c in columns]
    # One line per row: a cell's own line breaks and tabs would break the table.
    cells = [[" ".join(str(v).split()) if _SPACE.search(str(v)) else str(v) for v in r]
             for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    over = sum(widths) + GAP * (len(widths) - 1) - width if width else 0
    for i in reversed(range(len(columns))):
        if over <= 0:
            break
        if isinstance(columns[i], Flex):
            cut = min(over, widths[i] - max(len(headers[i]), MIN_FLEX))
            if cut > 0:
                widths[i] -= cut
                over -= cut
    bold = sys.stdout.isatty() and width is not None
    lines = [_line(headers, widths, bold)]
    lines += [_line(r, widths, False) for r in cells]
    return lines


_SPACE = re.compile(r"[\t\n\r]")
GAP = 2
MIN_FLEX = 8


class Flex(str):
    """A column name whose cells may be cut to fit the terminal (a command line, a reason,
    a display name); ids and numbers never are."""

    __slots__ = ()


def _line(cells: Sequence[str], widths: Sequence[int], bold: bool) -> str:
    out = []
    for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
        text = cell if len(cell) <= w else cell[: max(w - 1, 0)] + "…"
        out.append(text if i == len(cells) - 1 else text.ljust(w))
    line = (" " * GAP).join(out).rstrip()
    return click.style(line, bold=True) if bold else line


def render_one(message: Message, output: str, rows: Sequence[tuple[str, str]]) -> None:
    if output == "json":
        print_json(to_dict(message))
        return
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for k, v in rows:
        table.add_row(k, Text(v))
    out.print(table)


# Lists: a page at a time


def list_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--limit, --page-token and --all for a list command; it gets a `paging` argument."""
    for option in reversed([
        click.option("--limit", type=click.IntRange(1), default=DEFAULT_LIMIT, show_default=True,
                     help="At most this many; the command says how to get the next ones."),
        click.option("--page-token", default="", metavar="TOKEN",
                     help="Continue where a list that said `more: --page-token ...` stopped."),
        click.option("--all", "all_", is_flag=True, help="Every item, however many."),
    ]):
        command = option(command)

    @functools.wraps(command)
    def wrapper(*args: Any, limit: int, page_token: str, all_: bool, **kw: Any) -> Any:
        return command(*args, paging=Paging(limit, page_token, all_), **kw)

    return wrapper


DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class Paging:
    limit: int
    page_token: str
    every: bool

    def take(self, listing: Listing[T]) -> Sequence[T]:
        """The items to show; when more follow, says on stderr how to get them."""
        if self.page_token:
            listing = listing.at(self.page_token)
        if self.every:
            return list(listing)
        page = listing.page(self.limit)
        if page.next_page_token:
            # Scripts read stdout; this goes to stderr so JSON and tables stay clean.
            err.print(f"more: --page-token {page.next_page_token} (or --all)", markup=False)
        return page.items


# Deletes


yes_option = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")


def confirm(what: str, yes: bool) -> None:
    """Ask before deleting `what`, unless --yes. With no terminal to ask on, refuse (exit 2):
    a script must say --yes, so that a pipe never deletes by accident."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"not deleting {what} without confirmation: stdin is not a terminal; add --yes", 2)
    if not click.confirm(f"Delete {what}?", default=False, err=True):
        fail("nothing deleted")


def state_choice(enum: Any) -> click.Choice:
    names = [n for n in enum.keys() if not n.endswith("UNSPECIFIED")]
    return click.Choice(names, case_sensitive=False)
