"""Start one node's agent from the command line, importing only what the agent runs.

``pgwarden-agent -c node.yml``, ``python -m pgwarden.agent -c node.yml`` and ``pgwarden agent -c
node.yml`` all land here. The ``pgwarden`` command hands ``agent`` over before typer, rich or any
other CLI module is imported, so a node's agent carries none of the command line's weight (drill,
client, OpenAPI rendering, typer, rich) in its memory, and starts sooner: a crashed agent must be
back inside its lease (issue 16 measured 6-7 s of start-up on a loaded machine, mostly imports).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgwarden.model import NodeConfig

# Exit code when the agent refuses to start (bad config, a data directory that is not ours):
# systemd's Restart=on-failure retries it, and the reason is on stderr (the journal).
REFUSED = 2


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the pgwarden agent for one node in the foreground."
    )
    parser.add_argument(
        "-c", "--config", required=True, type=Path, metavar="FILE", help="node config file (YAML)"
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "pgwarden-agent") -> None:
    """Parse ``argv`` (default: the command line) and run the agent until SIGTERM or SIGINT."""
    args = _parser(prog).parse_args(sys.argv[1:] if argv is None else list(argv))
    sys.exit(run(args.config))


def prefer_system_libpq() -> None:
    """Have psycopg use the system's libpq when there is one (Debian's libpq5, which every
    PostgreSQL server has) rather than the libpq and OpenSSL that psycopg-binary carries: the
    agent's process then holds one OpenSSL (the one Python's ssl loads) instead of two, 5-6 MB
    less resident memory (docs/benchmarks.md). ``PSYCOPG_IMPL`` set by the user is left alone;
    without a system libpq psycopg-binary serves as before. Only the agent's own environment is
    set: once psycopg is loaded the variable is taken back, so hooks and children see it as
    they would have."""
    if "PSYCOPG_IMPL" in os.environ or "psycopg" in sys.modules:
        return
    import ctypes.util

    if ctypes.util.find_library("pq") is None:
        return
    os.environ["PSYCOPG_IMPL"] = "python"
    try:
        import psycopg  # noqa: F401  (reads PSYCOPG_IMPL once, on its first import)
    except ImportError:  # a libpq psycopg cannot use: psycopg-binary's then, imported afresh
        for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
            del sys.modules[name]
    finally:
        del os.environ["PSYCOPG_IMPL"]


def run(config: Path) -> int:
    """Run the agent of the node ``config`` describes; the exit code (0 after a requested stop)."""
    from pgwarden.config.errors import ConfigError
    from pgwarden.config.node import load_node_config
    from pgwarden.local.siblings import data_dirs_beside

    try:
        node = load_node_config(config, other_data_dirs=data_dirs_beside(config))
    except ConfigError as exc:
        print(f"pgwarden: {exc}", file=sys.stderr)
        return REFUSED
    from pgwarden.logs import apply as apply_logging

    apply_logging(node.log_level, node.log_format, node.cluster, node.name, sys.stderr)
    prefer_system_libpq()
    # Imported after the config is read: a config error answers without the agent's imports.
    from pgwarden.daemon.agent import Agent
    from pgwarden.dcs.etcd_tls import tls_problems as etcd_tls_problems
    from pgwarden.postgres.permissions import DataDirRefused, check_at_start
    from pgwarden.tls import tls_problems

    try:
        for fixed in check_at_start(node.postgresql):
            logging.getLogger("pgwarden").warning("%s", fixed)
    except DataDirRefused as exc:
        print(f"pgwarden: {exc}", file=sys.stderr)
        return REFUSED

    problems = tls_problems(node.api) + etcd_tls_problems(node.etcd)
    for problem in problems:
        print(f"pgwarden: {problem}", file=sys.stderr)
    if problems:
        return REFUSED

    def load() -> NodeConfig:  # again on SIGHUP (agent/node_reload.py)
        return load_node_config(config, other_data_dirs=data_dirs_beside(config))

    runner = Agent(node, str(config.resolve()), load_config=load)

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
    # The agent's process, and only it, collects the orphans below it: a SIGKILLed postmaster is
    # then its child and reaped at once (agent/adoption.py), before any pg_ctl runs.
    from pgwarden.agent.adoption import become_subreaper

    become_subreaper()
    runner.run()
    return 0
