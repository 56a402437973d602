"""Entry point of the ``pgwarden`` command: one sub-command group per module."""

from __future__ import annotations

import typer

from pgwarden import __version__
from pgwarden.cli import dynamic_config, migrate, operations, router, status
from pgwarden.cli.agent import agent
from pgwarden.cli.drill import drill
from pgwarden.cli.stack import down, up

app = typer.Typer(no_args_is_help=True, add_completion=False, help="PostgreSQL HA cluster manager")


@app.callback()
def _root() -> None:
    """PostgreSQL high-availability cluster manager."""


@app.command()
def version() -> None:
    """Print the pgwarden version."""
    typer.echo(f"pgwarden {__version__}")


app.command()(agent)
app.command()(up)
app.command()(down)

app.command("list")(status.list_members)
app.command()(status.topology)
app.command()(status.history)
app.command()(operations.switchover)
app.command()(operations.failover)
app.command()(operations.restart)
app.command()(operations.reload)
app.command()(operations.reinit)
app.command()(operations.pause)
app.command()(operations.resume)
app.command("show-config")(dynamic_config.show_config)
app.command("edit-config")(dynamic_config.edit_config)
app.command("haproxy-config")(router.haproxy_config)
app.command()(drill)
app.add_typer(migrate.app, name="migrate")


def main() -> None:
    app()
