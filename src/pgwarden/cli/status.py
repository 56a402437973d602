"""``pgwarden list`` (or ``list --watch``), ``topology`` and ``history``: the cluster as etcd holds it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from pgwarden.cli import patronictl_rows, rows, views
from pgwarden.cli.connect import (
    ClusterArgument,
    ConfigOption,
    DirOption,
    FormatOption,
    OutputFormat,
    cluster_client,
    is_pretty,
    print_document,
    print_tsv,
    show,
)
from pgwarden.client import ClientError, ClusterClient
from pgwarden.model import ClusterView

# patronictl's CLUSTER_NAMES: list and topology take any number, each must be the cluster found.
ClusterNames = Annotated[
    list[str] | None,
    typer.Argument(metavar="[CLUSTER]...", help="the cluster (checked against -c)", show_default=False),
]
ExtendedOption = Annotated[
    bool, typer.Option("--extended", "-e", help="tsv: add pending restart, scheduled restart and tags")
]
TimestampOption = Annotated[bool, typer.Option("--timestamp", "-t", help="print the time first")]
Rows = Callable[[ClusterView], tuple[list[dict[str, Any]], list[str]]]

DEFAULT_WATCH = 2.0
MIN_WATCH = 0.2

WatchOption = Annotated[
    float | None,
    typer.Option(
        "--watch",
        "-w",
        min=MIN_WATCH,
        metavar="[SECONDS]",
        help=f"refresh every SECONDS (alone: {DEFAULT_WATCH:g}) with each member's last decision",
        show_default=False,
    ),
]
# Patroni's patronictl list -W: watch every 2 s.
WatchDefaultOption = Annotated[
    bool, typer.Option("-W", help=f"as --watch {DEFAULT_WATCH:g}", show_default=False)
]
CountOption = Annotated[
    int,
    typer.Option("--count", min=0, help="with --watch: stop after this many refreshes (0: until Ctrl-C)"),
]


def list_members(
    ctx: typer.Context,
    cluster: ClusterNames = None,
    format: FormatOption = OutputFormat.PRETTY,
    extended: ExtendedOption = False,
    timestamp: TimestampOption = False,
    watch: WatchOption = None,
    watch_default: WatchDefaultOption = False,
    count: CountOption = 0,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Members with role, state, timeline, lag behind the leader, tags and pending restart
    (-f json|yaml|tsv: patronictl's rows; pgwarden's member document: ``pgwarden members``).

    With --watch, the table refreshes every SECONDS with a column for each member's last
    decision (clone and rewind progress included) until Ctrl-C.
    """
    if watch is not None or watch_default:
        with cluster_client(ctx, config, dir, cluster) as client:
            watch_members(client, watch or DEFAULT_WATCH, count)
        return
    if timestamp:
        typer.echo(datetime.now().strftime("%Y-%m-%d %H:%M:%S"))

    def objects(view: ClusterView) -> list[dict[str, Any]]:
        return patronictl_rows.as_objects(*patronictl_rows.patronictl_rows(view, extended))

    def tsv(view: ClusterView) -> tuple[list[dict[str, Any]], list[str]]:
        found, columns = patronictl_rows.patronictl_rows(view, extended)
        return patronictl_rows.as_tsv_rows(found), columns

    _read_and_show(ctx, cluster, format, config, dir, objects, views.members_table, tsv)


def members(
    ctx: typer.Context,
    cluster: ClusterNames = None,
    format: FormatOption = OutputFormat.PRETTY,
    extended: ExtendedOption = False,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """pgwarden's own member document: ``list`` with pgwarden's fields (-f json|yaml: the cluster
    with each member's last decision, lag, config errors; tsv: LSN and Lag in MB)."""
    member_rows: Rows = lambda view: (rows.member_rows(view), rows.member_columns(extended))  # noqa: E731
    _read_and_show(
        ctx, cluster, format, config, dir, views.cluster_document, views.members_table, member_rows
    )


def topology(
    ctx: typer.Context,
    cluster: ClusterNames = None,
    format: FormatOption = OutputFormat.PRETTY,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """The replication tree: the leader, then its standbys (a replicatefrom=X standby under X)."""
    member_rows: Rows = lambda view: (rows.member_rows(view), rows.member_columns(False))  # noqa: E731
    _read_and_show(
        ctx, cluster, format, config, dir, views.topology_document, views.topology_tree, member_rows
    )


def history(
    ctx: typer.Context,
    cluster: ClusterArgument = None,
    format: FormatOption = OutputFormat.PRETTY,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Timeline history: each promotion's timeline, switch LSN, reason, time and new leader."""
    history_rows: Rows = lambda view: (rows.history_rows(view), rows.HISTORY_COLUMNS)  # noqa: E731
    _read_and_show(
        ctx, cluster, format, config, dir, views.history_document, views.history_table, history_rows
    )


def _read_and_show(
    ctx: typer.Context,
    cluster: list[str] | str | None,
    format: OutputFormat,
    config: Path | None,
    dir: Path | None,
    document: Callable[[ClusterView], Any],
    table: Callable[[ClusterView], RenderableType],
    tsv: Rows,
) -> None:
    """The body of all three commands: read the view once (of the CLUSTER given, if any), print it
    as the table (pretty), the document (json, yaml) or rows (tsv)."""
    with cluster_client(ctx, config, dir, cluster) as client:
        view = client.view()
    if format == OutputFormat.TSV:
        print_tsv(*tsv(view))
    elif not is_pretty(format):
        print_document(format, document(view))
    else:
        show(table(view))


def _frame(client: ClusterClient, every: float) -> RenderableType:
    stamp = datetime.now().astimezone().strftime("%H:%M:%S %Z")
    title = Text(f"every {every:g}s · {stamp} · Ctrl-C to stop", style="dim")
    try:
        view = client.view()
    except ClientError as exc:  # etcd may come back: say so and keep watching
        return Group(title, Text(f"cannot read the cluster: {exc}", style="bold red"))
    return Group(title, views.members_table(view, with_reason=True))


def watch_members(client: ClusterClient, every: float, count: int = 0) -> None:
    """Redraw the members table every ``every`` seconds, ``count`` times (0: until Ctrl-C).

    On a terminal the table is redrawn in place (rich Live); otherwise each refresh is printed
    after the last, so the output can be logged.
    """
    console = Console()
    live_view = console.is_terminal
    if not live_view:
        console = Console(width=200)
    done = 0
    try:
        with Live(console=console, auto_refresh=False, transient=False) if live_view else _NoLive() as live:
            while True:
                started = time.monotonic()
                frame = _frame(client, every)
                if live is not None:
                    live.update(frame, refresh=True)
                else:
                    console.print(frame)
                done += 1
                if count and done >= count:
                    return
                time.sleep(max(0.0, every - (time.monotonic() - started)))
    except KeyboardInterrupt:
        console.print(Text("stopped", style="dim"))


class _NoLive:
    """``with`` stand-in for Live when stdout is no terminal: each frame is printed instead."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def optional_watch_value(argv: list[str]) -> list[str]:
    """``list --watch`` with no number after it means ``--watch 2`` (typer has no options whose
    value may be left out): the default is put in, before the arguments are parsed."""
    if "list" not in argv:
        return argv
    fixed = list(argv)
    for i, arg in enumerate(fixed):
        if arg in ("--watch", "-w") and not _number(fixed[i + 1] if i + 1 < len(fixed) else ""):
            fixed.insert(i + 1, f"{DEFAULT_WATCH:g}")
            break
    return fixed


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
