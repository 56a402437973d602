"""Write availability through an etcd outage: two of the three etcd members killed for 30 s, with
``failsafe_mode`` off and on, on whichever system the cluster under test runs.

The writer of bench.failover inserts through HAProxy every 20 ms. Figures: the longest gap
between acknowledged writes from the kill until writes flow again after etcd is back (the write
unavailability the outage caused), the writes acknowledged during the outage, acknowledged writes
lost, and whether the same node is primary afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.cluster import ClusterUnderTest
from bench.failover import ACKS, RECOVERY_BOUND, WRITE_INTERVAL
from pgwarden.drill.writer import Writer, missing_ids

OUTAGE_S = 30.0


@dataclass
class OutageOutcome:
    longest_gap_s: float  # from the kill until writes flow again after etcd is back
    acked_in_outage: int  # writes acknowledged while etcd had no quorum
    lost: int
    same_primary: bool


def etcd_outage(cluster: ClusterUnderTest, failsafe: bool, seconds: float = OUTAGE_S) -> OutageOutcome:
    cluster.set_failsafe(failsafe)
    cluster.wait_healthy(240)
    primary = cluster.primary_index()
    assert primary is not None, f"{cluster.label}: no single primary before the outage"
    table = f"bench_outage_{time.monotonic_ns() % 10**9}"
    writer = Writer(
        cluster.router_conninfo(1), table=table, interval=WRITE_INTERVAL, max_seconds=seconds + 300
    )
    writer.prepare()
    members = cluster.etcd_quorum_members()
    with writer:
        assert writer.wait_for_acks(ACKS, 30), f"{cluster.label}: no writes before the outage"
        killed = time.monotonic()
        for i in members:
            cluster.kill_etcd(i)
        time.sleep(max(0.0, killed + seconds - time.monotonic()))
        restored = time.monotonic()
        for i in members:
            cluster.start_etcd(i)
        cluster.wait_etcd_healthy(60)
        recovered = writer.wait_for_acks(ACKS, RECOVERY_BOUND)
    report = writer.report
    assert recovered, f"{cluster.label}: no write acknowledged within {RECOVERY_BOUND:.0f} s of etcd's return"
    cluster.wait_healthy(240)
    lost = missing_ids(cluster.router_conninfo(5), table, report.acknowledged)
    return OutageOutcome(
        longest_gap_s=report.longest_gap(after=killed),
        acked_in_outage=sum(1 for t in report.ack_times if killed <= t <= restored),
        lost=len(lost),
        same_primary=cluster.primary_index() == primary,
    )
