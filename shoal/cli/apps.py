"""`shoal app ...`: application packages that nodes install for pools and tasks."""

from __future__ import annotations

from pathlib import Path

import click

from shoal.cli.common import (
    CliState,
    Flex,
    Group,
    Paging,
    confirm,
    enum_name,
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
from shoal.cli.storage import human_size, transfer_bar
from shoal.v1 import application_pb2

Version = application_pb2.ApplicationVersion


def _show_app(a: application_pb2.Application, output: str) -> None:
    render_one(
        a,
        output,
        [
            ("id", last(a.name)),
            ("name", a.name),
            ("display name", a.display_name or "-"),
            ("default version", a.default_version or "-"),
            ("created", when(a.create_time)),
        ],
    )


def _version_row(v: application_pb2.ApplicationVersion) -> list[str]:
    return [
        last(v.name),
        enum_name(Version.Format, v.format),
        human_size(v.size),
        v.sha256[:12] or "-",
        when(v.create_time),
    ]


@click.group("app", cls=Group)
def app() -> None:
    """Application packages: versioned zip or tar.gz archives installed on nodes.

    Tasks find an installed package through $SHOAL_APP_PACKAGE_{APP}_{VERSION} (and, when the
    reference names no version, $SHOAL_APP_PACKAGE_{APP}).
    """


@app.command("create")
@click.argument("app_id")
@click.option("--display-name", default="", help="Free text shown to people.")
@output_option
@pass_state
def app_create(state: CliState, app_id: str, display_name: str, output: str) -> None:
    """Create an application with no versions yet."""
    _show_app(state.client().create_application(app_id, display_name=display_name), output)


@app.command("list")
@list_options
@output_option
@pass_state
def app_list(state: CliState, paging: Paging, output: str) -> None:
    """List applications, by id."""
    render_list(
        paging.take(state.client().list_applications()),
        output,
        ["ID", "DEFAULT", Flex("DISPLAY NAME"), "CREATED"],
        lambda a: [
            last(a.name),
            a.default_version or "-",
            a.display_name or "-",
            when(a.create_time),
        ],
        "no applications",
    )


@app.command("show")
@click.argument("app_id")
@output_option
@pass_state
def app_show(state: CliState, app_id: str, output: str) -> None:
    """Show an application and its versions."""
    client = state.client()
    a = client.get_application(app_id)
    versions = list(client.list_application_versions(app_id))
    if output == "json":
        print_json({**to_dict(a), "versions": [to_dict(v) for v in versions]})
        return
    _show_app(a, output)
    click.echo()
    render_list(
        versions,
        output,
        ["VERSION", "FORMAT", "SIZE", "SHA256", "UPLOADED"],
        _version_row,
        f"application {app_id} has no versions yet",
    )


@app.command("upload")
@click.argument("app_id")
@click.argument("version")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "archive_format",
    type=click.Choice(["zip", "tar.gz"], case_sensitive=False),
    help="Archive format (default: from FILE's name: .zip, .tar.gz or .tgz).",
)
@click.option("--set-default", is_flag=True, help="Also make it the default version.")
@output_option
@pass_state
def app_upload(
    state: CliState,
    app_id: str,
    version: str,
    file: Path,
    archive_format: str | None,
    set_default: bool,
    output: str,
) -> None:
    """Upload FILE (a zip or tar.gz archive) as VERSION of the application APP_ID."""
    if not file.is_file():
        fail(f"FILE: {file}: no such file", 2)
    lower = file.name.lower()
    if archive_format is None and not lower.endswith((".zip", ".tar.gz", ".tgz")):
        fail(f"--format: cannot tell the format of {file.name!r}; give --format zip|tar.gz", 2)
    client = state.client()
    size = file.stat().st_size
    with transfer_bar(size, output) as bar:
        v = client.upload_application_version(
            app_id,
            version,
            file,
            format=archive_format,
            on_progress=bar.file(f"{app_id} {version}", size),
        )
        bar.done()
    if set_default:
        client.set_default_version(app_id, version)
    if output == "json":
        print_json(to_dict(v))
        return
    note = " (now the default)" if set_default else ""
    err.print(f"uploaded {app_id} version {version} ({human_size(v.size)}){note}", markup=False)


@app.command("set-default")
@click.argument("app_id")
@click.argument("version")
@output_option
@pass_state
def app_set_default(state: CliState, app_id: str, version: str, output: str) -> None:
    """Make VERSION the version used by references that name none."""
    _show_app(state.client().set_default_version(app_id, version), output)


@app.command("delete")
@click.argument("app_id")
@click.argument("version", required=False)
@yes_option
@pass_state
def app_delete(state: CliState, app_id: str, version: str | None, yes: bool) -> None:
    """Delete an application with all its versions, or only VERSION. Nodes keep what they
    installed."""
    client = state.client()
    if version is None:
        confirm(f"application {app_id} and all its versions", yes)
        client.delete_application(app_id)
        err.print(f"deleted application {app_id}", markup=False)
    else:
        confirm(f"version {version} of application {app_id}", yes)
        client.delete_application_version(app_id, version)
        err.print(f"deleted {app_id} version {version}", markup=False)
