"""Re-records what a real Patroni 4.1.5 serves, for the differential tests that compare pgwarden
with it (tests/unit/test_patroni_metrics.py): ``GET /metrics`` of a leader, a synchronous
standby and an asynchronous replica of a 3-node Patroni cluster (bench/patroni_cluster.py) with
``synchronous_mode: on``, into tests/fixtures/patroni/metrics-{primary,sync_standby,replica}.txt.

Re-record after a Patroni upgrade (needs root, PostgreSQL 15 and ``.venv-patroni``; ~1 minute)::

    PGWARDEN_TEST_NETWORKS=205-219 .venv/bin/python -m tests.support.record_patroni

Values differ from run to run (positions, times); the tests compare series, types and labels only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

from bench.patroni_cluster import FASTEST, PatroniCluster
from tests.support.cluster import cluster_network

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "patroni"
ROLES = ("primary", "sync_standby", "replica")


def _patroni(cluster: PatroniCluster, i: int) -> dict[str, object]:
    node = cluster.nodes[i]
    reply = httpx.get(f"http://{node.host}:{node.api_port}/patroni", timeout=2, trust_env=False)
    document = reply.json()
    return document if isinstance(document, dict) else {}


def _roles(cluster: PatroniCluster) -> dict[str, int]:
    """role -> node index, once the cluster has one primary, one sync standby and one replica."""
    found: dict[str, int] = {}
    for i in range(len(cluster.nodes)):
        name = cluster.nodes[i].name
        role = _patroni(cluster, i).get("role")
        listed = httpx.get(
            f"http://{cluster.nodes[i].host}:{cluster.nodes[i].api_port}/cluster", timeout=2, trust_env=False
        ).json()
        cluster_role = next((m.get("role") for m in listed.get("members", []) if m.get("name") == name), None)
        if role == "primary":
            found["primary"] = i
        elif cluster_role == "sync_standby":
            found["sync_standby"] = i
        elif cluster_role == "replica":
            found["replica"] = i
    return found


def record(out: Path = FIXTURES) -> dict[str, Path]:
    written: dict[str, Path] = {}
    with PatroniCluster(FASTEST, "record", network=cluster_network()) as cluster:
        auth = cluster.api_auth()
        primary = cluster.primary_index()
        assert primary is not None
        node = cluster.nodes[primary]
        reply = httpx.patch(
            f"http://{node.host}:{node.api_port}/config",
            json=cluster.sync_config("on"),
            auth=auth,
            timeout=5,
            trust_env=False,
        )
        reply.raise_for_status()
        cluster.wait_healthy(120, sync=True)
        deadline = time.monotonic() + 60
        roles: dict[str, int] = {}
        while time.monotonic() < deadline:
            roles = _roles(cluster)
            if set(roles) == set(ROLES):
                break
            time.sleep(1)
        assert set(roles) == set(ROLES), f"roles seen: {roles}"
        time.sleep(3)  # a loop or two more, so that every series has a value
        for role, i in roles.items():
            n = cluster.nodes[i]
            text = httpx.get(f"http://{n.host}:{n.api_port}/metrics", timeout=5, trust_env=False).text
            path = out / f"metrics-{role}.txt"
            path.write_text(text)
            written[role] = path
    return written


if __name__ == "__main__":
    for role, path in record().items():
        sys.stdout.write(f"{role}: {path}\n")
