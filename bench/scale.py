"""pgwarden at 3, 5 and 9 members, and 9 with cascading standbys: what grows with the member count.

One real cluster per layout (PostgreSQL 15, a 3-member etcd, HAProxy: bench/pgwarden_cluster.py,
each node on its own loopback address and OS user), started once, then ``runs`` times: an idle
window (every agent's RSS and CPU, bench/footprint.py, the leader apart from the standbys; the
etcd load over the same window, bench/etcd_load.py), a switchover and a node loss under writes
(bench/failover.py: longest write gap, node-loss RTO, lost acknowledged writes, the old primary's
rejoin). The ``9c`` layout: nodes 6 and 7 are relays streaming from the primary, node 8 streams
from node 6 and node 9 from node 7 (``replicatefrom``); nodes 6-9 are ``nofailover`` (a remote
read-only site), so the primary and the failover candidates are nodes 1-5.

Run (about 25 minutes on 2 cores for all four layouts, 2 runs each)::

    PGWARDEN_TEST_NETWORKS=130-149 flock -s /tmp/pgw-faults.lock \\
        .venv/bin/python -m bench.scale --layouts 3,5,9,9c --runs 2 --json /tmp/scale.json

``bench.run --phases scale`` runs the same as a phase of ``make bench`` (pgwarden only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench import etcd_load, failover, footprint
from bench.pgwarden_cluster import PgwardenCluster
from tests.support.cluster import TaggedSpec

IDLE_SECONDS = 30.0
SETTLE_SECONDS = 5.0  # after healthy: start-up work (checkpoints, first loops) passes


@dataclass(frozen=True)
class Layout:
    name: str
    members: int
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    text: str = ""
    short: str = ""  # the table's column head

    @property
    def head(self) -> str:
        return self.short or self.text

    def cluster(self) -> PgwardenCluster:
        label = f"pgwarden, {self.text}"
        if not self.tags:
            return PgwardenCluster(label=label, nodes=self.members)
        return PgwardenCluster(label=label, nodes=self.members, spec_type=TaggedSpec, node_tags=self.tags)


_REMOTE = {"nofailover": True}
LAYOUTS = {
    "3": Layout("3", 3, text="3 members"),
    "5": Layout("5", 5, text="5 members"),
    "9": Layout("9", 9, text="9 members"),
    "9c": Layout(
        "9c",
        9,
        {
            "node6": _REMOTE,
            "node7": _REMOTE,
            "node8": {**_REMOTE, "replicatefrom": "node6"},
            "node9": {**_REMOTE, "replicatefrom": "node7"},
        },
        "9 members, cascading (8 <- 6, 9 <- 7; 6-9 nofailover)",
        "9 members, cascading",
    ),
}

# (figure, title, unit, digits): one Metric per layout in bench/report.py, key ``scale_<fig>_<layout>``.
FIGURES = (
    ("start", "cluster start -> healthy", "s", 1),
    ("node_loss_rto", "node loss RTO", "s", 2),
    ("node_loss_lost", "lost acknowledged writes per node loss", "writes", 0),
    ("rejoin", "old primary's rejoin (agent restart -> streaming)", "s", 1),
    ("switchover_gap", "switchover: longest write gap", "s", 2),
    ("switchover_lost", "lost acknowledged writes per switchover", "writes", 0),
    ("leader_rss", "leader agent idle RSS", "MB", 1),
    ("leader_cpu", "leader agent idle CPU", "% of a core", 2),
    ("standby_rss", "standby agent idle RSS (median of the standbys)", "MB", 1),
    ("standby_cpu", "standby agent idle CPU (median of the standbys)", "% of a core", 2),
    ("leader_cycle", "leader agent cycle at idle (median of 5 reads)", "ms", 1),
    ("standby_cycle", "standby agent cycle at idle (median of 5 reads each)", "ms", 1),
    ("primary_senders", "WAL senders on the primary (streaming standbys)", "senders", 0),
    ("primary_slots", "replication slots on the primary", "slots", 0),
    ("etcd_rps", "etcd requests/s, idle cluster (gRPC messages in)", "req/s", 1),
    ("etcd_in", "etcd bytes/s in, idle cluster", "B/s", 0),
    ("etcd_out", "etcd bytes/s out, idle cluster", "B/s", 0),
    ("etcd_writes", "etcd writes/s (puts + txns applied), idle cluster", "/s", 2),
    ("etcd_watchers", "etcd watchers, idle cluster", "watchers", 0),
    ("etcd_leases", "etcd leases, idle cluster", "leases", 0),
)


def key(figure: str, layout: str) -> str:
    return f"scale_{figure}_{layout}"


def idle(cluster: PgwardenCluster, seconds: float) -> tuple[dict[str, float], etcd_load.Load]:
    """The agents' cost and etcd's load over one idle window (measured together)."""
    cluster.wait_healthy(240)
    time.sleep(SETTLE_SECONDS)
    primary = cluster.primary_index()
    assert primary is not None, "no single primary"
    urls = [f"http://{e}" for e in cluster.etcd_endpoints()]
    before = etcd_load.snapshot(urls)
    started = time.monotonic()
    agents = footprint.idle(cluster, seconds)
    load = etcd_load.difference(before, etcd_load.snapshot(urls), time.monotonic() - started)
    assert cluster.primary_index() == primary, "the primary changed during the idle window"
    standbys = [f for i, f in enumerate(agents) if i != primary]
    leader_cycles, standby_cycles = cycles(cluster, primary)
    figures = {
        "leader_rss": agents[primary].rss_mb,
        "leader_cpu": agents[primary].cpu_percent,
        "standby_rss": statistics.median(f.rss_mb for f in standbys),
        "standby_cpu": statistics.median(f.cpu_percent for f in standbys),
        "etcd_rps": load.requests_per_s,
        "etcd_in": load.received_bytes_per_s,
        "etcd_out": load.sent_bytes_per_s,
        "etcd_writes": load.puts_per_s + load.txns_per_s,
        "etcd_watchers": load.watchers,
    }
    figures.update(replication(cluster, primary))
    if load.leases is not None:
        figures["etcd_leases"] = float(load.leases)
    if leader_cycles:
        figures["leader_cycle"] = statistics.median(leader_cycles)
    if standby_cycles:
        figures["standby_cycle"] = statistics.median(standby_cycles)
    return figures, load


def cycles(cluster: PgwardenCluster, primary: int, samples: int = 5) -> tuple[list[float], list[float]]:
    """Every agent's last cycle (ms), read ``samples`` times a loop apart: the leader's, the
    standbys'."""
    leader: list[float] = []
    standbys: list[float] = []
    for n in range(samples):
        for i in range(len(cluster.nodes)):
            seconds = cluster.cycle_seconds(i)
            if seconds is not None:
                (leader if i == primary else standbys).append(1000 * seconds)
        if n + 1 < samples:
            time.sleep(1.1)
    return leader, standbys


