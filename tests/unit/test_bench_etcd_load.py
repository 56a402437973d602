"""bench/etcd_load.py: etcd's /metrics read as the scale bench reads them (requests by gRPC
method, bytes summed over members, writes counted once, our own lease listing left out)."""

from __future__ import annotations

import pytest

from bench.etcd_load import Snapshot, difference, parse

METRICS = """\
# TYPE grpc_server_msg_received_total counter
grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_type="bidi_stream"} 70
grpc_server_msg_received_total{grpc_method="Range",grpc_type="unary"} 30
grpc_server_msg_received_total{grpc_method="LeaseLeases",grpc_type="unary"} 1
# TYPE etcd_network_client_grpc_sent_bytes_total counter
etcd_network_client_grpc_sent_bytes_total 9000
# TYPE etcd_network_client_grpc_received_bytes_total counter
etcd_network_client_grpc_received_bytes_total 300
# TYPE etcd_debugging_mvcc_put_total counter
etcd_debugging_mvcc_put_total 12
# TYPE etcd_debugging_mvcc_watcher_total gauge
etcd_debugging_mvcc_watcher_total 3
# TYPE etcd_server_has_leader gauge
etcd_server_has_leader 1
"""


def test_parse_reads_requests_by_method_and_the_figures_it_knows() -> None:
    requests, values = parse(METRICS)
    assert requests == {"LeaseKeepAlive": 70, "Range": 30, "LeaseLeases": 1}
    assert values == {"sent_bytes": 9000, "received_bytes": 300, "puts": 12, "watchers": 3}


def test_difference_is_per_second_and_leaves_out_the_bench_s_own_lease_listing() -> None:
    zero = dict.fromkeys(["received_bytes", "sent_bytes", "watchers", "watch_streams", "puts", "txns"], 0.0)
    before = Snapshot({"Range": 10, "LeaseLeases": 1}, zero, 4)
    after = Snapshot(
        {"Range": 40, "LeaseKeepAlive": 60, "LeaseLeases": 2},
        {**zero, "sent_bytes": 3000, "puts": 3, "watchers": 3},
        4,
    )
    load = difference(before, after, 30.0)
    assert load.by_method == {"Range": 1.0, "LeaseKeepAlive": 2.0}
    assert load.requests_per_s == pytest.approx(3.0)
    assert load.sent_bytes_per_s == pytest.approx(100.0)
    assert load.puts_per_s == pytest.approx(0.1)
    assert (load.watchers, load.leases) == (3, 4)
