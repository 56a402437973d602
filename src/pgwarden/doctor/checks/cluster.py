"""Checks on the cluster as etcd holds it: a leader, standbys that may take over, maintenance, settings."""

from __future__ import annotations

from pgwarden.doctor.facts import Facts
from pgwarden.doctor.findings import Finding, Severity, ok
from pgwarden.doctor.text import names

NOT_READ = "not checked: the cluster could not be read from etcd"


def leader(facts: Facts) -> list[Finding]:
    view = facts.view
    if view is None:
        return [Finding("leader", Severity.INFO, NOT_READ)]
    if view.leader is None:
        return [
            Finding(
                "leader",
                Severity.CRITICAL,
                "no member holds the leader key: no primary takes writes",
                tuple(
                    f"{m.name}: {m.role.value}, {m.state.value}; {m.reason or 'no reason'}"
                    for m in view.members
                )
                or ("no member key in etcd",),
                "read each member's reason above (pgwarden events); a paused cluster needs "
                "pgwarden failover --candidate NAME",
            )
        ]
    return [
        ok(
            "leader",
            f"{view.leader.name} holds the leader key",
            f"timeline {view.status.timeline}"
            if view.status is not None
            else "no leader status published yet",
        )
    ]


def failover_candidates(facts: Facts) -> list[Finding]:
    """Can any standby become primary at all (tags), whatever its lag."""
    view = facts.view
    if view is None or view.leader is None:
        return []
    standbys = [m for m in view.members if m.name != view.leader.name]
    barred = [m.name for m in standbys if m.tags.nofailover]
    if standbys and len(barred) == len(standbys):
        return [
            Finding(
                "failover_candidates",
                Severity.CRITICAL,
                "no standby may ever become primary: every one is tagged nofailover",
                (f"leader {view.leader.name}; nofailover: {names(barred)}",),
                "set tags.nofailover: false in the node config of at least one standby (better: two) "
                "and restart its agent",
                tuple(barred),
            )
        ]
    if not standbys:
        return [
            Finding(
                "failover_candidates",
                Severity.CRITICAL,
                f"{view.leader.name} has no standby: losing it loses the cluster",
                ("one member in etcd",),
                "add standbys: a node config per server, pgwarden agent on each",
            )
        ]
    fit = [m.name for m in standbys if not m.tags.nofailover]
    evidence = (f"may take over: {names(fit)}", f"tagged nofailover: {names(barred)}")
    if len(fit) == 1:
        return [
            Finding(
                "failover_candidates",
                Severity.INFO,
                f"only {fit[0]} may take over: while it is down or lagging, nobody can",
                evidence,
            )
        ]
    return [ok("failover_candidates", f"{len(fit)} standbys may take over", *evidence)]


def paused(facts: Facts) -> list[Finding]:
    view = facts.view
    if view is None:
        return []
    if view.config.pause:
        return [
            Finding(
                "paused",
                Severity.WARNING,
                "the cluster is paused: no automatic failover, a dead primary stays dead",
                ("pause: true in the dynamic config",),
                "pgwarden resume, once the maintenance is done",
            )
        ]
    return [ok("paused", "automatic failover is on (not paused)")]


def pending_restart(facts: Facts) -> list[Finding]:
    view = facts.view
    if view is None:
        return []
    waiting = [m for m in view.members if m.pending_restart]
    if not waiting:
        return [ok("pending_restart", "no member waits for a restart to apply its settings")]
    evidence = tuple(
        f"{m.name}: "
        + (
            ", ".join(f"{p} {old} -> {new}" for p, (old, new) in sorted(m.pending_restart_reason.items()))
            or "settings changed that only a restart applies"
        )
        for m in waiting
    )
    return [
        Finding(
            "pending_restart",
            Severity.WARNING,
            f"{len(waiting)} member(s) run with settings other than their configuration says",
            evidence,
            "pgwarden restart --pending (standbys first, then a switchover-free restart of the primary)",
            tuple(m.name for m in waiting),
        )
    ]


def config_errors(facts: Facts) -> list[Finding]:
    view = facts.view
    if view is None:
        return []
    refusing = [m for m in view.members if m.config_errors]
    if not refusing:
        return [ok("config_errors", "PostgreSQL accepts every setting on every member")]
    evidence = tuple(f"{m.name}: {e.name} = {e.value}: {e.error}" for m in refusing for e in m.config_errors)
    return [
        Finding(
            "config_errors",
            Severity.WARNING,
            "PostgreSQL refuses settings on "
            + names([m.name for m in refusing])
            + ": they are left out, and a restart may fail on a file pgwarden does not write",
            evidence,
            "correct or remove each setting (pgwarden edit-config, or the file named), then "
            "pgwarden reload NODE",
            tuple(m.name for m in refusing),
        )
    ]


def agents_reachable(facts: Facts) -> list[Finding]:
    if not facts.unreachable:
        return [ok("agents_reachable", f"{len(facts.nodes)} agents answered GET /diagnostics")]
    leader = facts.view.leader.name if facts.view is not None and facts.view.leader else None
    severity = Severity.CRITICAL if leader in facts.unreachable else Severity.WARNING
    return [
        Finding(
            "agents_reachable",
            severity,
            "no diagnostics from " + names(sorted(facts.unreachable)) + ": their checks are incomplete",
            tuple(f"{name}: {why}" for name, why in sorted(facts.unreachable.items())),
            "check that the agent runs (systemctl status pgwarden) and that this host reaches its "
            "REST API; an agent older than doctor answers 503 on /diagnostics",
            tuple(sorted(facts.unreachable)),
        )
    ]
