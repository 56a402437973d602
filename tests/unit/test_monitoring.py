"""deploy/prometheus/ and deploy/grafana/ checked with promtool: the rules load, every alert fires
when it should and only then (synthetic series, and series recorded from a real cluster during a
node loss), and the dashboard's queries parse and read only metrics pgwarden exports.

The same checks against a live cluster's /metrics: tests/integration/test_monitoring.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pgwarden.api.metrics import METRICS
from tests.support.promtool import (
    DASHBOARD,
    RULES,
    SCRAPE_CONFIG,
    check_queries,
    dashboard_queries,
    dashboard_variable_queries,
    metric_names,
    promtool,
    rule_expressions,
    run_rule_tests,
)

TESTS = Path(__file__).resolve().parents[1] / "prometheus"


def _exported() -> set[str]:
    return set(METRICS) | {"up"}


def test_rules_load() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in checked.stdout


def test_scrape_config_example_is_valid() -> None:
    checked = promtool("check", "config", "--syntax-only", str(SCRAPE_CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    job = yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"][0]["job_name"]
    assert 'up{job="' + job + '"}' in rule_expressions()["PgwardenAgentDown"]


def test_every_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    tests = yaml.safe_load((TESTS / "alerts_test.yml").read_text())
    ran = run_rule_tests(tests, tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    tested = {case["alertname"] for group in tests["tests"] for case in group["alert_rule_test"]}
    assert tested == set(rule_expressions()), "every alert has a test"


@pytest.mark.parametrize("recording", sorted(p.name for p in TESTS.glob("recorded_*.yml")))
def test_no_leader_fires_and_resolves_on_series_recorded_during_a_node_loss(
    recording: str, tmp_path: Path
) -> None:
    """Written by tests/integration/test_monitoring.py from a real cluster's /metrics (kept here
    so that a change of the rules is checked against real series at every unit-test run)."""
    tests = yaml.safe_load((TESTS / recording).read_text())
    ran = run_rule_tests(tests, tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    cases = tests["tests"][0]["alert_rule_test"]
    no_leader = [c for c in cases if c["alertname"] == "PgwardenNoLeader"]
    assert any(c["exp_alerts"] for c in no_leader), "the recording shows the alert firing"
    assert not no_leader[-1]["exp_alerts"], "... and resolved at the end"


def test_rules_read_only_exported_metrics() -> None:
    used = set().union(*(metric_names(expr) for expr in rule_expressions().values()))
    assert {"pgwarden_leader", "pgwarden_info", "up"} <= used  # the extraction sees them
    assert used - _exported() == set()


def test_dashboard_queries_parse_and_read_only_exported_metrics(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    checked = check_queries(queries, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    used = set().union(*(metric_names(q) for q in queries + dashboard_variable_queries()))
    assert used - _exported() == set(), "the dashboard reads metrics pgwarden does not export"
    # Every per-member fact pgwarden exports has a panel (the info and decision families included).
    unused = set(METRICS) - used - {"pgwarden_pending_restart_parameter", "pgwarden_config_error"}
    assert unused <= {
        "pgwarden_postmaster_start_time_seconds",
        "pgwarden_scheduled_restart_timestamp_seconds",
        "pgwarden_failsafe_mode",
    }, unused


def test_metric_name_extraction() -> None:
    expr = (
        "max by (cluster) (pgwarden_leader * on (job, instance) group_left (cluster, up)"
        ' pgwarden_info{x="pgwarden_no"}) == 0 or up{job="pgwarden"}'
    )
    assert metric_names(expr) == {"pgwarden_leader", "pgwarden_info", "up"}


def test_dashboard_is_importable_json() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "pgwarden" and doc["templating"]["list"][0]["type"] == "datasource"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
