"""How a cluster command finds the cluster and ends: shared options, the client session, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console, RenderableType

from pgwarden.client import ClientError, ClientTls, ClusterClient, ClusterNotFound, ClusterTarget, find_target

# Exit codes (docs/cli.md): 0 done, 1 refused or failed, 2 usage (typer's own for bad options).
REFUSED = 1
USAGE = 2
# Where the root command keeps --cacert/--cert/--key/--insecure for the command that follows.
CLIENT_TLS = "pgwarden.client_tls"
# Where it keeps patronictl's global -c/--config-file (``pgwarden -c node.yml list``).
GLOBAL_CONFIG = "pgwarden.config_file"

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c", "--config", help="a node config file (YAML) naming the cluster's etcd", show_default=False
    ),
]
DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="the local stack's directory, used without -c (default: .pgwarden/local)",
        show_default=False,
    ),
]
# --force has no short form: -f is --format, as in patronictl (a Patroni user's muscle memory).
ForceOption = Annotated[bool, typer.Option("--force", help="do not ask for confirmation")]
# patronictl's optional CLUSTER argument: checked against the cluster -c/--dir finds.
ClusterArgument = Annotated[
    str | None,
    typer.Argument(metavar="[CLUSTER]", help="the cluster's name (checked against -c)", show_default=False),
]


class OutputFormat(StrEnum):
    """patronictl's -f values; ``table`` is pgwarden's older name for ``pretty``."""

    PRETTY = "pretty"
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"
    YML = "yml"
    TSV = "tsv"


FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="pretty (a table) for people; json, yaml or tsv for scripts"),
]


def fail(message: str, code: int = REFUSED) -> NoReturn:
    typer.echo(f"pgwarden: {message}", err=True)
    raise typer.Exit(code)


def target_or_exit(config: Path | None, stack_dir: Path | None) -> ClusterTarget:
    try:
        return find_target(config, stack_dir)
    except ClusterNotFound as exc:
        fail(str(exc), USAGE)


def config_of(ctx: typer.Context, config: Path | None) -> Path | None:
    """The command's own ``-c``, else the one given before the command (patronictl's place)."""
    if config is not None:
        return config
    root = ctx.find_root().meta.get(GLOBAL_CONFIG)
    return root if isinstance(root, Path) else None


def check_cluster(target: ClusterTarget, names: list[str] | str | None) -> None:
    """patronictl's CLUSTER argument: it must name the cluster found (exit 1 otherwise)."""
    given = [names] if isinstance(names, str) else list(names or [])
    for name in given:
        if name != target.cluster:
            fail(
                f"cluster {name!r} is not the one {target.source or 'the local stack'} names "
                f"({target.cluster!r}); give that name, or -c the other cluster's node config"
            )


@contextmanager
def cluster_client(
    ctx: typer.Context,
    config: Path | None,
    stack_dir: Path | None,
    cluster: list[str] | str | None = None,
) -> Iterator[ClusterClient]:
    """A client for the cluster named by ``-c``/``--dir``; a ClientError ends the command with exit 1.

    ``cluster``: the CLUSTER argument(s) the command was given, checked against the cluster found.
    ``ctx.obj`` is the seam for tests: ``CliRunner().invoke(app, args, obj=factory)`` hands each
    command a client over an in-memory store and HTTP transport instead of the real ones.
    """
    target = target_or_exit(config_of(ctx, config), stack_dir)
    check_cluster(target, cluster)
    tls = ctx.meta.get(CLIENT_TLS)
    if isinstance(tls, ClientTls):
        target = tls.applied_to(target)
    factory = ctx.obj if callable(ctx.obj) else ClusterClient
    try:
        with factory(target) as client:
            if not isinstance(client, ClusterClient):
                raise TypeError(f"ctx.obj made a {type(client).__name__}, not a ClusterClient")
            yield client
    except ClientError as exc:
        fail(str(exc))


def confirm(question: str) -> None:
    """Ask; anything but yes ends the command (exit 1) with nothing done."""
    if not typer.confirm(question, default=False):
        fail("nothing done")


def print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2))


def is_pretty(format: OutputFormat) -> bool:
    return format in (OutputFormat.PRETTY, OutputFormat.TABLE)


def print_document(format: OutputFormat, document: Any) -> None:
    """``-f json`` or ``-f yaml``/``yml``: the same document either way."""
    if format in (OutputFormat.YAML, OutputFormat.YML):
        typer.echo(yaml.safe_dump(document, sort_keys=False, default_flow_style=False), nl=False)
    else:
        print_json(document)


def print_result(format: OutputFormat, document: Any, table: RenderableType) -> None:
    """A command's one result: its table in the pretty formats, its document in json and yaml (and in
    tsv, as json: a report has no rows to tab). One home for doctor, drill and events."""
    if is_pretty(format):
        show(table)
    else:
        print_document(format, document)


def print_tsv(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """``-f tsv``: a header line, then one line per row; None and missing cells are empty."""
    typer.echo("\t".join(columns))
    for row in rows:
        cells = ("" if row.get(c) is None else str(row[c]) for c in columns)
        typer.echo("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in cells))


def show(renderable: RenderableType) -> None:
    # A console per call binds to the current stdout (CliRunner swaps it); wide enough not to
    # fold member rows when stdout is not a terminal.
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(renderable)


def warn(message: str) -> None:
    typer.echo(f"pgwarden: {message}", err=True)
