"""Generated documentation must match the code it is generated from."""

from pathlib import Path

from pgwarden.ha.catalog import render

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_rules_doc_is_fresh() -> None:
    assert (DOCS / "rules.md").read_text() == render(), (
        "docs/rules.md is stale: run `.venv/bin/python -m pgwarden.ha.catalog > docs/rules.md`"
    )
