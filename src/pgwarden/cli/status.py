"""``pgwarden list``, ``topology`` and ``history``: the cluster as etcd holds it, read-only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import RenderableType

from pgwarden.cli import views
from pgwarden.cli.connect import (
    ConfigOption,
    DirOption,
    FormatOption,
    OutputFormat,
    cluster_client,
    print_json,
    show,
)
from pgwarden.model import ClusterView


def list_members(
    ctx: typer.Context,
    format: FormatOption = OutputFormat.TABLE,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Members with role, state, timeline, lag behind the leader, tags and pending restart."""
    _read_and_show(ctx, format, config, dir, views.cluster_document, views.members_table)


def topology(
    ctx: typer.Context,
    format: FormatOption = OutputFormat.TABLE,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """The replication tree: the leader, then its standbys (a replicatefrom=X standby under X)."""
    _read_and_show(ctx, format, config, dir, views.topology_document, views.topology_tree)


def history(
    ctx: typer.Context,
    format: FormatOption = OutputFormat.TABLE,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Timeline history: each promotion's timeline, switch LSN, reason, time and new leader."""
    _read_and_show(ctx, format, config, dir, views.history_document, views.history_table)


def _read_and_show(
    ctx: typer.Context,
    format: OutputFormat,
    config: Path | None,
    dir: Path | None,
    document: Callable[[ClusterView], Any],
    table: Callable[[ClusterView], RenderableType],
) -> None:
    """The body of all three commands: read the view once, print it as JSON or as the table."""
    with cluster_client(ctx, config, dir) as client:
        view = client.view()
    if format == OutputFormat.JSON:
        print_json(document(view))
    else:
        show(table(view))
