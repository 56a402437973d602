"""``pgwarden agent -c node.yml`` as listed in ``pgwarden --help``.

The ``pgwarden`` command dispatches ``agent`` to pgwarden.daemon.start before this module (or
typer) is imported (cli/__init__.py); this command is what typer shows, and runs the same code.
"""

from __future__ import annotations

from pathlib import Path

import typer


def agent(config: Path = typer.Option(..., "-c", "--config", help="node config file (YAML)")) -> None:
    """Run the pgwarden agent for one node in the foreground (systemd runs exactly this)."""
    from pgwarden.daemon.start import run

    code = run(config)
    if code:
        raise typer.Exit(code)
