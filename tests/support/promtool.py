"""Checks of deploy/prometheus/ and deploy/grafana/ with Debian's promtool (package prometheus).

``run_rule_tests`` runs ``promtool test rules`` on a test document against the alert rules with
their annotations removed (promtool compares annotations too, and a test about *when* an alert
fires should not restate its prose; ``promtool check rules`` checks the annotation templates).
``dashboard_queries`` lists every PromQL expression of the Grafana dashboard, with Grafana's
variables replaced so that promtool can parse them, and ``metric_names`` the metrics a query
reads, to compare with what a real ``/metrics`` exposes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "pgwarden-alerts.yml"
SCRAPE_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "pgwarden.json"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Grafana's variables, as a real selection would fill them in.
_GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$cluster": "main",
    "${datasource}": "x",
}
# Metric names in PromQL: pgwarden's own, and Prometheus' `up` of the scrape job.
_METRIC = re.compile(r"(?<![\w:$])(pgwarden_[a-z0-9_]+|up)(?![\w:])")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def rules_without_annotations(path: Path = RULES) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return doc


def run_rule_tests(tests: dict[str, Any], workdir: Path) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` of ``tests`` (a test document without rule_files) in ``workdir``."""
    rules = workdir / "rules.yml"
    rules.write_text(yaml.safe_dump(rules_without_annotations(), sort_keys=False))
    test_file = workdir / "tests.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [rules.name], **tests}, sort_keys=False))
    return promtool("test", "rules", test_file.name, cwd=workdir)


def rule_expressions(path: Path = RULES) -> dict[str, str]:
    doc = yaml.safe_load(path.read_text())
    return {rule["alert"]: rule["expr"] for group in doc["groups"] for rule in group["rules"]}


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def dashboard_queries(path: Path = DASHBOARD) -> list[str]:
    """Every ``expr`` of the dashboard (panels and annotations), variables filled in."""
    found = []
    for expr in _exprs(json.loads(path.read_text())):
        for name, value in _GRAFANA_VARIABLES.items():
            expr = expr.replace(name, value)
        found.append(expr)
    return found


def dashboard_variable_queries(path: Path = DASHBOARD) -> list[str]:
    """The template variables' ``label_values(...)`` queries (Grafana's syntax, not PromQL)."""
    variables = json.loads(path.read_text())["templating"]["list"]
    return [v["definition"] for v in variables if v.get("type") == "query"]


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression reads (label names and functions are not metrics)."""
    without_labels = re.sub(r"\{[^}]*\}", "{}", expr)  # label matchers may quote anything
    groupings = r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    without_groupings = re.sub(groupings, "", without_labels)
    return set(_METRIC.findall(without_groupings))


def check_queries(exprs: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check rules`` on recording rules made of ``exprs``: each must be valid PromQL."""
    recorded = [{"record": f"query:{i}", "expr": e} for i, e in enumerate(exprs)]
    rules = {"groups": [{"name": "queries", "rules": recorded}]}
    path = workdir / "queries.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return promtool("check", "rules", str(path))


def exposed_metrics(text: str) -> set[str]:
    """The metric names a ``/metrics`` answer declares (HELP/TYPE lines and samples): a family
    without samples yet (a leader-only metric on a standby) still counts as existing."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
