"""The ``pgwarden`` command line."""
