"""The fleet bench's harness (bench/fleet.py) on a real etcd, small: 3 clusters for a few seconds.

So that the bench cannot rot: every cluster bootstraps on the shared etcd with exactly one leader
(the key in etcd names a member of that cluster, and only that member's fake PostgreSQL is
writable), the worker processes answer, the window reports the agents' etcd calls, and killing
one cluster's leader dead makes another member of that cluster take the key and promote, with
the other clusters' leaders untouched.
"""

from __future__ import annotations

import time

import pytest

from bench.fleet import Fleet
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.model import EtcdSettings
from tests.support.cluster import cluster_network
from tests.support.etcd import EtcdCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CLUSTERS = 3


def leaders_in_etcd(etcd: EtcdCluster) -> dict[str, str | None]:
    """Each fleet cluster's leader key as etcd holds it."""
    with EtcdStore.connect(EtcdSettings(hosts=tuple(etcd.endpoints)), timeout=2.0) as store:
        names = (f"fleet{i:04d}" for i in range(CLUSTERS))
        views = {name: ClusterStore(store, name).read() for name in names}
    return {name: view.leader.name if view.leader else None for name, view in views.items()}


def test_each_cluster_elects_one_leader_and_a_killed_leader_is_replaced() -> None:
    network = cluster_network()
    octet = int(network.rsplit(".", 1)[1])
    with (
        EtcdCluster(hosts=tuple(f"{network}.{21 + i}" for i in range(3))) as etcd,
        Fleet(CLUSTERS, etcd.endpoints, octet, per_process=2) as fleet,
    ):
        fleet.wait_healthy(60)
        before = leaders_in_etcd(etcd)
        for name, leader in before.items():
            assert leader is not None and leader.startswith(f"{name}-m"), before
        victim = fleet.victim
        assert [pg.name for pg in victim.world.writable()] == [before[victim.name]]

        fleet.mark()
        time.sleep(3)  # three cycles of every member
        report = fleet.report()
        assert report["client_calls"]["get_prefix"]["count"] > 0, report
        assert report["harness"]["processes"] == 2  # this process and one worker (clusters 1 and 2)

        trial = fleet.rto_trial(timeout=30)
        after = leaders_in_etcd(etcd)
        assert trial["killed"] == before[victim.name]
        assert trial["new_leader"] not in (None, trial["killed"]), trial
        assert after[victim.name] == trial["new_leader"], (trial, after)
        assert trial["key_holder"] == trial["new_leader"], trial  # as an outside watch saw etcd's key
        assert 0 < trial["key_gone_s"] < trial["key_taken_s"] < 30 and trial["promoted_s"] < 30, trial
        assert {n: v for n, v in after.items() if n != victim.name} == {
            n: v for n, v in before.items() if n != victim.name
        }
