"""``python -m pgwarden``: the same as the ``pgwarden`` command."""

from pgwarden.cli import main

main()
