"""Checks on each node as its agent reports it: clock, API protection, failsafe, watchdog, fence."""

from __future__ import annotations

from pgwarden.api.contract import DEFAULT_OPERATION_TIMEOUT
from pgwarden.doctor.facts import Facts, NodeFacts
from pgwarden.doctor.findings import Finding, Severity, ok
from pgwarden.doctor.text import names, seconds

CLOCK_WARNING = 1.0
# A switchover's deadline is written on one member's clock and judged on the others': half the
# default operation timeout apart, a fresh request already looks half expired elsewhere.
CLOCK_CRITICAL = DEFAULT_OPERATION_TIMEOUT / 2


def clocks(facts: Facts) -> list[Finding]:
    check = "clocks"
    known = [n for n in facts.nodes.values() if n.clock_uncertainty != float("inf")]
    if len(known) < 2:
        return [Finding(check, Severity.INFO, "not checked: fewer than two agents told their time")]
    known.sort(key=lambda n: n.clock_offset)
    early, late = known[0], known[-1]
    # The smallest difference the measurements allow: each offset is known within its uncertainty.
    apart = max(
        0.0, late.clock_offset - early.clock_offset - late.clock_uncertainty - early.clock_uncertainty
    )
    evidence = tuple(
        f"{n.name}: {n.clock_offset:+.3f} s from this host's clock "
        f"(within {n.clock_uncertainty * 1000:.0f} ms)"
        for n in known
    )
    if apart < CLOCK_WARNING:
        return [ok(check, f"the members' clocks agree within {seconds(max(apart, 0.0))}", *evidence)]
    severity = Severity.CRITICAL if apart >= CLOCK_CRITICAL else Severity.WARNING
    return [
        Finding(
            check,
            severity,
            f"{late.name}'s clock is at least {seconds(apart)} ahead of {early.name}'s: switchover "
            "deadlines, scheduled restarts and switchovers, and the history's times are read on "
            "each member's own clock",
            evidence,
            "run NTP (chrony or systemd-timesyncd) on every member and check it is synchronised "
            "(chronyc tracking, timedatectl)",
            (early.name, late.name),
        )
    ]


def api_protection(facts: Facts) -> list[Finding]:
    check = "api_protection"
    nodes = sorted(facts.nodes.values(), key=lambda n: n.name)
    findings: list[Finding] = []
    open_writes = [n for n in nodes if n.api_auth is False]
    if open_writes:
        exposed = [n.name for n in open_writes if not n.api_loopback]
        findings.append(
            Finding(
                check,
                Severity.CRITICAL if exposed else Severity.WARNING,
                "the REST API of " + names([n.name for n in open_writes]) + " takes operations without "
                "credentials: whoever reaches it can switch over, restart or reconfigure the cluster",
                tuple(f"{n.name}: listens on {n.api_listen}, no api.auth" for n in open_writes),
                "set api.auth (username, password) in every node config; pgwarden up does",
                tuple(n.name for n in open_writes),
            )
        )
    clear = [n for n in nodes if n.api_tls is False]
    if clear:
        exposed = [n.name for n in clear if not n.api_loopback]
        findings.append(
            Finding(
                check,
                Severity.WARNING if exposed else Severity.INFO,
                "the REST API of " + names([n.name for n in clear]) + " speaks plain HTTP: credentials "
                "and status cross the network readable"
                + ("" if exposed else " (loopback only: this machine alone can listen)"),
                tuple(f"{n.name}: listens on {n.api_listen}, no api.tls" for n in clear),
                "set api.tls.certfile and keyfile (and cafile with verify_client for client "
                "certificates): docs/production.md#rest-api-tls-and-client-certificates",
                tuple(n.name for n in clear),
            )
        )
    if findings or not nodes:
        return findings
    return [ok(check, "every REST API asks for credentials and speaks TLS")]


