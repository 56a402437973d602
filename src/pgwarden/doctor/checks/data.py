"""Checks on the data: what a failover would lose now, WAL kept by slots, archiving, pg_rewind's needs."""

from __future__ import annotations

import dataclasses

from pgwarden.doctor.facts import Facts, NodeFacts
from pgwarden.doctor.findings import Finding, Severity, ok
from pgwarden.doctor.text import names, seconds, size
from pgwarden.ha.rules.switchover import Refused, choose_candidate
from pgwarden.model import ClusterView, Member, SyncMode

# Writes a healthy asynchronous standby lacks are a cycle or two old (each side publishes its
# position once per loop_wait); beyond this many cycles it is falling behind.
BEHIND_CYCLES = 3
MIN_BEHIND_S = 5.0
SLOT_WARNING = 0.5  # of max_slot_wal_keep_size
SLOT_CRITICAL = 0.9


def _standby_line(view: ClusterView, member: Member, leader: NodeFacts | None, in_sync: bool) -> str:
    lag = view.lag(member.name, member.lsn, member.timeline)
    parts = [f"{member.name}: {size(max(0, lag)) if lag is not None else 'position unknown'} behind"]
    behind = leader.behind.get(member.name) if leader is not None else None
    if behind is not None:
        more = "more than " if behind.at_least else ""
        parts.append(f"lacks writes {more}{seconds(behind.seconds)} old")
    sender = next((s for s in leader.postgres.senders if s.name == member.name), None) if leader else None
    if sender is not None:
        lag_text = f", replay lag {seconds(sender.replay_lag_s)}" if sender.replay_lag_s is not None else ""
        parts.append(f"{sender.state} ({sender.sync_state}){lag_text}")
    elif member.state.value != "running":
        parts.append(member.state.value)
    if in_sync:
        parts.append("in the synchronous set")
    if member.tags.nofailover:
        parts.append("nofailover")
    return ", ".join(parts)


def data_loss_window(facts: Facts) -> list[Finding]:
    """What a failover now would lose: per standby, and under the synchronous claim in force."""
    view = facts.view
    if view is None or view.leader is None:
        return []
    config = view.config
    leader = facts.leader_node
    claim = view.sync
    sync_on = config.synchronous_mode is not SyncMode.OFF
    holding = claim.members if sync_on and claim is not None and claim.quorum > 0 else frozenset()
    standbys = [m for m in view.members if m.name != view.leader.name]
    evidence = tuple(_standby_line(view, m, leader, m.name in holding) for m in standbys)
    check = "data_loss_window"
    if sync_on and holding and (claim is None or claim.degraded_since is None):
        return [
            ok(
                check,
                f"a failover now loses no acknowledged commit: it promotes one of {names(sorted(holding))}, "
                "which hold every one (synchronous " + config.synchronous_mode.value + ")",
                *evidence,
            )
        ]
    try:
        # Pause only changes who *acts*; the question here is what the best standby holds.
        candidate = choose_candidate(
            dataclasses.replace(view, config=dataclasses.replace(config, pause=False)), None
        )
    except Refused as exc:
        return [
            Finding(
                check,
                Severity.CRITICAL,
                f"if {view.leader.name} failed now, no standby would take over: {exc}",
                evidence,
                "bring a standby back within maximum_lag_on_failover "
                f"({size(config.maximum_lag_on_failover)}): see its reason in pgwarden list --watch",
            )
        ]
    member = view.member(candidate)
    assert member is not None
    lost = view.lag(member.name, member.lsn, member.timeline)
    behind = leader.behind.get(candidate) if leader is not None else None
    how_old = behind.seconds if behind is not None else None
    degraded = sync_on and claim is not None and claim.degraded_since is not None
    prefix = "synchronous mode degraded to asynchronous: " if degraded else ""
    title = (
        f"{prefix}a failover now promotes {candidate}, losing "
        + (f"{size(max(0, lost))}" if lost is not None else "an unknown amount")
        + (f" (writes up to {seconds(how_old)} old)" if how_old else "")
    )
    limit_s = max(MIN_BEHIND_S, BEHIND_CYCLES * config.loop_wait)
    far = (how_old is not None and how_old > limit_s) or (
        lost is not None and lost > config.maximum_lag_on_failover // 2
    )
    if degraded or far:
        fix = (
            "find why the standby falls behind (network, disk, replay conflicts: pg_stat_replication "
            "on the primary); with synchronous_mode, why no standby acknowledges"
        )
        return [Finding(check, Severity.WARNING, title, evidence, fix, (candidate,))]
    return [Finding(check, Severity.INFO if lost else Severity.OK, title, evidence)]


