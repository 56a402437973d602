"""Checks on etcd and the timing around it: reachable, enough members, not on the database hosts, fast enough.

The timing arithmetic is docs/timing.md's, fed with round trips *measured* by the agents (their
reads of the cluster, the leader's renewals) and by doctor itself on each endpoint.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pgwarden.agent.watchdog import RESERVE
from pgwarden.doctor.facts import Facts, RoundTrips
from pgwarden.doctor.findings import Finding, Severity, ok
from pgwarden.doctor.text import names, seconds
from pgwarden.ha.lease_timing import margin, renewal_interval

# etcd's --election-timeout default; an election takes one to two of it, plus a round of votes.
ELECTION_TIMEOUT = 1.0
LATENCY_WARNING = 0.25  # of a request's budget (retry_timeout / 2)


def etcd_reachable(facts: Facts) -> list[Finding]:
    check = "etcd_reachable"
    if facts.view is None:
        return [
            Finding(
                check,
                Severity.CRITICAL,
                "the cluster cannot be read from etcd: no failover can happen, and a primary without "
                "failsafe_mode stops when its lease runs out",
                (facts.view_error or "no answer",),
                "bring etcd back (a quorum of its members); check the endpoints and the network",
            )
        ]
    if facts.etcd.members is None:
        return [
            Finding(
                check,
                Severity.WARNING,
                "etcd answers reads but not its member list",
                (facts.etcd.error,),
                "check that the user may call the cluster API (etcdctl member list)",
            )
        ]
    return [ok(check, f"etcd answers ({len(facts.etcd.members)} members)")]


def etcd_members(facts: Facts) -> list[Finding]:
    check = "etcd_members"
    members = facts.etcd.members
    if members is None:
        return []
    listed = tuple(f"{m.name or '(unnamed)'}: {', '.join(m.client_urls) or 'no client URL'}" for m in members)
    if len(members) < 3:
        return [
            Finding(
                check,
                Severity.CRITICAL,
                f"etcd has {len(members)} member(s): losing one stops every write to etcd, so every "
                "primary stops at its lease deadline (failsafe_mode aside) and nothing can fail over",
                listed,
                "run three etcd members (five for two failures), each on its own machine, not on the "
                "database servers (docs/production.md#etcd)",
            )
        ]
    findings: list[Finding] = []
    if len(members) % 2 == 0:
        findings.append(
            Finding(
                check,
                Severity.INFO,
                f"etcd has {len(members)} members: an even count tolerates no more failures than "
                f"{len(members) - 1} would",
                listed,
            )
        )
    few = {n.name: n.etcd_endpoints for n in facts.nodes.values() if len(n.etcd_endpoints) == 1}
    if few:
        findings.append(
            Finding(
                check,
                Severity.WARNING,
                f"{names(sorted(few))} know(s) a single etcd endpoint: when that member goes, the agent "
                "loses etcd though a quorum lives",
                tuple(f"{name}: etcd.hosts {list(hosts)}" for name, hosts in sorted(few.items())),
                "list every etcd member in etcd.hosts of each node config",
                tuple(sorted(few)),
            )
        )
    return findings or [ok(check, f"etcd has {len(members)} members, every agent knows several", *listed)]


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def etcd_on_database_hosts(facts: Facts) -> list[Finding]:
    """An etcd member on a database server: losing that server costs a member and a vote at once."""
    check = "etcd_on_database_hosts"
    if facts.etcd.members is None or facts.view is None:
        return []
    databases: dict[str, set[str]] = {}
    for member in facts.view.members:
        for host in (member.host.lower(), _host(member.api_url)):
            if host:
                databases.setdefault(host, set()).add(member.name)
    shared = []
    for etcd_member in facts.etcd.members:
        for url in etcd_member.client_urls:
            host = _host(url)
            if host in databases:
                shared.append(
                    f"etcd {etcd_member.name} at {host}, the host of {names(sorted(databases[host]))}"
                )
                break
    if shared:
        return [
            Finding(
                check,
                Severity.WARNING,
                f"{len(shared)} etcd member(s) run on database hosts: losing one such host costs a "
                "database member and an etcd vote at once",
                tuple(shared),
                "run etcd on machines of its own (small ones do), or at least not with the members "
                "most likely to fail together",
            )
        ]
    return [ok(check, "no etcd member shares an address with a database member")]


def _measured(facts: Facts) -> tuple[float | None, float | None, list[str]]:
    """The largest single-request round trip (the leader's renewals: p99; doctor's reads of each
    endpoint: max), the largest p99 of a loop's whole read of the cluster (several requests, and
    an etcd token when one is due: not one request), in seconds, and the evidence lines."""
    single: list[float] = []
    reads: list[float] = []
    lines: list[str] = []
    for node in sorted(facts.nodes.values(), key=lambda n: n.name):
        if node.etcd_reads is not None:
            reads.append(node.etcd_reads.p99_ms / 1000)
            lines.append(f"{node.name} reads of the cluster: {_trips(node.etcd_reads)}")
        if node.etcd_renewals is not None:
            single.append(node.etcd_renewals.p99_ms / 1000)
            lines.append(f"{node.name} renewals: {_trips(node.etcd_renewals)}")
    for endpoint, measured in sorted(facts.etcd.round_trips.items()):
        if isinstance(measured, RoundTrips):
            single.append(measured.max_ms / 1000)
            lines.append(f"doctor to {endpoint}: {_trips(measured)}")
        else:
            single.append(float("inf"))
            lines.append(f"doctor to {endpoint}: {measured}")
    return max(single, default=None), max(reads, default=None), lines


def _trips(trips: RoundTrips) -> str:
    return f"p50 {trips.p50_ms:.1f} ms, p99 {trips.p99_ms:.1f} ms, max {trips.max_ms:.1f} ms ({trips.count})"


def etcd_latency(facts: Facts) -> list[Finding]:
    """Each etcd request gets retry_timeout / 2 per member: single round trips must be far below it.

    A loop's read of the cluster is several requests (and, with etcd auth, a token when one is
    due), so it is held to the budget only as a warning: a slow one delays that cycle's
    decisions; it does not stop the primary."""
    check = "etcd_latency"
    if facts.view is None:
        return []
    budget = facts.view.config.retry_timeout / 2
    single, reads, lines = _measured(facts)
    evidence = (f"each request may take retry_timeout / 2 = {seconds(budget)}", *lines)
    if single is None and reads is None:
        return [Finding(check, Severity.INFO, "no etcd round trip measured yet", evidence)]
    if single == float("inf"):
        return [
            Finding(
                check,
                Severity.WARNING,
                "an etcd endpoint did not answer doctor",
                evidence,
                "check that member (etcdctl endpoint health) and the network to it",
            )
        ]
    single = single or 0.0
    if single >= budget:
        return [
            Finding(
                check,
                Severity.CRITICAL,
                f"etcd round trips reach {seconds(single)}, a request's whole budget: renewals time out "
                "and the primary stops for nothing",
                evidence,
                "find what slows etcd (its disk's fsync, CPU, network); raise retry_timeout and ttl "
                "only after that (docs/timing.md#tuning)",
            )
        ]
    if single >= LATENCY_WARNING * budget:
        return [
            Finding(
                check,
                Severity.WARNING,
                f"etcd round trips reach {seconds(single)}, {single / budget:.0%} of a request's budget",
                evidence,
                "watch etcd's fsync and network latency (its metrics: etcd_disk_wal_fsync_duration_seconds)",
            )
        ]
    if reads is not None and reads >= budget:
        return [
            Finding(
                check,
                Severity.WARNING,
                f"an agent's read of the cluster took {seconds(reads)} (p99), more than a request's "
                f"budget; single round trips stay below {seconds(single)}",
                evidence,
                "a slow read delays that cycle's decisions: see what slows etcd or the agent's host "
                "(its load; with etcd auth, the token requests: etcd's --auth-token-ttl)",
            )
        ]
    return [
        ok(
            check,
            f"etcd round trips stay below {seconds(single)} ({single / budget:.0%} of the budget)",
            *evidence,
        )
    ]


def etcd_election(facts: Facts) -> list[Finding]:
    """Would an etcd leader election stop the primary? The lease renewed every `renewal_interval`
    must still be good when the new etcd leader serves (docs/timing.md: election tolerated)."""
    check = "etcd_election"
    view = facts.view
    if view is None:
        return []
    ttl = view.config.ttl
    leader = facts.leader_node
    rtt = leader.etcd_renewals.p50_ms / 1000 if leader is not None and leader.etcd_renewals else 0.05
    deadline = ttl - margin(ttl)
    every = renewal_interval(ttl)
    evidence = [
        f"ttl {ttl:g} s, margin {margin(ttl):g} s, renewals every {every:.2g} s, round trip {seconds(rtt)}"
    ]
    if leader is not None and leader.watchdog_armed and leader.watchdog_timeout:
        capped = leader.watchdog_timeout - RESERVE
        evidence.append(
            f"watchdog armed on {leader.name}: the deadline is capped at {capped:g} s after a renewal"
        )
        deadline = min(deadline, capped)
    tolerated = deadline - every - rtt
    evidence.append(
        f"an election may last {ELECTION_TIMEOUT:g}-{2 * ELECTION_TIMEOUT:g} s "
        "(etcd's default --election-timeout 1000 ms)"
    )
    title = f"an etcd leader election of up to {seconds(tolerated)} costs no stop"
    if tolerated < ELECTION_TIMEOUT:
        return [
            Finding(
                check,
                Severity.CRITICAL,
                f"{title}: every etcd election stops the primary",
                tuple(evidence),
                "raise ttl (each second of ttl is a second of election tolerated; docs/timing.md)",
            )
        ]
    if tolerated < 2 * ELECTION_TIMEOUT:
        return [
            Finding(
                check,
                Severity.WARNING,
                f"{title}: a slow etcd election stops the primary",
                tuple(evidence),
                "raise ttl by a second or two (docs/timing.md#tuning)",
            )
        ]
    return [ok(check, title, *evidence)]


def haproxy_checks(facts: Facts) -> list[Finding]:
    """How long HAProxy adds to a failover: marking the new primary up after it serves."""
    check = "haproxy_checks"
    checks = facts.haproxy
    if checks is None:
        return [Finding(check, Severity.INFO, f"HAProxy's check settings not checked: {facts.haproxy_note}")]
    if facts.view is None:
        return []
    ttl = facts.view.config.ttl
    evidence = (
        f"{checks.source}: inter {checks.inter:g} s, fastinter {_opt(checks.fastinter)}, downinter "
        f"{_opt(checks.downinter)}, rise {checks.rise}, fall {checks.fall}",
        f"a new primary is routed to at most {seconds(checks.marks_up_within)} after it serves; a demoted "
        f"one is taken out within {seconds(checks.marks_down_within)}",
        f"node loss: lease expiry ({ttl:g} s) + etcd's expiry check (0.5 s) + promotion + HAProxy "
        f"= about {seconds(ttl + 0.7 + checks.marks_up_within)}",
    )
    if checks.marks_up_within > ttl:
        return [
            Finding(
                check,
                Severity.WARNING,
                f"HAProxy needs up to {seconds(checks.marks_up_within)} to route to a new primary, more "
                f"than the lease (ttl {ttl:g} s): it more than doubles every failover's write outage",
                evidence,
                "check the agents every 500 ms or less, rise 1 (downinter 100ms): pgwarden haproxy-config",
            )
        ]
    return [ok(check, f"HAProxy routes to a new primary within {seconds(checks.marks_up_within)}", *evidence)]


def _opt(value: float | None) -> str:
    return "unset" if value is None else f"{value:g} s"
