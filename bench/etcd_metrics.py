"""etcd's own figures over a window: two scrapes of every member's ``/metrics``, and their difference.

Counters become rates (requests by gRPC method, bytes in and out, mvcc puts/txns/ranges, lease
renewals, raft proposals, CPU seconds); gauges are read at the end (watchers, watch streams, keys,
database size, RSS); histograms (WAL fsync, backend commit) become p50/p99 of the observations
made inside the window, interpolated within Prometheus buckets as ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

COUNTERS = (
    "etcd_network_client_grpc_received_bytes_total",
    "etcd_network_client_grpc_sent_bytes_total",
    "etcd_network_peer_received_bytes_total",
    "etcd_network_peer_sent_bytes_total",
    "etcd_mvcc_put_total",
    "etcd_mvcc_txn_total",
    "etcd_mvcc_range_total",
    "etcd_mvcc_delete_total",
    "etcd_debugging_lease_granted_total",
    "etcd_debugging_lease_renewed_total",
    "etcd_debugging_lease_revoked_total",
    "etcd_server_proposals_committed_total",
    "etcd_disk_wal_write_bytes_total",
    "process_cpu_seconds_total",
)
GAUGES = (
    "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_debugging_mvcc_keys_total",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "process_resident_memory_bytes",
    "process_open_fds",
    "etcd_server_is_leader",
)
HISTOGRAMS = ("etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds")


@dataclass
class Scrape:
    """One member's metrics at one moment."""

    values: dict[str, float]  # counters and gauges, summed over their labels
    by_method: dict[str, float]  # grpc_server_msg_received_total by grpc_method: requests in
    buckets: dict[str, dict[float, float]]  # histogram -> upper bound -> cumulative count


def scrape(url: str) -> Scrape:
    text = httpx.get(f"{url}/metrics", timeout=5.0, trust_env=False).text
    values: dict[str, float] = defaultdict(float)
    by_method: dict[str, float] = defaultdict(float)
    buckets: dict[str, dict[float, float]] = {h: defaultdict(float) for h in HISTOGRAMS}
    wanted = set(COUNTERS) | set(GAUGES)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name in wanted:
                values[name] += sample.value
            elif name == "grpc_server_msg_received_total":
                by_method[sample.labels["grpc_method"]] += sample.value
            elif name.endswith("_bucket") and name[: -len("_bucket")] in buckets:
                buckets[name[: -len("_bucket")]][float(sample.labels["le"])] += sample.value
    return Scrape(dict(values), dict(by_method), {h: dict(b) for h, b in buckets.items()})


def quantile(q: float, before: Mapping[float, float], after: Mapping[float, float]) -> float | None:
    """The q-quantile (seconds) of what was observed between two scrapes of one histogram."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def window(
    urls: Sequence[str], before: Sequence[Scrape], after: Sequence[Scrape], seconds: float
) -> dict[str, Any]:
    """Per member and summed: rates over ``seconds``, gauges at the end, histogram quantiles."""
    members = []
    for url, b, a in zip(urls, before, after, strict=True):
        rates = {n: (a.values.get(n, 0.0) - b.values.get(n, 0.0)) / seconds for n in COUNTERS}
        requests = {
            m: round((a.by_method.get(m, 0.0) - b.by_method.get(m, 0.0)) / seconds, 2)
            for m in sorted(a.by_method)
        }
        latency = {
            h: {
                "p50_ms": _ms(quantile(0.5, b.buckets[h], a.buckets[h])),
                "p99_ms": _ms(quantile(0.99, b.buckets[h], a.buckets[h])),
                "count": round(a.buckets[h].get(math.inf, 0.0) - b.buckets[h].get(math.inf, 0.0)),
            }
            for h in HISTOGRAMS
        }
        members.append(
            {
                "url": url,
                "leader": a.values.get("etcd_server_is_leader", 0.0) == 1.0,
                "rates": {n: round(v, 2) for n, v in rates.items()},
                "requests_per_s": {m: r for m, r in requests.items() if r},
                "gauges": {n: a.values.get(n, 0.0) for n in GAUGES},
                "latency": latency,
                "cpu_percent": round(100 * rates["process_cpu_seconds_total"], 1),
                "rss_mib": round(a.values.get("process_resident_memory_bytes", 0.0) / 2**20, 1),
            }
        )
    return {"seconds": seconds, "members": members, "total": _total(members)}


def _total(members: list[dict[str, Any]]) -> dict[str, Any]:
    """Client-facing figures summed over the members (each client talks to one member)."""
    requests: dict[str, float] = defaultdict(float)
    for m in members:
        for method, rate in m["requests_per_s"].items():
            requests[method] += rate
    leader = next((m for m in members if m["leader"]), members[0])
    return {
        "requests_per_s": {k: round(v, 2) for k, v in sorted(requests.items())},
        "all_requests_per_s": round(sum(requests.values()), 1),
        "client_bytes_in_per_s": round(
            sum(m["rates"]["etcd_network_client_grpc_received_bytes_total"] for m in members)
        ),
        "client_bytes_out_per_s": round(
            sum(m["rates"]["etcd_network_client_grpc_sent_bytes_total"] for m in members)
        ),
        "peer_bytes_out_per_s": round(sum(m["rates"]["etcd_network_peer_sent_bytes_total"] for m in members)),
        # Writes go through raft: every member applies each one; the leader's count is the cluster's.
        "mvcc_per_s": {k: leader["rates"][f"etcd_mvcc_{k}_total"] for k in ("put", "txn", "delete")},
        # Reads are served by the member asked, without raft: their sum is the cluster's.
        "mvcc_range_per_s": round(sum(m["rates"]["etcd_mvcc_range_total"] for m in members), 2),
        "lease_renewed_per_s": leader["rates"]["etcd_debugging_lease_renewed_total"],
        "proposals_per_s": leader["rates"]["etcd_server_proposals_committed_total"],
        "wal_bytes_per_s": leader["rates"]["etcd_disk_wal_write_bytes_total"],
        "watchers": sum(m["gauges"]["etcd_debugging_mvcc_watcher_total"] for m in members),
        "watch_streams": sum(m["gauges"]["etcd_debugging_mvcc_watch_stream_total"] for m in members),
        "keys": leader["gauges"]["etcd_debugging_mvcc_keys_total"],
        "db_bytes": leader["gauges"]["etcd_mvcc_db_total_size_in_bytes"],
        "cpu_percent": round(sum(m["cpu_percent"] for m in members), 1),
        "rss_mib": round(sum(m["rss_mib"] for m in members), 1),
    }


def lease_count(url: str) -> int:
    """How many leases etcd holds now (LeaseLeases)."""
    answer = httpx.post(f"{url}/v3/lease/leases", json={}, timeout=5.0, trust_env=False).json()
    return len(answer.get("leases", []))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
