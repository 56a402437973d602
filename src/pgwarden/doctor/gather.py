"""Gathers what ``pgwarden doctor`` judges: the cluster, every agent's ``GET /diagnostics``, etcd, HAProxy.

The only I/O of doctor, every step bounded: one etcd read of the cluster, etcd's member list,
a few timed reads on each etcd endpoint, and one ``GET /diagnostics`` per member, all members
at once. SQL on a member goes through its agent (which reads its own PostgreSQL over the local
socket), never from here: doctor needs no database credentials and no route to PostgreSQL.
A part that fails is recorded with its reason and the checks that need it say so.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pgwarden.client import ClientError, ClusterClient
from pgwarden.doctor.facts import EtcdFacts, Facts, HaproxyChecks, NodeFacts, RoundTrips, node_facts
from pgwarden.doctor.haproxy import HaproxyConfigError
from pgwarden.doctor.haproxy import read as read_haproxy
from pgwarden.model import ClusterView, Member

DIAGNOSTICS_TIMEOUT = 8.0  # the agent reads its PostgreSQL within 3 s; the rest is the network
ETCD_SAMPLES = 5


def _known_members(client: ClusterClient, view: ClusterView | None) -> list[Member]:
    """Whom to ask: etcd's members, then the nodes the target lists (stack.json, the node config)
    and the last failsafe topology, so an agent without a member key is asked too."""
    members = list(view.members) if view is not None else []
    seen = {m.name for m in members}
    own = client.target.own_node
    for node in (*client.target.nodes, *([own] if own is not None else [])):
        if node.name not in seen:
            members.append(Member(name=node.name, api_url=node.api_url, host=node.host, port=node.port))
            seen.add(node.name)
    for name, url in sorted(((view.failsafe if view is not None else None) or {}).items()):
        if name not in seen:
            members.append(Member(name=name, api_url=url, host="", port=0))
            seen.add(name)
    return members


def _diagnose(client: ClusterClient, member: Member) -> NodeFacts | str:
    sent = time.time()
    try:
        answer = client.call(member, "GET", "/diagnostics", timeout=DIAGNOSTICS_TIMEOUT)
    except ClientError as exc:
        return str(exc)
    received = time.time()
    if answer.document.get("format") is None:
        return f"{member.name} answered GET /diagnostics without a format (is its agent older than doctor?)"
    return node_facts(member.name, answer.document, sent, received)


def _summary(times: list[float]) -> RoundTrips:
    ordered = sorted(times)
    return RoundTrips(
        count=len(ordered),
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[-1] * 1000,
        max_ms=ordered[-1] * 1000,
    )


def _etcd(client: ClusterClient) -> EtcdFacts:
    endpoints = tuple(str(h) for h in client.target.etcd_hosts)
    try:
        members = client.etcd_members()
        error = ""
    except ClientError as exc:
        members, error = None, str(exc)
    try:
        measured = client.etcd_round_trips(ETCD_SAMPLES)
    except ClientError as exc:
        measured = {endpoint: str(exc) for endpoint in endpoints}
    trips: dict[str, RoundTrips | str] = {
        endpoint: _summary(times) if isinstance(times, list) and times else str(times)
        for endpoint, times in measured.items()
    }
    return EtcdFacts(endpoints, members, error, trips)


def _haproxy(client: ClusterClient, config: Path | None) -> tuple[HaproxyChecks | None, str]:
    if config is None and client.target.router is not None and client.target.source.endswith("stack.json"):
        config = Path(client.target.source).with_name("haproxy.cfg")  # the local stack's own
    if config is None:
        return None, "give the file your HAProxy runs with: pgwarden doctor --haproxy-config FILE"
    try:
        return read_haproxy(config), f"read from {config}"
    except HaproxyConfigError as exc:
        return None, str(exc)


def gather(client: ClusterClient, haproxy_config: Path | None = None) -> Facts:
    try:
        view: ClusterView | None = client.view()
        view_error = ""
    except ClientError as exc:
        view, view_error = None, str(exc)
    members = _known_members(client, view)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(members) + 1))) as pool:
        etcd = pool.submit(_etcd, client)
        answers = dict(
            zip((m.name for m in members), pool.map(lambda m: _diagnose(client, m), members), strict=True)
        )
        etcd_facts = etcd.result()
    nodes: Mapping[str, NodeFacts] = {n: a for n, a in answers.items() if isinstance(a, NodeFacts)}
    unreachable = {n: a for n, a in answers.items() if isinstance(a, str)}
    haproxy, note = _haproxy(client, haproxy_config)
    return Facts(
        cluster=client.target.cluster,
        now=time.time(),
        view=view,
        view_error=view_error,
        nodes=nodes,
        unreachable=unreachable,
        etcd=etcd_facts,
        haproxy=haproxy,
        haproxy_note=note,
    )
