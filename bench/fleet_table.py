"""The fleet bench's figures as docs/scaling.md shows them: one column per size, and the slopes.

Reads what bench/fleet.py records for each size (``measure``'s dictionaries, also its JSON file).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any


def table(results: list[dict[str, Any]]) -> str:
    """The figures docs/scaling.md quotes, one column per size."""
    rows: list[tuple[str, Any]] = [
        ("clusters (members)", lambda r: f"{r['clusters']} ({r['members']})"),
        ("clusters healthy at the window's start", lambda r: r.get("healthy_before_idle", r["clusters"])),
        ("etcd requests/s (all members)", lambda r: r["etcd"]["total"]["all_requests_per_s"]),
        (
            "  of which LeaseKeepAlive",
            lambda r: r["etcd"]["total"]["requests_per_s"].get("LeaseKeepAlive", 0),
        ),
        ("  of which Range", lambda r: r["etcd"]["total"]["requests_per_s"].get("Range", 0)),
        ("  of which Watch", lambda r: r["etcd"]["total"]["requests_per_s"].get("Watch", 0)),
        ("mvcc put+txn/s (writes)", lambda r: _writes(r)),
        ("lease renewals/s", lambda r: r["etcd"]["total"]["lease_renewed_per_s"]),
        ("raft proposals/s", lambda r: r["etcd"]["total"]["proposals_per_s"]),
        ("client bytes in/s", lambda r: r["etcd"]["total"]["client_bytes_in_per_s"]),
        ("client bytes out/s", lambda r: r["etcd"]["total"]["client_bytes_out_per_s"]),
        ("watchers / leases / keys", lambda r: _wlk(r)),
        ("WAL fsync p50/p99 ms (leader)", lambda r: _hist(r, "etcd_disk_wal_fsync_duration_seconds")),
        (
            "backend commit p50/p99 ms (leader)",
            lambda r: _hist(r, "etcd_disk_backend_commit_duration_seconds"),
        ),
        ("lease renewal p50/p99 ms (client)", lambda r: _client(r, "renew_lease")),
        ("cluster read p50/p99 ms (client)", lambda r: _client(r, "get_prefix")),
        (
            "etcd CPU % (3 members) / RSS MiB",
            lambda r: f"{r['etcd']['total']['cpu_percent']} / {r['etcd']['total']['rss_mib']}",
        ),
        (
            "harness CPU % / processes",
            lambda r: f"{r['harness']['cpu_percent']} / {r['harness']['processes']}",
        ),
        ("RTO s: key gone / promoted (median)", lambda r: _rto(r)),
    ]
    head = "| | " + " | ".join(str(r["clusters"]) for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    lines += ["| " + name + " | " + " | ".join(str(get(r)) for r in results) + " |" for name, get in rows]
    return "\n".join(lines)


GROWTH: dict[str, Callable[[dict[str, Any]], Any]] = {
    "etcd requests/s": lambda r: r["etcd"]["total"]["all_requests_per_s"],
    "LeaseKeepAlive/s": lambda r: r["etcd"]["total"]["requests_per_s"].get("LeaseKeepAlive", 0),
    "Range/s": lambda r: r["etcd"]["total"]["requests_per_s"].get("Range", 0),
    "writes (put+txn)/s": lambda r: _writes(r),
    "client bytes in/s": lambda r: r["etcd"]["total"]["client_bytes_in_per_s"],
    "client bytes out/s": lambda r: r["etcd"]["total"]["client_bytes_out_per_s"],
    "watchers": lambda r: r["etcd"]["total"]["watchers"],
    "leases": lambda r: r["leases"],
    "keys": lambda r: r["etcd"]["total"]["keys"],
    "etcd CPU % (3 members)": lambda r: r["etcd"]["total"]["cpu_percent"],
    "harness CPU %": lambda r: r["harness"]["cpu_percent"],
}


def growth(small: dict[str, Any], large: dict[str, Any]) -> str:
    """What one more cluster adds: the slope between the smallest and the largest size."""
    span = large["clusters"] - small["clusters"]
    lines = [f"per added cluster (slope from {small['clusters']} to {large['clusters']} clusters):"]
    for name, get in GROWTH.items():
        lines.append(f"  {name}: {(float(get(large)) - float(get(small))) / span:.3f}")
    return "\n".join(lines)


def _writes(r: dict[str, Any]) -> float:
    m = r["etcd"]["total"]["mvcc_per_s"]
    return round(float(m["put"]) + float(m["txn"]), 2)


def _wlk(r: dict[str, Any]) -> str:
    t = r["etcd"]["total"]
    return f"{t['watchers']:.0f} / {r['leases']} / {t['keys']:.0f}"


def _leader(r: dict[str, Any]) -> dict[str, Any]:
    members = r["etcd"]["members"]
    return next((m for m in members if m["leader"]), members[0])


def _hist(r: dict[str, Any], name: str) -> str:
    h = _leader(r)["latency"][name]
    return f"{h['p50_ms']} / {h['p99_ms']}"


def _client(r: dict[str, Any], method: str) -> str:
    c = r["client_calls"].get(method, {})
    return f"{c.get('p50_ms')} / {c.get('p99_ms')}"


def _rto(r: dict[str, Any]) -> str:
    trials = r["rto"]
    if not trials:
        return "-"
    gone = [t["key_gone_s"] for t in trials if t["key_gone_s"] is not None]
    promoted = [t["promoted_s"] for t in trials]
    g = f"{statistics.median(gone):.2f}" if gone else "?"
    return f"{g} / {statistics.median(promoted):.2f} (n={len(trials)}, max {max(promoted):.2f})"