def replication(cluster: PgwardenCluster, primary: int) -> dict[str, float]:
    """What the primary serves: WAL senders streaming, and the replication slots it keeps."""
    with psycopg.connect(cluster.node_conninfo(primary), autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'),"
            " (SELECT count(*) FROM pg_replication_slots)"
        ).fetchone()
    assert row is not None
    return {"primary_senders": float(row[0]), "primary_slots": float(row[1])}


def switchover(cluster: PgwardenCluster) -> dict[str, float]:
    outcome = failover.switchover(cluster)
    return {"switchover_gap": outcome.longest_gap_s, "switchover_lost": float(outcome.lost)}


def node_loss(cluster: PgwardenCluster) -> dict[str, float]:
    outcome = failover.node_loss(cluster)
    figures = {"node_loss_rto": outcome.recovery_s, "node_loss_lost": float(outcome.lost)}
    if outcome.rejoin_s is not None:
        figures["rejoin"] = outcome.rejoin_s
    return figures


Record = Callable[[str, dict[str, float]], None]  # (what, figures by FIGURES name)


def measure(layout: Layout, runs: int, record: Record, say: Callable[[str], None], idle_s: float) -> None:
    """Start ``layout``'s cluster and take every figure ``runs`` times, recording each as it comes
    (a failed step raises: the caller records the failure; what was recorded stays)."""
    cluster = layout.cluster()
    started = time.monotonic()
    with cluster:
        record("start", {"start": time.monotonic() - started})
        for n in range(runs):
            figures, load = idle(cluster, idle_s)
            record("idle", figures)
            top = sorted(load.by_method.items(), key=lambda kv: -kv[1])[:6]
            shown = ", ".join(f"{m} {v:.2f}" for m, v in top)
            say(f"run {n + 1}: etcd requests/s by gRPC method: {shown}")
            record("switchover", switchover(cluster))
            record("node loss", node_loss(cluster))


