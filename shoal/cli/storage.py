"""`shoal storage ...`: containers and objects, uploads and downloads of files and folders."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from shoal.cli.common import (
    CliState,
    Group,
    Paging,
    confirm,
    err,
    fail,
    last,
    list_options,
    output_option,
    pass_state,
    print_json,
    render_list,
    render_one,
    to_dict,
    when,
    yes_option,
)
from shoal.errors import ShoalError
from shoal.storage import Progress as OnProgress
from shoal.v1 import storage_pb2

PROGRESS_ABOVE = 8 * 1024 * 1024
"""Transfers smaller than this finish before a bar would be worth drawing."""

LOCATION = "CONTAINER[/PREFIX]"


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def split_location(text: str) -> tuple[str, str]:
    """`container/rest` -> (container, rest); the server judges both."""
    container, _, rest = text.partition("/")
    if not container:
        fail(f"{text!r} does not start with a container id ({LOCATION})", 2)
    return container, rest


def folder(prefix: str) -> str:
    """A prefix taken as a folder: 'in' and 'in/' both mean the keys under 'in/'."""
    return prefix.rstrip("/") + "/" if prefix.strip("/") else ""


def join_key(prefix: str, relative: str) -> str:
    return folder(prefix) + relative


@dataclass(frozen=True)
class Transfer:
    local: Path
    key: str
    size: int


def plan_upload(sources: Sequence[Path], prefix: str, recursive: bool) -> list[Transfer]:
    """What goes where. A folder's files keep their paths below it (`-r`); a file keeps its
    name below the prefix, except that one file sent to a prefix not ending in '/' is stored
    under exactly that key. Usage errors (exit 2) for missing files and clashing keys."""
    exact_key = len(sources) == 1 and not recursive and bool(prefix) and not prefix.endswith("/")
    plan: list[Transfer] = []
    for source in sources:
        if source.is_dir():
            if not recursive:
                fail(f"{source} is a directory; upload folders with -r", 2)
            for path in _files_below(source):
                relative = path.relative_to(source).as_posix()
                plan.append(Transfer(path, join_key(prefix, relative), path.stat().st_size))
        elif source.is_file():
            key = prefix if exact_key else join_key(prefix, source.name)
            plan.append(Transfer(source, key, source.stat().st_size))
        else:
            fail(f"{source}: no such file or directory", 2)
    seen: dict[str, Path] = {}
    for t in plan:
        if t.key in seen:
            fail(f"{seen[t.key]} and {t.local} would both be stored as {t.key!r}", 2)
        seen[t.key] = t.local
    return plan


def _files_below(root: Path) -> Iterator[Path]:
    # Symlinked files are read through; symlinked folders are not entered (no cycles).
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(directory, name)
            if path.is_file():
                yield path


def local_path_for(dest: Path, relative_key: str) -> Path:
    """Where an object lands below `dest`; refuses a key that would lead outside it."""
    parts = PurePosixPath(relative_key).parts
    if not parts or relative_key.startswith("/") or any(p in ("..", ".") for p in parts):
        fail(f"object key {relative_key!r} does not map to a path inside {dest}")
    return dest.joinpath(*parts)


class Bar:
    """One progress bar over the bytes of every file of a transfer, or nothing at all."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self._progress = progress
        self._id = progress.add_task("", total=total) if progress else None
        self._finished = 0

    def file(self, name: str, size: int) -> OnProgress | None:
        """The callback for the next file; call `done` when it is."""
        if self._progress is None or self._id is None:
            return None
        progress, bar, base = self._progress, self._id, self._finished
        progress.update(bar, description=name, completed=base)
        self._finished += size

        def on_progress(done: int, total: int | None) -> None:
            progress.update(bar, completed=base + done)

        return on_progress

    def done(self) -> None:
        if self._progress is not None and self._id is not None:
            self._progress.update(self._id, completed=self._finished)


@contextmanager
def transfer_bar(total: int, output: str) -> Iterator[Bar]:
    """A bar on stderr for large transfers on a terminal; never for JSON or piped output."""
    if total <= PROGRESS_ABOVE or output == "json" or not sys.stdout.isatty():
        yield Bar(None, total)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}", table_column=None),
        BarColumn(bar_width=30),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with progress:
        yield Bar(progress, total)


