"""The side-by-side figures: samples per metric and cluster, the comparison table and the targets."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench import scale


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    higher_is_better: bool = False
    digits: int = 2


# The security cost (bench/secure.py): each figure on the plaintext stack, the stack with etcd
# TLS + client certificates + auth but a plain API, and the secure stack (`pgwarden up`'s).
STACKS = (
    ("plain", "plaintext"),
    ("etcdtls", "etcd TLS+auth, API plain"),
    ("tls", "etcd TLS+auth, API mTLS"),
)
_SECURITY_FIGURES = (
    ("renew_p50", "lease renewal p50, warm client", "ms", 2),
    ("renew_p99", "lease renewal p99, warm client", "ms", 2),
    ("renew_cold", "first renewal of a new client (connect, TLS handshake)", "ms", 2),
    ("read_cold", "first read of a new client (connect, TLS handshake, new token)", "ms", 2),
    ("cpu_etcd", "CPU of the 3 etcd members meanwhile", "% of a core", 1),
    ("cpu_agents", "CPU of the 3 agents meanwhile", "% of a core", 1),
    ("cpu_haproxy", "CPU of HAProxy (its checks) meanwhile", "% of a core", 1),
    ("secure_rto", "node loss RTO (fresh clusters, alternately)", "s", 2),
)
SECURITY_METRICS = tuple(
    Metric(f"{key}_{mode}", f"{title}: {what}", unit, digits=digits)
    for key, title, unit, digits in _SECURITY_FIGURES
    for mode, what in STACKS
)
# pgwarden at 3, 5, 9 and 9 cascading members (bench/scale.py): each figure for each layout.
SCALE_METRICS = tuple(
    Metric(scale.key(figure, name), f"{layout.text}: {title}", unit, digits=digits)
    for figure, title, unit, digits in scale.FIGURES
    for name, layout in scale.LAYOUTS.items()
)

# The health endpoint under work (bench/health_work.py): whose agent, during what.
HEALTH_WORK = (
    ("clone", "primary's agent while a standby clones from it"),
    ("cloning", "the cloning standby's agent (/health)"),
    ("failover", "a standby's agent across the primary's node loss"),
)

# Where a crash's time goes (bench/crash_timeline.py), each segment's start -> end.
CRASH_SPLIT = {
    "crash_noticed": "crash -> the agent decides to start PostgreSQL (pgwarden's /events)",
    "crash_started": "crash -> the new postmaster's start time",
    "crash_recovery": "postmaster start -> accepting connections (crash recovery)",
    "crash_agent_ok": "accepting -> the agent's /primary answers 200",
    "crash_router_up": "/primary 200 -> HAProxy marks the server UP",
    "crash_client": "HAProxy UP -> the writer's first acknowledged write",
    "crash_longest_attempt": "the writer's slowest failed attempt meanwhile",
}

METRICS = (
    Metric("node_loss_rto", "node loss RTO (agent + PostgreSQL SIGKILLed), async", "s"),
    Metric("node_loss_lost", "lost acknowledged writes per node loss, async", "writes", digits=0),
    Metric("crash_rto", "PostgreSQL crash RTO (postmaster SIGKILLed, agent alive)", "s"),
    *(Metric(k, f"crash split: {t}", "s") for k, t in CRASH_SPLIT.items()),
    Metric("agent_death_to_fence", "agent death to fence (agent SIGKILLed -> postmaster gone)", "s"),
    Metric("switchover_gap", "switchover: longest gap between acknowledged writes", "s"),
    Metric("switchover_lost", "lost acknowledged writes per switchover", "writes", digits=0),
    Metric("rejoin", "rejoin of the old primary after a node loss (agent restart -> streaming)", "s"),
    Metric(
        "election_stops",
        "spurious stops per 20 etcd elections (etcd leader SIGKILLed under writes)",
        "stops",
        digits=0,
    ),
    Metric("election_failovers", "failovers per 20 etcd elections", "failovers", digits=0),
    Metric("election_gap", "20 etcd elections: longest gap between acknowledged writes", "s"),
    Metric("election_time", "etcd election (leader SIGKILLed -> a new etcd leader), median", "s"),
    Metric("election_slow", "etcd elections longer than 2.5 s, of 20 (machine load)", "elections", digits=0),
    Metric("sync_lost", "synchronous mode: lost acknowledged writes per failover", "writes", digits=0),
    Metric("sync_rto", "synchronous mode: node loss RTO", "s"),
    Metric("tps_async", "pgbench TPS, asynchronous", "TPS", higher_is_better=True, digits=0),
    Metric("tps_sync", "pgbench TPS, synchronous FIRST 1", "TPS", higher_is_better=True, digits=0),
    Metric("tps_quorum", "pgbench TPS, quorum ANY 1 of 2", "TPS", higher_is_better=True, digits=0),
    Metric(
        "health_rps_1", "health check throughput, concurrency 1", "req/s", higher_is_better=True, digits=0
    ),
    Metric("health_p50_1", "health check p50, concurrency 1", "ms"),
    Metric("health_p99_1", "health check p99, concurrency 1", "ms"),
    Metric(
        "health_rps_8", "health check throughput, concurrency 8", "req/s", higher_is_better=True, digits=0
    ),
    Metric("health_p50_8", "health check p50, concurrency 8", "ms"),
    Metric("health_p99_8", "health check p99, concurrency 8", "ms"),
    *(
        Metric(
            f"health_{where}_{figure}_8", f"health check {figure}, concurrency 8, {what}", unit, up, digits
        )
        for where, what in HEALTH_WORK
        for figure, unit, up, digits in (
            ("rps", "req/s", True, 0),
            ("p50", "ms", False, 2),
            ("p99", "ms", False, 2),
        )
    ),
    Metric("health_clone_s", "standby re-cloned (reinitialize -> streaming) meanwhile", "s"),
    Metric("outage_gap_off", "etcd quorum lost 30 s, failsafe_mode off: longest write gap", "s"),
    Metric("outage_acked_off", "... writes acknowledged during the outage", "writes", True, 0),
    Metric("outage_gap_on", "etcd quorum lost 30 s, failsafe_mode on: longest write gap", "s"),
    Metric("outage_acked_on", "... writes acknowledged during the outage", "writes", True, 0),
    Metric(
        "outage_lost",
        "etcd quorum lost: lost acknowledged writes per outage (off and on)",
        "writes",
        digits=0,
    ),
    Metric("outage_same_primary", "etcd quorum lost: the same primary afterwards", "1 = yes", True, 0),
    Metric("pgb_switchover_gap", "switchover: longest write gap through PgBouncer", "s"),
    Metric("pgb_switchover_gap_haproxy", "... the same switchover through HAProxy", "s"),
    Metric("pgb_switchover_lost", "switchover: lost writes via PgBouncer", "writes", digits=0),
    Metric("pgb_node_loss_gap", "node loss: longest write gap through PgBouncer", "s"),
    Metric("pgb_node_loss_gap_haproxy", "... the same node loss through HAProxy", "s"),
    Metric("pgb_node_loss_lost", "node loss: lost writes via PgBouncer, async", "writes", digits=0),
    Metric("pgb_repoint", "fault -> PgBouncer names the new primary (pgbouncer-follow)", "s"),
    *SECURITY_METRICS,
    Metric("renew_p50_etcd_plain", "lease renewal p50 on etcd alone (no agents), plaintext", "ms"),
    Metric(
        "renew_p50_etcd_tls", "lease renewal p50 on etcd alone, TLS + client cert, auth on, no token", "ms"
    ),
    Metric("renew_p50_etcd_token", "lease renewal p50 on etcd alone, TLS + client cert + auth token", "ms"),
    Metric("idle_rss", "agent idle RSS (per agent)", "MB", digits=1),
    Metric("idle_cpu", "agent idle CPU (per agent, % of one core)", "%", digits=2),
    Metric("idle_rss_scraped", "agent RSS after its first GET /metrics (as scraped)", "MB", digits=1),
    Metric("fence_rss", "fence idle RSS (per node, beside the agent)", "MB", digits=1),
    Metric("fence_cpu", "fence idle CPU (per node, % of one core)", "%", digits=2),
    Metric("agent_start", "agent start-up: process start -> first cycle done, API answering", "s"),
    Metric("cycle_ms", "agent cycle at idle (observe + decide + act)", "ms", digits=1),
    *SCALE_METRICS,
)
BY_KEY = {m.key: m for m in METRICS}


@dataclass(frozen=True)
class Target:
    metric: str
    against: str  # the cluster label compared with
    ratio: float  # pgwarden / other must be <= ratio (or >= for higher-is-better metrics)
    text: str
    limit: float | None = None  # instead of a ratio: pgwarden's median must be <= (or >=) this


@dataclass
class Results:
    labels: list[str]  # the clusters, pgwarden first
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failures: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # observations worth a line in the report
    excerpts: list[str] = field(default_factory=list)  # log excerpts of failed runs

    def add(self, key: str, label: str, value: float) -> None:
        assert key in BY_KEY, key
        self.samples.setdefault((key, label), []).append(value)

    def fail(self, key: str, label: str, message: str) -> None:
        self.failures.setdefault((key, label), []).append(message)

    def skip(self, key: str, label: str, why: str) -> None:
        self.skipped[(key, label)] = why

    def median(self, key: str, label: str) -> float | None:
        values = self.samples.get((key, label))
        return statistics.median(values) if values else None

    def cell(self, key: str, label: str) -> str:
        metric = BY_KEY[key]
        values = self.samples.get((key, label), [])
        failed = self.failures.get((key, label), [])
        parts = []
        if values:
            med = _fmt(statistics.median(values), metric.digits)
            spread = f"{_fmt(min(values), metric.digits)}\u2013{_fmt(max(values), metric.digits)}"
            parts.append(f"**{med}** ({spread}, n={len(values)})")
        if failed:
            parts.append(f"FAILED {len(failed)}\u00d7")
        if not parts:
            return "skipped" if (key, label) in self.skipped else "—"
        return " ".join(parts)

    def ratio(self, key: str, label: str) -> float | None:
        ours, theirs = self.median(key, self.labels[0]), self.median(key, label)
        if ours is None or theirs is None or theirs == 0:
            return None
        return ours / theirs

    def ratio_cell(self, key: str, label: str) -> str:
        ours, theirs = self.median(key, self.labels[0]), self.median(key, label)
        if ours is None or theirs is None:
            return "—"
        if theirs == 0:
            return "= (both 0)" if ours == 0 else "—"
        return f"{ours / theirs:.2f}"

    def table(self) -> str:
        """The comparison as a Markdown table: one row per metric, one column per cluster, then
        the ratio pgwarden / each other cluster."""
        ours, others = self.labels[0], self.labels[1:]
        head = ["metric", *self.labels, *(f"{ours} / {o}" for o in others)]
        rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for m in METRICS:
            if not any(
                (m.key, label) in self.samples or (m.key, label) in self.failures for label in self.labels
            ):
                continue
            cells = [f"{m.title} ({m.unit})", *(self.cell(m.key, label) for label in self.labels)]
            cells += [self.ratio_cell(m.key, o) for o in others]
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def verdicts(self, targets: Sequence[Target]) -> list[str]:
        """One line per target: met or missed, and by how much."""
        lines = []
        for t in targets:
            m = BY_KEY[t.metric]
            ours, theirs = self.median(t.metric, self.labels[0]), self.median(t.metric, t.against)
            if t.limit is not None and ours is not None:
                lines.append(_absolute(t, m, ours))
                continue
            if ours is None or theirs is None:
                lines.append(f"- {t.text}: **not measured** (a run failed or was skipped)")
                continue
            ratio = ours / theirs if theirs else float("inf")
            bound = theirs * t.ratio
            met = ours >= bound if m.higher_is_better else ours <= bound
            figures = (
                f"pgwarden {_fmt(ours, m.digits)} {m.unit} vs {t.against} {_fmt(theirs, m.digits)} {m.unit}"
                f" (ratio {ratio:.2f}, target {'≥' if m.higher_is_better else '≤'} {t.ratio:.2f},"
                f" i.e. {'≥' if m.higher_is_better else '≤'} {_fmt(bound, m.digits)} {m.unit})"
            )
            if met:
                lines.append(f"- {t.text}: **met** — {figures}")
            else:
                gap = abs(ours - bound)
                lines.append(f"- {t.text}: **missed by {_fmt(gap, m.digits)} {m.unit}** — {figures}")
        return lines

    def to_json(self) -> dict[str, object]:
        return {
            "labels": self.labels,
            "samples": [{"metric": k, "cluster": c, "values": v} for (k, c), v in self.samples.items()],
            "failures": [{"metric": k, "cluster": c, "errors": v} for (k, c), v in self.failures.items()],
            "skipped": [{"metric": k, "cluster": c, "why": v} for (k, c), v in self.skipped.items()],
            "notes": self.notes,
        }


def _absolute(t: Target, m: Metric, ours: float) -> str:
    assert t.limit is not None
    met = ours >= t.limit if m.higher_is_better else ours <= t.limit
    sign = "≥" if m.higher_is_better else "≤"
    figures = f"pgwarden {_fmt(ours, m.digits)} {m.unit} (target {sign} {_fmt(t.limit, m.digits)} {m.unit})"
    if met:
        return f"- {t.text}: **met** — {figures}"
    return f"- {t.text}: **missed by {_fmt(abs(ours - t.limit), m.digits)} {m.unit}** — {figures}"


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"
