"""The decide table, one file per ``pgwarden.ha.rules`` module (shared scenarios in ``table.py``)."""
