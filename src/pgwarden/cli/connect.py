"""How a cluster command finds the cluster and ends: shared options, the client session, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, RenderableType

from pgwarden.client import ClientError, ClientTls, ClusterClient, ClusterNotFound, ClusterTarget, find_target

# Exit codes (docs/cli.md): 0 done, 1 refused or failed, 2 usage (typer's own for bad options).
REFUSED = 1
USAGE = 2
# Where the root command keeps --cacert/--cert/--key/--insecure for the command that follows.
CLIENT_TLS = "pgwarden.client_tls"

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
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="do not ask for confirmation")]


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="table for people, json for scripts")]


def fail(message: str, code: int = REFUSED) -> NoReturn:
    typer.echo(f"pgwarden: {message}", err=True)
    raise typer.Exit(code)


def target_or_exit(config: Path | None, stack_dir: Path | None) -> ClusterTarget:
    try:
        return find_target(config, stack_dir)
    except ClusterNotFound as exc:
        fail(str(exc), USAGE)


@contextmanager
def cluster_client(
    ctx: typer.Context, config: Path | None, stack_dir: Path | None
) -> Iterator[ClusterClient]:
    """A client for the cluster named by ``-c``/``--dir``; a ClientError ends the command with exit 1.

    ``ctx.obj`` is the seam for tests: ``CliRunner().invoke(app, args, obj=factory)`` hands each
    command a client over an in-memory store and HTTP transport instead of the real ones.
    """
    target = target_or_exit(config, stack_dir)
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


def show(renderable: RenderableType) -> None:
    # A console per call binds to the current stdout (CliRunner swaps it); wide enough not to
    # fold member rows when stdout is not a terminal.
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(renderable)


def warn(message: str) -> None:
    typer.echo(f"pgwarden: {message}", err=True)
