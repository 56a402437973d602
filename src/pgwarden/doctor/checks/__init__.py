"""Every check ``pgwarden doctor`` runs, in report order: pure functions from Facts to findings.

Each check returns its findings, or one ``ok`` finding saying what it verified, or nothing when
it does not apply (no view, no leader). docs/operations.md lists the same names (a unit test
keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Callable

from pgwarden.doctor.checks import cluster, data, etcd, nodes
from pgwarden.doctor.facts import Facts
from pgwarden.doctor.findings import Finding, Report, Severity

Check = Callable[[Facts], list[Finding]]

CHECKS: dict[str, Check] = {
    "etcd_reachable": etcd.etcd_reachable,
    "leader": cluster.leader,
    "agents_reachable": cluster.agents_reachable,
    "data_loss_window": data.data_loss_window,
    "failover_candidates": cluster.failover_candidates,
    "slot_retention": data.slot_retention,
    "etcd_latency": etcd.etcd_latency,
    "etcd_election": etcd.etcd_election,
    "haproxy_checks": etcd.haproxy_checks,
    "rewind_prerequisites": data.rewind_prerequisites,
    "archive_mode": data.archive_mode,
    "etcd_members": etcd.etcd_members,
    "etcd_on_database_hosts": etcd.etcd_on_database_hosts,
    "clocks": nodes.clocks,
    "api_protection": nodes.api_protection,
    "pending_restart": cluster.pending_restart,
    "paused": cluster.paused,
    "config_errors": cluster.config_errors,
    "failsafe": nodes.failsafe,
    "watchdog": nodes.watchdog,
    "fence": nodes.fence,
}


def examine(facts: Facts) -> Report:
    """Run every check; a check that fails on odd facts reports that instead of ending the report."""
    findings: list[Finding] = []
    for name, check in CHECKS.items():
        try:
            findings.extend(check(facts))
        except Exception as exc:  # a bug in one check must not hide the others' findings
            findings.append(Finding(name, Severity.WARNING, f"the check failed: {type(exc).__name__}: {exc}"))
    return Report.of(facts.cluster, findings)
