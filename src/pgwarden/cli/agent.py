"""``pgwarden agent -c node.yml``: run the agent in the foreground (systemd runs exactly this)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType

import typer

from pgwarden.api.tls import tls_problems
from pgwarden.config.errors import ConfigError
from pgwarden.config.node import load_node_config
from pgwarden.dcs.etcd_tls import tls_problems as etcd_tls_problems
from pgwarden.local.siblings import data_dirs_beside


def agent(config: Path = typer.Option(..., "-c", "--config", help="node config file (YAML)")) -> None:
    """Run the pgwarden agent for one node in the foreground."""
    try:
        node = load_node_config(config, other_data_dirs=data_dirs_beside(config))
    except ConfigError as exc:
        typer.echo(f"pgwarden: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=node.log_level,
        stream=sys.stderr,
        format=f"%(asctime)s {node.name} %(levelname)s %(name)s: %(message)s",
    )
    from pgwarden.agent.loop import Agent  # imported late: config errors answer without heavy imports
    from pgwarden.postgres.permissions import DataDirRefused, check_at_start

    try:
        for fixed in check_at_start(node.postgresql):
            logging.getLogger("pgwarden").warning("%s", fixed)
    except DataDirRefused as exc:
        typer.echo(f"pgwarden: {exc}", err=True)
        raise typer.Exit(2) from None

    problems = tls_problems(node.api) + etcd_tls_problems(node.etcd)
    for problem in problems:
        typer.echo(f"pgwarden: {problem}", err=True)
    if problems:
        raise typer.Exit(2)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    runner = Agent(node, str(config.resolve()))

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("pgwarden").info("received signal %d", signum)
        runner.stop()

    def request_reload(_signum: int, _frame: FrameType | None) -> None:
        runner.reloads.request()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # Without a handler SIGHUP would end the agent (the default action): `systemctl reload` and
    # certificate rotation scripts send it to reload (agent/reloads.py says what).
    signal.signal(signal.SIGHUP, request_reload)
    runner.run()
