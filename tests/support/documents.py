"""The REST documents of a running cluster (Patroni's or pgwarden's) by role, and their shape diff.

``collect(cluster)`` puts a 3-node cluster through the same steps on either system (healthy, one
switchover so that /history has an entry, ``synchronous_mode`` on so that one standby is the
synchronous one, one committed write every standby replays) and fetches ``/patroni``,
``/cluster``, ``/history`` and ``/config`` from the primary, the synchronous standby and the other
standby. ``missing_fields(patroni, ours)`` lists
every field Patroni's document has that ours lacks or types differently: the differential test
(tests/integration/test_patroni_documents.py) requires none, while pgwarden may add fields.

Re-record Patroni 4.1.5's documents (tests/fixtures/patroni/documents.json) with
    .venv/bin/python -m tests.support.documents > tests/fixtures/patroni/documents.json
(it starts a real Patroni cluster from .venv-patroni on a free loopback network, about a minute).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.cluster import ClusterUnderTest

ENDPOINTS = ("patroni", "cluster", "history", "config")
ROLES = ("primary", "sync_standby", "replica")
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "patroni" / "documents.json"
# Values that differ run to run; the fixture keeps them only as examples of their type.
SETTLE = 120.0


def _get(cluster: ClusterUnderTest, i: int, endpoint: str) -> Any:
    host, port = cluster.rest_address(i)
    reply = httpx.get(f"http://{host}:{port}/{endpoint}", timeout=5, trust_env=False)
    return reply.json()


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (httpx.HTTPError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _roles(cluster: ClusterUnderTest) -> dict[str, int] | None:
    """role -> node index, once there is a primary, one synchronous standby and one other, and
    every member's /patroni says so (both systems: ``sync_standby`` true on the synchronous one)."""
    primary = cluster.primary_index()
    if primary is None:
        return None
    roles = {"primary": primary}
    for i in range(len(cluster.nodes)):
        if i == primary:
            continue
        status = cluster.status(i) or {}
        if status.get("state") not in ("running", "streaming"):
            return None
        roles["sync_standby" if status.get("sync_standby") else "replica"] = i
    return roles if len(roles) == len(ROLES) else None


def collect(cluster: ClusterUnderTest) -> dict[str, dict[str, Any]]:
    """role -> endpoint -> document, from a started cluster (see the module's docstring)."""
    cluster.wait_healthy(SETTLE)
    primary = cluster.primary_index()
    assert primary is not None
    candidate = (primary + 1) % len(cluster.nodes)
    reply = cluster.switchover(primary, candidate)
    assert reply.status_code in (200, 202), reply.text
    _wait(lambda: cluster.primary_index() == candidate, SETTLE, "the switchover")
    cluster.patch_config(cluster.sync_config("on"))
    cluster.wait_healthy(SETTLE, sync=True)
    roles = _wait(lambda: _roles(cluster), SETTLE, "a primary, a sync standby and a replica")
    # One committed write, so that every standby has replayed a transaction (xlog.replayed_timestamp
    # is null until then, on either system).
    with psycopg.connect(cluster.router_conninfo(5), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS documents_probe (at timestamptz)")
        conn.execute("INSERT INTO documents_probe VALUES (now())")
    _wait(
        lambda: all(
            (cluster.status(i) or {}).get("xlog", {}).get("replayed_timestamp")
            for role, i in roles.items()
            if role != "primary"
        ),
        SETTLE,
        "every standby replaying the write",
    )
    # Every member streaming again and listed with a position, the history entry published.
    _wait(
        lambda: (
            all(
                m.get("lag") is not None or m.get("role") in ("leader", "primary")
                for m in _get(cluster, roles["primary"], "cluster")["members"]
            )
            and _get(cluster, roles["primary"], "history")
        ),
        SETTLE,
        "every member's lag and the history entry",
    )
    return {role: {e: _get(cluster, i, e) for e in ENDPOINTS} for role, i in roles.items()}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def missing_fields(patroni: Any, ours: Any, path: str = "") -> list[str]:
    """Where ``ours`` lacks a field of ``patroni`` or has it with another JSON type. A null in
    Patroni's document says nothing of the type (ours may carry a value); an integer where Patroni
    has a number is a number. Lists: each of Patroni's elements against ours in the same role, or
    at the same place (the last of ours when there are fewer), so an element's fields count too."""
    theirs, mine = _kind(patroni), _kind(ours)
    if theirs == "null":
        return []
    if theirs != mine and not (theirs == "number" and mine == "integer"):
        return [f"{path or '.'}: Patroni has {theirs} {json.dumps(patroni)[:60]}, pgwarden {mine}"]
    found: list[str] = []
    if isinstance(patroni, dict):
        for key, value in patroni.items():
            if key not in ours:
                found.append(f"{path}.{key}: missing (Patroni: {json.dumps(value)[:60]})")
            else:
                found += missing_fields(value, ours[key], f"{path}.{key}")
    elif isinstance(patroni, list) and patroni:
        if not ours:
            return [f"{path}[]: Patroni lists {len(patroni)} entries, pgwarden none"]
        for n, value in enumerate(patroni):
            found += missing_fields(value, _counterpart(value, ours, n), f"{path}[{n}]")
    return found


def _counterpart(theirs: Any, ours: Any, n: int) -> Any:
    """Our element to compare with Patroni's ``n``th: the one in the same role (``/cluster``'s
    members are listed in name order, and the names differ), else the same place."""
    if isinstance(theirs, dict) and "role" in theirs:
        same = [m for m in ours if isinstance(m, dict) and m.get("role") == theirs["role"]]
        if same:
            return same[0]
    return ours[min(n, len(ours) - 1)]


def load_fixture() -> dict[str, dict[str, Any]]:
    document = json.loads(FIXTURE.read_text())
    return {role: document[role] for role in ROLES}


def _record() -> None:
    from bench.patroni_cluster import FASTEST, PatroniCluster, patroni_version
    from tests.support.cluster import cluster_network

    # PGWARDEN_TEST_NETWORKS=LOW-HIGH picks the loopback networks, as for the test clusters.
    cluster = PatroniCluster(dict(FASTEST), "Patroni", network=cluster_network())
    with cluster:
        documents: dict[str, Any] = {"patroni_version": patroni_version(), **collect(cluster)}
    sys.stdout.write(json.dumps(documents, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    _record()
