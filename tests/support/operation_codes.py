"""What Patroni's operation bodies get from a running cluster, Patroni's or pgwarden's: the same
requests, sent the way a Patroni user's script sends them (a JSON POST with the API's credentials),
and each answer's status code and sentence (Patroni's text body; pgwarden's ``error``/``message``).

The differential test (tests/integration/test_patroni_documents.py) sends them to both clusters,
after ``collect``, and requires the same status codes. Every request but the last changes nothing
(a condition that does not hold, a malformed body, a failover naming the wrong leader); the last
restarts the replica (a condition that holds).
"""

from __future__ import annotations

from typing import Any

import httpx

from bench.cluster import ClusterUnderTest

# (case, role asked, path, body); {primary}, {sync_standby}, {replica} name the members in those roles.
CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("restart_pending with nothing pending", "primary", "/restart", {"restart_pending": True}),
    ("restart of replicas only, on the primary", "primary", "/restart", {"role": "replica"}),
    ("restart of the primary only, on a replica", "replica", "/restart", {"role": "primary"}),
    ("restart below an older version", "replica", "/restart", {"postgres_version": "14.9"}),
    ("restart with an unknown role", "replica", "/restart", {"role": "leader"}),
    ("restart with a malformed version", "replica", "/restart", {"postgres_version": "15"}),
    ("restart with a malformed timeout", "replica", "/restart", {"timeout": "soon"}),
    (
        "failover naming the wrong leader",
        "primary",
        "/failover",
        {"leader": "{replica}", "candidate": "{sync_standby}"},
    ),
    (
        "failover from the leader to itself",
        "primary",
        "/failover",
        {"leader": "{primary}", "candidate": "{primary}"},
    ),
    ("failover with a leader and no candidate", "primary", "/failover", {"leader": "{primary}"}),
    ("restart below a newer version", "replica", "/restart", {"postgres_version": "99.0", "timeout": 90}),
]


def answers(cluster: ClusterUnderTest, documents: dict[str, dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """case -> (status code, sentence), the members' roles read from ``collect``'s documents."""
    names = {
        role: documents[role]["patroni"]["patroni"]["name"] for role in ("primary", "sync_standby", "replica")
    }
    index = {node.name: i for i, node in enumerate(cluster.nodes)}
    found: dict[str, tuple[int, str]] = {}
    for case, role, path, body in CASES:
        sent = {k: v.format(**names) if isinstance(v, str) else v for k, v in body.items()}
        host, port = cluster.rest_address(index[names[role]])
        reply = httpx.post(
            f"http://{host}:{port}{path}", json=sent, auth=cluster.api_auth(), timeout=120, trust_env=False
        )
        found[case] = (reply.status_code, _sentence(reply))
    return found


def _sentence(reply: httpx.Response) -> str:
    try:
        document = reply.json()
    except ValueError:
        return reply.text.strip()
    if isinstance(document, dict):
        return str(document.get("error") or document.get("message") or "")
    return str(document)
