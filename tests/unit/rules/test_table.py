"""The decide table as a whole: every rule and every reason reached, unique row ids, each row in its file.

A row lives in ``test_<module>.py`` for the ``pgwarden.ha.rules`` module whose rule decides it, so
that a reader of one rules module finds all its rows in one place.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from pgwarden.ha.decide import RULES, decide
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from tests.unit import rules as table_package
from tests.unit.rules.table import deciding_module


def _files() -> dict[str, list[Any]]:
    """The ROWS of every ``test_<module>.py`` in this package, by rules module name."""
    found: dict[str, list[Any]] = {}
    for info in pkgutil.iter_modules(table_package.__path__):
        if info.name.startswith("test_") and info.name != "test_table":
            module = importlib.import_module(f"{table_package.__name__}.{info.name}")
            found[info.name.removeprefix("test_")] = module.ROWS
    return found


def _observations() -> list[Observation]:
    return [p.values[0] for rows in _files().values() for p in rows]


def test_table_reaches_every_reason() -> None:
    reached = {decide(obs).reason for obs in _observations()}
    assert {r for r in Reason if not r.from_the_loop} - reached == set()


def test_table_reaches_every_rule() -> None:
    first = {next(rule for rule in RULES if rule(obs) is not None) for obs in _observations()}
    assert [r.__name__ for r in RULES if r not in first] == []


def test_row_ids_are_unique() -> None:
    ids = [p.id for rows in _files().values() for p in rows]
    assert len(ids) == len(set(ids)) >= 245


def test_each_row_lives_in_the_file_of_the_rules_module_that_decides_it() -> None:
    misplaced = [
        f"{p.id}: in test_{name}.py, decided by rules/{deciding_module(p.values[0])}.py"
        for name, rows in _files().items()
        for p in rows
        if deciding_module(p.values[0]) != name
    ]
    assert misplaced == []
