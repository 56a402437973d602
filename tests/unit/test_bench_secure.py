"""bench.secure's bookkeeping: every figure it records has a row in the report, and its p99."""

from __future__ import annotations

from bench import secure
from bench.report import BY_KEY, Results


def test_every_figure_of_the_secure_phase_has_a_report_row() -> None:
    missing = [k for k in secure.all_keys() if k not in BY_KEY]
    assert not missing, f"add these to bench/report.py METRICS: {missing}"


def test_every_stack_is_measured_alike() -> None:
    measured = {tuple(k.removesuffix(f"_{mode}") for k in secure.keys(mode)) for mode in secure.MODES}
    assert len(measured) == 1, measured


def test_p99_of_a_hundred_samples_is_the_99th_not_the_largest() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert secure._percentile(samples, 0.99) == 99.0
    assert secure._percentile([5.0], 0.99) == 5.0


def test_a_skipped_system_gets_every_row_marked_skipped() -> None:
    results = Results(["pgwarden", "Patroni fastest"])
    for key in secure.all_keys():
        results.skip(key, "Patroni fastest", "pgwarden's own stacks only")
    assert all(results.cell(k, "Patroni fastest") == "skipped" for k in secure.all_keys())
