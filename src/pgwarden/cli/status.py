"""``pgwarden list``, ``topology`` and ``history``: the cluster as etcd holds it, read-only."""

from __future__ import annotations

import typer

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


def list_members(
    ctx: typer.Context,
    format: FormatOption = OutputFormat.TABLE,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Members with role, state, timeline, lag behind the leader, tags and pending restart."""
    with cluster_client(ctx, config, dir) as client:
        view = client.view()
    if format == OutputFormat.JSON:
        print_json(views.cluster_document(view))
    else:
        show(views.members_table(view))


def topology(
    ctx: typer.Context,
    format: FormatOption = OutputFormat.TABLE,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """The replication tree: the leader, then its standbys (a replicatefrom=X standby under X)."""
    with cluster_client(ctx, config, dir) as client:
        view = client.view()
    if format == OutputFormat.JSON:
        print_json(views.topology_document(view))
    else:
        show(views.topology_tree(view))


def history(
    ctx: typer.Context,
    format: FormatOption = OutputFormat.TABLE,
    config: ConfigOption = None,
    dir: DirOption = None,
) -> None:
    """Timeline history: each promotion's timeline, switch LSN, reason, time and new leader."""
    with cluster_client(ctx, config, dir) as client:
        view = client.view()
    if format == OutputFormat.JSON:
        print_json(views.history_document(view))
    else:
        show(views.history_table(view))
