"""What a cluster costs its etcd: requests, bytes, writes, watchers and leases, from etcd's own
Prometheus ``/metrics`` on each member's client URL, differenced over a window.

Requests are gRPC messages received (``grpc_server_msg_received_total``: one per unary call, one
per message on a stream, so a lease keep-alive or a watch request on a long-lived stream counts
each time) summed over the 3 members, by method; bytes are ``etcd_network_client_grpc_received_
bytes_total`` / ``_sent_bytes_total`` summed over the members (gRPC payloads: the agents speak
HTTP/JSON to etcd's v3 gateway, which forwards them as gRPC inside the member, so the HTTP framing
is not counted). Writes (``etcd_debugging_mvcc_put_total``, ``_txn_total``) are applied by every
member, so the highest member's count is the cluster's. Watchers and watch streams are gauges
summed over members; leases are etcd's own list (``POST /v3/lease/leases``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "grpc_server_msg_received_total"
SUMMED = {
    "received_bytes": "etcd_network_client_grpc_received_bytes_total",
    "sent_bytes": "etcd_network_client_grpc_sent_bytes_total",
    "watchers": "etcd_debugging_mvcc_watcher_total",
    "watch_streams": "etcd_debugging_mvcc_watch_stream_total",
}
OURS = "LeaseLeases"  # snapshot()'s own lease listing, not the cluster's
APPLIED = {"puts": "etcd_debugging_mvcc_put_total", "txns": "etcd_debugging_mvcc_txn_total"}


@dataclass(frozen=True)
class Snapshot:
    """etcd's counters and gauges at one moment, over all members."""

    requests: dict[str, float]  # gRPC method -> messages received
    values: dict[str, float]  # the SUMMED and APPLIED figures by their short name
    leases: int | None


@dataclass(frozen=True)
class Load:
    """The growth between two snapshots, per second (gauges and leases: at the end)."""

    seconds: float
    requests_per_s: float
    by_method: dict[str, float]  # requests/s per gRPC method
    received_bytes_per_s: float
    sent_bytes_per_s: float
    puts_per_s: float
    txns_per_s: float
    watchers: float
    watch_streams: float
    leases: int | None
    unreachable: list[str] = field(default_factory=list)


def parse(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """One member's /metrics: messages received by gRPC method, and the SUMMED and APPLIED
    figures by their short name."""
    requests: dict[str, float] = {}
    values: dict[str, float] = {}
    short = {v: k for k, v in {**SUMMED, **APPLIED}.items()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == REQUESTS:
                method = sample.labels.get("grpc_method", "?")
                requests[method] = requests.get(method, 0.0) + sample.value
            elif sample.name in short:
                values[short[sample.name]] = values.get(short[sample.name], 0.0) + sample.value
    return requests, values


def snapshot(urls: Sequence[str], verify: bool = True) -> Snapshot:
    """Every member's /metrics (``urls``: client URLs, ``http://host:port``), added up."""
    requests: dict[str, float] = {}
    values = dict.fromkeys([*SUMMED, *APPLIED], 0.0)
    with httpx.Client(timeout=5, verify=verify, trust_env=False) as client:
        for url in urls:
            member_requests, member = parse(client.get(f"{url}/metrics").text)
            for method, count in member_requests.items():
                requests[method] = requests.get(method, 0.0) + count
            for name, value in member.items():
                # every member applies every write: the cluster's count is the highest member's
                values[name] = max(values[name], value) if name in APPLIED else values[name] + value
        leases = None
        for url in urls:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                doc = client.post(f"{url}/v3/lease/leases", json={}).json()
                leases = len(doc.get("leases") or [])
                break
    return Snapshot(requests, values, leases)


def difference(before: Snapshot, after: Snapshot, seconds: float) -> Load:
    methods = sorted(set(before.requests) | set(after.requests))
    by_method = {m: (after.requests.get(m, 0.0) - before.requests.get(m, 0.0)) / seconds for m in methods}
    by_method = {m: v for m, v in by_method.items() if v > 0 and m != OURS}

    def rate(key: str) -> float:
        return (after.values[key] - before.values[key]) / seconds

    return Load(
        seconds=seconds,
        requests_per_s=sum(by_method.values()),
        by_method=by_method,
        received_bytes_per_s=rate("received_bytes"),
        sent_bytes_per_s=rate("sent_bytes"),
        puts_per_s=rate("puts"),
        txns_per_s=rate("txns"),
        watchers=after.values["watchers"],
        watch_streams=after.values["watch_streams"],
        leases=after.leases,
    )
