"""The bench report's targets: against Patroni's median (a ratio) or an absolute limit (issue 16)."""

from __future__ import annotations

from bench.report import Results, Target
from bench.run import targets


def test_an_absolute_target_is_met_or_missed_by_the_median_alone() -> None:
    results = Results(["pgwarden", "Patroni fastest"])
    for value in (1.5, 1.8, 2.6):
        results.add("health_p99_8", "pgwarden", value)
    results.add("health_clone_p99_8", "pgwarden", 2.5)
    lines = results.verdicts(
        [
            Target("health_p99_8", "", 0, "p99", limit=2.0),
            Target("health_clone_p99_8", "", 0, "clone p99", limit=2.0),
            Target("health_failover_p99_8", "", 0, "failover p99", limit=2.0),
        ]
    )
    assert lines[0].startswith("- p99: **met**") and "1.80 ms" in lines[0]
    assert lines[1].startswith("- clone p99: **missed by 0.50 ms**")
    assert lines[2] == "- failover p99: **not measured** (a run failed or was skipped)"


def test_the_health_under_work_targets_are_reported_against_patroni() -> None:
    found = {(t.metric, t.against, t.limit) for t in targets(["pgwarden", "Patroni fastest"])}
    assert ("health_clone_rps_8", "Patroni fastest", None) in found
    assert ("health_failover_rps_8", "Patroni fastest", None) in found
    assert ("health_failover_p99_8", "", 2.0) in found
    assert ("idle_cpu", "", 0.6) in found
    assert ("crash_rto", "", 1.5) in found
    # a baseline build of pgwarden alone gets no targets
    assert targets(["pgwarden", "pgwarden baseline"]) == []
