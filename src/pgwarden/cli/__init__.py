"""The ``pgwarden`` command line.

``main`` is the command's entry point. It hands ``pgwarden agent`` to the lean agent entry
(pgwarden.daemon.start) before typer, rich or the command modules are imported: the agent is a
long-running process whose memory and start-up time count, the other commands are not.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["agent"]:
        from pgwarden.daemon.start import main as agent_main

        agent_main(argv[1:], prog="pgwarden agent")
        return
    from pgwarden.cli.main import app
    from pgwarden.cli.status import optional_watch_value

    app(args=optional_watch_value(argv))