def failsafe(facts: Facts) -> list[Finding]:
    check = "failsafe"
    active = sorted(n.name for n in facts.nodes.values() if n.failsafe_active)
    if active:
        return [
            Finding(
                check,
                Severity.CRITICAL,
                "failsafe mode is active: the primary writes on its members' promises because etcd is "
                "out of reach; losing one more member stops it",
                tuple(f"{name}: failsafe_mode_is_active" for name in active),
                "bring etcd back (a quorum of its members, and the network to them)",
                tuple(active),
            )
        ]
    view = facts.view
    if view is not None and not view.config.failsafe_mode:
        return [
            Finding(
                check,
                Severity.INFO,
                "failsafe_mode is off: an etcd outage longer than the lease stops the primary",
                ("failsafe_mode: false in the dynamic config",),
                "pgwarden edit-config --set failsafe_mode=true keeps a primary writing through an etcd "
                "outage while every member promises not to promote (docs/configuration.md#failsafe-mode)",
            )
        ]
    return [ok(check, "failsafe mode is on and inactive (etcd answers)")]


def watchdog(facts: Facts) -> list[Finding]:
    check = "watchdog"
    nodes = sorted(facts.nodes.values(), key=lambda n: n.name)
    if not nodes:
        return []
    leader = facts.leader_node
    if leader is not None and leader.watchdog_mode in ("automatic", "required") and not leader.watchdog_armed:
        required = leader.watchdog_mode == "required"
        return [
            Finding(
                check,
                Severity.CRITICAL if required else Severity.WARNING,
                f"{leader.name} leads without its watchdog (mode {leader.watchdog_mode}): a stuck "
                "agent and fence leave PostgreSQL writable",
                (f"{leader.name}: {leader.watchdog_problem or 'the device is not open'}",),
                "load the driver (modprobe softdog), let the agent's user open the device, and leave "
                "watchdog.safety_margin unset (it scales with ttl) or keep ttl - safety_margin - 0.5 s "
                "above loop_wait (docs/production.md#the-fence-and-the-watchdog)",
                (leader.name,),
            )
        ]
    if all(n.watchdog_mode in ("", "off") for n in nodes):
        return [
            Finding(
                check,
                Severity.INFO,
                "no watchdog: a machine that hangs whole and comes back runs its PostgreSQL again for the "
                "moment before its fence acts (the fence covers a dead or frozen agent); a watchdog "
                "resets such a machine instead",
                ("watchdog.mode off on " + names([n.name for n in nodes]),),
                "watchdog.mode: automatic with softdog (docs/production.md#the-fence-and-the-watchdog)",
            )
        ]
    return [ok(check, "the watchdog is configured" + (f" and armed on {leader.name}" if leader else ""))]


def fence(facts: Facts) -> list[Finding]:
    check = "fence"
    leader = facts.leader_node
    bad: list[tuple[NodeFacts, str]] = []
    for node in sorted(facts.nodes.values(), key=lambda n: n.name):
        if node.fence_state == "stopped":
            bad.append(
                (node, f"{node.name}: the fence (pid {node.fence_pid}) is stopped (SIGSTOP or a debugger)")
            )
        elif node.fence_state == "absent":
            bad.append((node, f"{node.name}: no fence process runs"))
    if not bad:
        return [ok(check, "a fence process runs beside every PostgreSQL")]
    on_leader = leader is not None and any(n is leader for n, _ in bad)
    return [
        Finding(
            check,
            Severity.CRITICAL if on_leader else Severity.WARNING,
            "the fence is not working on " + names([n.name for n, _ in bad]) + ": if that node's agent "
            "dies or freezes while it leads, PostgreSQL stays writable past the lease",
            tuple(line for _, line in bad),
            "a stopped fence: kill -CONT PID; an absent one: the agent starts one each cycle, so read "
            "the agent's log for why it cannot (docs/architecture.md#the-fence)",
            tuple(n.name for n, _ in bad),
        )
    ]
