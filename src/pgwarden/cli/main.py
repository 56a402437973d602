"""Entry point of the ``pgwarden`` command: one sub-command group per module."""

from __future__ import annotations

import typer

from pgwarden import __version__
from pgwarden.cli.agent import agent
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


def main() -> None:
    app()