def _transfer_all(
    plan: Sequence[Transfer],
    output: str,
    verb: str,
    one: Callable[[Transfer, OnProgress | None], storage_pb2.Object],
) -> list[storage_pb2.Object]:
    """Each transfer in turn under one bar. A failure stops the rest; what was already done
    stays done, and the user is told how much that is."""
    done: list[storage_pb2.Object] = []

    def say_how_far() -> None:
        if done:
            err.print(f"{len(done)} of {len(plan)} files were {verb} before the error")

    with transfer_bar(sum(t.size for t in plan), output) as bar:
        for t in plan:
            try:
                done.append(one(t, bar.file(t.key, t.size)))
            except OSError as e:
                say_how_far()
                access = "read" if verb == "uploaded" else "write"
                fail(f"cannot {access} {t.local}: {e.strerror or e}")
            except ShoalError:
                say_how_far()
                raise
            bar.done()
    return done


def _object_row(o: storage_pb2.Object) -> list[str]:
    return [o.key, human_size(o.size), when(o.update_time)]


def _print_objects(objects: list[storage_pb2.Object], output: str, summary: str) -> None:
    if output == "json":
        print_json([to_dict(o) for o in objects])
    else:
        err.print(summary, markup=False)


@click.group("storage", cls=Group)
def storage() -> None:
    """Containers of objects: task inputs, outputs and logs."""


@storage.group("container", cls=Group)
def container() -> None:
    """Create, list and delete containers."""


@container.command("create")
@click.argument("container_id")
@output_option
@pass_state
def container_create(state: CliState, container_id: str, output: str) -> None:
    """Create an empty container (3-63 of a-z, 0-9 and single hyphens)."""
    c = state.client().create_container(container_id)
    render_one(
        c, output, [("id", last(c.name)), ("name", c.name), ("created", when(c.create_time))]
    )


@container.command("list")
@list_options
@output_option
@pass_state
def container_list(state: CliState, paging: Paging, output: str) -> None:
    """List containers, by id."""
    _list_containers(state, paging, output)


def _list_containers(state: CliState, paging: Paging, output: str) -> None:
    render_list(
        paging.take(state.client().list_containers()),
        output,
        ["ID", "CREATED"],
        lambda c: [last(c.name), when(c.create_time)],
        "no containers",
    )


@container.command("delete")
@click.argument("container_id")
@yes_option
@pass_state
def container_delete(state: CliState, container_id: str, yes: bool) -> None:
    """Delete a container and every object in it."""
    confirm(f"container {container_id} and every object in it", yes)
    state.client().delete_container(container_id)
    err.print(f"deleted container {container_id}", markup=False)


@storage.command("upload")
@click.argument("sources", nargs=-1, required=True, metavar="SRC...")
@click.argument("dest", metavar="DEST")
@click.option("-r", "--recursive", is_flag=True, help="Upload folders and everything in them.")
@output_option
@pass_state
def upload(
    state: CliState, sources: tuple[str, ...], dest: str, recursive: bool, output: str
) -> None:
    """Upload files (and with -r folders) to DEST, which is CONTAINER[/PREFIX].

    A file is stored as PREFIX/NAME; a folder's files as PREFIX/RELATIVE/PATH (with '/').
    One file sent to a PREFIX not ending in '/' is stored under exactly that key:
    `shoal storage upload a.csv data/in/today.csv`. Existing objects are replaced.
    """
    if not sources:
        fail("give at least one SRC before DEST", 2)
    container_id, prefix = split_location(dest)
    plan = plan_upload([Path(s) for s in sources], prefix, recursive)
    if not plan:
        fail(f"nothing to upload: {', '.join(sources)} holds no files")
    client = state.client()
    uploaded = _transfer_all(
        plan,
        output,
        "uploaded",
        lambda t, on_progress: client.upload_object(
            container_id, t.key, t.local, on_progress=on_progress
        ),
    )
    total = sum(t.size for t in plan)
    where = (
        f"{container_id}/{plan[0].key}" if len(plan) == 1 else f"{container_id}/{folder(prefix)}"
    )
    count = "1 file" if len(plan) == 1 else f"{len(plan)} files"
    _print_objects(uploaded, output, f"uploaded {count} ({human_size(total)}) to {where}")