def summary(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        k: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}
        for k, v in samples.items()
        if v
    }


def table(layouts: dict[str, dict[str, Any]]) -> str:
    """The figures as docs/scaling.md shows them: one row per figure, one column per layout,
    each cell the median (min-max, n)."""
    names = list(layouts)
    head = ["figure", *(LAYOUTS[n].head for n in names)]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for figure, title, unit, digits in FIGURES:
        cells = []
        for n in names:
            values = layouts[n]["samples"].get(figure, [])
            if not values:
                cells.append("—")
                continue
            med, low, high = statistics.median(values), min(values), max(values)
            spread = "" if len(values) == 1 else f" ({low:.{digits}f}\u2013{high:.{digits}f})"
            cells.append(f"{med:.{digits}f}{spread}, n={len(values)}")
        rows.append(f"| {title} ({unit}) | " + " | ".join(cells) + " |")
    load = ", ".join(f"{LAYOUTS[n].head}: {' '.join(layouts[n]['loadavg_before'])}" for n in names)
    return "\n".join(rows) + f"\n\nLoad average (1/5/15 min) before each layout: {load}."


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def run_layout(name: str, runs: int, idle_s: float) -> dict[str, Any]:
    """One layout, printed as it goes; its samples, summary, errors and the load around it."""
    samples: dict[str, list[float]] = {}
    errors: list[str] = []

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {name} {text}", flush=True)

    def record(what: str, figures: dict[str, float]) -> None:
        for k, v in figures.items():
            samples.setdefault(k, []).append(v)
        say(f"{what}: " + ", ".join(f"{k}={v:.3g}" for k, v in figures.items()))

    before = loadavg()
    try:
        measure(LAYOUTS[name], runs, record, say, idle_s)
    except Exception as exc:  # recorded; the next layout still runs
        errors.append(f"{type(exc).__name__}: {str(exc).strip()[:2000]}")
        say(f"FAILED: {errors[-1]}")
    return {
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        "samples": samples,
        "summary": summary(samples),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layouts", default="3,5,9,9c", help=f"comma-separated, from {', '.join(LAYOUTS)}")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--idle-seconds", type=float, default=IDLE_SECONDS)
    parser.add_argument("--json", default="", help="write the samples and summaries here")
    parser.add_argument("--table", metavar="JSON", help="only print the table of an earlier --json")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())["layouts"]))
        return
    names = [n.strip() for n in args.layouts.split(",") if n.strip()]
    unknown = [n for n in names if n not in LAYOUTS]
    if unknown:
        parser.error(f"unknown layout: {', '.join(unknown)}")
    out: dict[str, Any] = {"layouts": {}}
    for name in names:
        out["layouts"][name] = run_layout(name, args.runs, args.idle_seconds)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({n: v["summary"] for n, v in out["layouts"].items()}, indent=2))
    print(table(out["layouts"]))


if __name__ == "__main__":
    main()
