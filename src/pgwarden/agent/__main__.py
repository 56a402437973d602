"""``python -m pgwarden.agent -c node.yml``: the same as ``pgwarden-agent``."""

from pgwarden.daemon.start import main

main(prog="python -m pgwarden.agent")