def slot_retention(facts: Facts) -> list[Finding]:
    """WAL kept by each slot on the primary against max_slot_wal_keep_size and the free disk."""
    leader = facts.leader_node
    check = "slot_retention"
    if leader is None or not leader.postgres.answered:
        return [Finding(check, Severity.INFO, "not checked: the leader's PostgreSQL did not answer")]
    pg = leader.postgres
    limit = pg.max_slot_wal_keep_bytes
    free = pg.wal_free_bytes
    findings: list[Finding] = []
    evidence = [
        f"slot {s.name}: keeps {size(s.retained_bytes)} ({s.wal_status or '?'}"
        + (", active" if s.active else ", inactive")
        + ")"
        for s in pg.slots
    ]
    evidence.append(
        f"max_slot_wal_keep_size {pg.max_slot_wal_keep_size or '?'}; {size(free)} free on {pg.wal_path}"
    )
    for slot in pg.slots:
        if slot.wal_status in ("lost", "unreserved"):
            when = "is gone" if slot.wal_status == "lost" else "goes at the next checkpoint"
            findings.append(
                Finding(
                    check,
                    Severity.CRITICAL,
                    f"slot {slot.name} passed max_slot_wal_keep_size: WAL its standby needs {when}",
                    tuple(evidence),
                    f"the standby of slot {slot.name} must be cloned again: pgwarden reinit MEMBER",
                    (slot.name,),
                )
            )
            continue
        if limit is None or limit <= 0 or slot.retained_bytes is None:
            continue
        share = slot.retained_bytes / limit
        if share >= SLOT_WARNING:
            severity = Severity.CRITICAL if share >= SLOT_CRITICAL else Severity.WARNING
            findings.append(
                Finding(
                    check,
                    severity,
                    f"slot {slot.name} keeps {size(slot.retained_bytes)}, {share:.0%} of "
                    f"max_slot_wal_keep_size ({pg.max_slot_wal_keep_size}): at the limit its standby "
                    "loses the WAL it needs and must be cloned again",
                    tuple(evidence),
                    "bring the standby back (its agent, its network), or drop the member if it is gone "
                    "for good; raise max_slot_wal_keep_size only if the disk has room",
                    (slot.name,),
                )
            )
    if limit is not None and limit < 0:
        findings.append(
            Finding(
                check,
                Severity.WARNING,
                "max_slot_wal_keep_size is -1 (no limit): a standby gone for long keeps WAL until "
                "pg_wal's disk is full, and the primary stops",
                tuple(evidence),
                "pgwarden edit-config --set max_slot_wal_keep_size=<a size that fits the disk>",
            )
        )
    elif limit is not None and free is not None and pg.slots:
        most = max((s.retained_bytes or 0) for s in pg.slots)
        if limit - most > free:
            findings.append(
                Finding(
                    check,
                    Severity.WARNING,
                    f"pg_wal's disk has {size(free)} free, less than the {size(limit - most)} a slot may "
                    "still keep: the disk fills before max_slot_wal_keep_size protects it",
                    tuple(evidence),
                    "lower max_slot_wal_keep_size below the free space (pgwarden edit-config), or "
                    "give pg_wal more room",
                )
            )
    return findings or [
        ok(check, "every slot keeps WAL well within max_slot_wal_keep_size and the disk", *evidence)
    ]


def archive_mode(facts: Facts) -> list[Finding]:
    leader = facts.leader_node
    check = "archive_mode"
    if leader is None or not leader.postgres.answered:
        return [Finding(check, Severity.INFO, "not checked: the leader's PostgreSQL did not answer")]
    pg = leader.postgres
    if pg.archive_mode in ("on", "always") and pg.archive_command_set:
        return [ok(check, f"WAL is archived (archive_mode {pg.archive_mode})")]
    if pg.archive_mode in ("on", "always"):
        return [
            Finding(
                check,
                Severity.WARNING,
                "archive_mode is on without archive_command or archive_library: WAL piles up in pg_wal",
                (f"archive_mode {pg.archive_mode} on {leader.name}",),
                "set archive_command (or archive_library) in the dynamic config's parameters",
            )
        ]
    return [
        Finding(
            check,
            Severity.WARNING,
            "archive_mode is off: no point-in-time recovery, and a standby that lost its slot's WAL "
            "can only be cloned again",
            (f"archive_mode {pg.archive_mode or '?'} on {leader.name}",),
            "archive WAL with a backup tool (pgBackRest, WAL-G, Barman): edit-config --set "
            "parameters.archive_mode=on and its archive_command, then pgwarden restart --pending",
        )
    ]


def rewind_prerequisites(facts: Facts) -> list[Finding]:
    """pg_rewind needs data checksums or wal_log_hints on the member it rewinds (any former primary)."""
    check = "rewind_prerequisites"
    view = facts.view
    if view is not None and not view.config.use_pg_rewind:
        return [
            Finding(
                check,
                Severity.WARNING,
                "use_pg_rewind is off: a former primary whose timeline forked is not rewound; it needs a "
                "new clone (remove_data_directory_on_diverged_timelines) or an operator",
                ("use_pg_rewind: false in the dynamic config",),
                "pgwarden edit-config --set postgresql.use_pg_rewind=true",
            )
        ]
    unable = [
        n.name
        for n in facts.nodes.values()
        if n.postgres.answered and n.postgres.data_checksums is False and n.postgres.wal_log_hints is False
    ]
    checked = [n for n in facts.nodes.values() if n.postgres.answered]
    evidence = tuple(
        f"{n.name}: data_checksums {_flag(n.postgres.data_checksums)}, "
        f"wal_log_hints {_flag(n.postgres.wal_log_hints)}"
        for n in sorted(checked, key=lambda n: n.name)
    )
    if unable:
        return [
            Finding(
                check,
                Severity.WARNING,
                f"pg_rewind cannot rewind {names(sorted(unable))} after it was primary: neither data "
                "checksums nor wal_log_hints (it would need a new clone)",
                evidence,
                "set wal_log_hints back to on (pgwarden edit-config --set parameters."
                "wal_log_hints=on) and restart (pgwarden restart --pending)",
                tuple(sorted(unable)),
            )
        ]
    return [ok(check, "every member can be rewound (data checksums or wal_log_hints)", *evidence)]


def _flag(value: bool | None) -> str:
    return "?" if value is None else "on" if value else "off"
