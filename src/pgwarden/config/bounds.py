"""The sane range of each timing and size key of the dynamic config, and why (docs/configuration.md).

A value outside its range is refused, never clamped: what runs is what was written. The ranges are
wide enough for any production cluster (a WAN, a slow etcd, a day-long maintenance) and narrow
enough that a typo (`loop_wait: 1e-6`, `ttl: 1e12`) cannot make the agents hammer etcd or leave
a dead primary in place for years.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgwarden.config.explain import Finding, Loc

_TIB = 1024**4


@dataclass(frozen=True, slots=True)
class Bound:
    key: str
    low: float
    high: float
    unit: str  # "s" or "bytes"
    why_low: str
    why_high: str

    def shown(self, value: float) -> str:
        """``600 s``, ``0.1 s``, ``30 days``, ``1 TiB``: as the errors and the docs write it."""
        if self.unit == "s":
            days = value / 86400
            return f"{days:g} days" if days >= 1 and days == int(days) else f"{value:g} s"
        for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value and value % size == 0:
                return f"{value / size:g} {unit}"
        return f"{value:,.0f} bytes"

    def range_text(self) -> str:
        return f"{self.shown(self.low)} to {self.shown(self.high)}"


BOUNDS: tuple[Bound, ...] = (
    Bound(
        "ttl",
        2,
        600,
        "s",
        "etcd refuses shorter leases",
        "a dead primary is replaced only ttl seconds after its last renewal: past 10 minutes "
        "the cluster is down longer than any failover should take",
    ),
    Bound(
        "loop_wait",
        0.1,
        300,
        "s",
        "more than 10 cycles a second only loads etcd and PostgreSQL (a leader key change "
        "wakes the agents at once anyway)",
        "a member publishes its state and a leader checks its PostgreSQL once per loop",
    ),
    Bound(
        "retry_timeout",
        0.5,
        300,
        "s",
        "each etcd request gets half of it per etcd member: a busy etcd's fsync would time "
        "out and the leader demote for nothing",
        "an etcd operation that hangs this long holds up the whole loop",
    ),
    Bound(
        "primary_start_timeout",
        1,
        3600,
        "s",
        "a crashed primary would always be replaced instead of restarted in place",
        "a primary that has not come back within an hour will not: fail over",
    ),
    Bound(
        "member_slots_ttl",
        60,
        30 * 86400,
        "s",
        "a member restarting its server would lose its replication slot and need a new clone",
        "WAL kept for a member gone a month fills the disk (max_slot_wal_keep_size caps it)",
    ),
    Bound(
        "synchronous_fallback_after",
        0,
        3600,
        "s",
        "a negative delay means nothing",
        "to keep commits waiting longer than an hour, use synchronous_fallback: block",
    ),
    Bound(
        "cold_start_timeout",
        0,
        3600,
        "s",
        "a negative wait means nothing (0 turns the wait off)",
        "after a full stop the cluster would stay without a primary for over an hour: start the "
        "last leader instead",
    ),
    Bound(
        "maximum_lag_on_failover",
        0,
        _TIB,
        "bytes",
        "a negative lag means nothing",
        "a standby 1 TiB behind would need hours of replay; this bound is effectively off",
    ),
)


def bound_findings(values: dict[str, float], prefix: Loc) -> list[Finding]:
    """A finding for each key of ``values`` outside its bound; keys without a bound are ignored."""
    findings = []
    for bound in BOUNDS:
        value = values.get(bound.key)
        if value is None or bound.low <= value <= bound.high:
            continue
        below = value < bound.low
        limit = bound.low if below else bound.high
        word = "below the lowest" if below else "above the highest"
        findings.append(
            Finding(
                (*prefix, bound.key),
                f"{bound.shown(value)} is {word} accepted value, {bound.shown(limit)}: "
                f"{bound.why_low if below else bound.why_high}",
                f"set {bound.key} within {bound.range_text()}",
            )
        )
    return findings