@storage.command("download")
@click.argument("source", metavar="SRC")
@click.argument("dest_text", metavar="DEST")
@click.option(
    "-r", "--recursive", is_flag=True, help="SRC is CONTAINER[/PREFIX]: download all below it."
)
@output_option
@pass_state
def download(state: CliState, source: str, dest_text: str, recursive: bool, output: str) -> None:
    """Download CONTAINER/KEY to the file DEST (or into DEST when it is a folder or ends in
    '/'); with -r every object below CONTAINER[/PREFIX] into the folder DEST, keeping the
    keys' paths below PREFIX.

    Each file is written whole and checked against the object's SHA-256 before it replaces
    anything at its path.
    """
    container_id, rest = split_location(source)
    dest = Path(dest_text)  # a Path forgets a trailing '/', which says "into this folder"
    client = state.client()
    if recursive:
        prefix = folder(rest)
        objects = list(client.list_objects(container_id, prefix))
        if not objects:
            fail(f"no objects below {container_id}/{prefix}")
        plan = [
            Transfer(local_path_for(dest, o.key[len(prefix) :]), o.key, o.size) for o in objects
        ]
    else:
        if not rest:
            fail(f"{source!r} names no object: CONTAINER/KEY (or -r for a folder)", 2)
        size = client.get_object(container_id, rest).size
        target = dest
        if dest.is_dir() or dest_text.endswith(("/", os.sep)):
            target = dest / PurePosixPath(rest).name
        plan = [Transfer(target, rest, size)]
    downloaded = _transfer_all(
        plan,
        output,
        "downloaded",
        lambda t, on_progress: client.download_object(
            container_id, t.key, t.local, on_progress=on_progress
        ),
    )
    total = sum(t.size for t in plan)
    where = str(plan[0].local) if len(plan) == 1 and not recursive else f"{dest}{os.sep}"
    count = "1 file" if len(plan) == 1 else f"{len(plan)} files"
    _print_objects(downloaded, output, f"downloaded {count} ({human_size(total)}) to {where}")


@storage.command("list")
@click.argument("location", required=False, metavar=LOCATION)
@list_options
@output_option
@pass_state
def storage_list(state: CliState, location: str | None, paging: Paging, output: str) -> None:
    """List the objects of a container whose keys start with PREFIX (a plain string prefix,
    not only folders), by key; with no argument, list the containers."""
    if location is None:
        _list_containers(state, paging, output)
        return
    container_id, prefix = split_location(location)
    empty = f"no objects in {container_id}" + (f" starting with {prefix!r}" if prefix else "")
    render_list(
        paging.take(state.client().list_objects(container_id, prefix)),
        output,
        ["KEY", "SIZE", "UPDATED"],
        _object_row,
        empty,
    )


@storage.command("delete")
@click.argument("location", metavar="CONTAINER/KEY")
@click.option(
    "-r", "--recursive", is_flag=True, help="Delete every object below CONTAINER[/PREFIX]."
)
@yes_option
@pass_state
def storage_delete(state: CliState, location: str, recursive: bool, yes: bool) -> None:
    """Delete one object, or with -r every object below a folder-like prefix."""
    container_id, rest = split_location(location)
    client = state.client()
    if not recursive:
        if not rest:
            fail(f"{location!r} names no object: CONTAINER/KEY (or -r for a folder)", 2)
        confirm(f"object {container_id}/{rest}", yes)
        client.delete_object(container_id, rest)
        err.print(f"deleted {container_id}/{rest}", markup=False)
        return
    prefix = folder(rest)
    # Listed in full first: deleting while paging could skip objects.
    keys = [o.key for o in client.list_objects(container_id, prefix)]
    if not keys:
        err.print(f"no objects below {container_id}/{prefix}", markup=False)
        return
    confirm(f"{len(keys)} objects below {container_id}/{prefix}", yes)
    for key in keys:
        client.delete_object(container_id, key)
    err.print(f"deleted {len(keys)} objects below {container_id}/{prefix}", markup=False)
