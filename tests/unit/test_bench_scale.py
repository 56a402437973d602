"""bench.plan's scale phase: every figure bench/scale.py records lands in the report under its
layout's key, a failed layout is recorded as failed, and Patroni's columns are skipped."""

from __future__ import annotations

from typing import Any

import pytest

from bench import scale
from bench.plan import Options, Session
from bench.report import BY_KEY, Results


def _session(label: str) -> Session:
    def make() -> Any:
        raise AssertionError("the scale phase starts its own clusters")

    return Session(make, Results([label]), Options(scale_runs=1), label)


def test_every_figure_of_every_layout_has_a_metric() -> None:
    missing = [
        scale.key(f, n) for f, *_ in scale.FIGURES for n in scale.LAYOUTS if scale.key(f, n) not in BY_KEY
    ]
    assert not missing


def test_the_phase_records_each_layout_s_figures_under_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    def measure(layout: scale.Layout, runs: int, record: scale.Record, say: Any, idle_s: float) -> None:
        if layout.name == "9c":
            raise AssertionError("not healthy after 240 s")
        record("node loss", {"node_loss_rto": float(layout.members), "node_loss_lost": 0.0})

    monkeypatch.setattr(scale, "measure", measure)
    session = _session("pgwarden")
    session.phase_scale()
    samples = session.results.samples
    assert samples[(scale.key("node_loss_rto", "9"), "pgwarden")] == [9.0]
    assert samples[(scale.key("node_loss_lost", "3"), "pgwarden")] == [0.0]
    assert (scale.key("node_loss_rto", "9c"), "pgwarden") in session.results.failures


def test_patroni_columns_are_skipped_with_a_reason() -> None:
    session = _session("Patroni fastest")
    session.phase_scale()
    assert session.results.skipped[(scale.key("etcd_rps", "5"), "Patroni fastest")]
    assert not session.results.samples
