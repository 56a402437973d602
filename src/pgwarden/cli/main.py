"""The ``pgwarden`` command's typer app, one sub-command group per module; ``pgwarden.cli.main`` starts it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pgwarden.cli import dynamic_config, members, migrate, operations, query, router, status
from pgwarden.cli.agent import agent
from pgwarden.cli.completion import completion
from pgwarden.cli.connect import CLIENT_TLS, GLOBAL_CONFIG
from pgwarden.cli.doctor import doctor
from pgwarden.cli.drill import drill
from pgwarden.cli.events import events
from pgwarden.cli.remove import remove
from pgwarden.cli.stack import down, up
from pgwarden.client.target import ClientTls

app = typer.Typer(no_args_is_help=True, add_completion=False, help="PostgreSQL HA cluster manager")


@app.callback()
def _root(
    ctx: typer.Context,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config-file",
            "-c",
            help="a node config file (YAML) naming the cluster, as patronictl's -c (or -c after the command)",
            show_default=False,
        ),
    ] = None,
    cacert: Annotated[
        Path | None,
        typer.Option("--cacert", help="CA certificate (PEM) verifying the agents' HTTPS", show_default=False),
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option("--cert", help="client certificate (PEM) to present to the agents", show_default=False),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="the client certificate's private key (PEM)", show_default=False),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", "-k", help="do not verify the agents' certificates (debugging only)"),
    ] = False,
) -> None:
    """PostgreSQL high-availability cluster manager."""
    if config_file is not None:
        ctx.meta[GLOBAL_CONFIG] = config_file
    ctx.meta[CLIENT_TLS] = ClientTls(
        str(cacert) if cacert else None, str(cert) if cert else None, str(key) if key else None, insecure
    )


app.command()(members.version)
app.command()(agent)
app.command()(up)
app.command()(down)

app.command("list")(status.list_members)
app.command()(status.members)
app.command()(status.topology)
app.command()(status.history)
app.command()(events)
app.command()(doctor)
app.command()(operations.switchover)
app.command()(operations.failover)
app.command()(members.restart)
app.command()(members.reload)
app.command()(members.reinit)
app.command()(members.flush)
app.command()(operations.pause)
app.command()(operations.resume)
app.command()(query.query)
app.command()(query.dsn)
app.command()(remove)
app.command("show-config")(dynamic_config.show_config)
app.command("edit-config")(dynamic_config.edit_config)
app.command("haproxy-config")(router.haproxy_config)
app.command()(drill)
app.add_typer(migrate.app, name="migrate")
app.command()(completion)
