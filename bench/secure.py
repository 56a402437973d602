"""What the secure stack costs: etcd over TLS with client certificates and etcd auth (and the
agents' APIs over mTLS, HAProxy checking over TLS) beside plaintext, in the same run (the
``secure`` phase of bench.plan; alone: ``python -m bench.run --systems pgwarden --phases secure``).

Fresh 3-node clusters, alternately (ROUNDS times each) on the same machine and in the same way:
plaintext (the bench's default) and secure as ``pgwarden up`` starts it (``running_stack(secure=True)``:
etcd's default ``--auth-token-ttl``, 300 s, as in production). On each, while its agents run:

- **lease renewal latency**: a client built as an agent builds its own (``EtcdStore.connect``
  with node1's etcd settings, certificate and credentials, its source address, and the agent's
  per-request timeout ``retry_timeout / 2``) grants a lease and renews it with the keeper's
  request (``renew_lease``: the preferred member, hedged to every member after 100 ms) every
  RENEW_EVERY for RENEW_SECONDS, on its kept connection; p50 and p99 of each window.
- **cold renewal**: a new client's first renewal: a new connection, so TCP and (secure) the TLS
  handshake with the client certificate. etcd 3.4 does not check tokens on keepalives and the
  store sends none it does not have (dcs/etcd_auth.py), so no authentication is in it.
- **cold read**: a new client's first read of the cluster's keys (``get_prefix``): a new
  connection, and (secure) an auth token asked for first (etcd checks the password with bcrypt
  and replicates the token through raft): what a call pays when its token expired or was lost
  with a restarted member.
- **node-loss RTO**: bench.failover.node_loss, the same fault and writer as the main node-loss
  figure, on an unloaded database (the RTO does not depend on its size; the rejoin does).

Where a renewal's extra time goes (`breakdown`): three 3-member etcds alone, no agents, one
after the other: plaintext; TLS with client certificates and auth enabled, renewing without a
token (etcd 3.4 checks none on keepalives); and the same renewing with the token, as the agent
does once it has one. The first step is TLS (and an auth-enabled server), the second the token.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
from collections.abc import Callable

from bench.failover import node_loss
from bench.footprint import cpu_ticks
from bench.pgwarden_cluster import PgwardenCluster
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.local.etcd_security import EtcdUser
from pgwarden.model.cluster import DynamicConfig
from pgwarden.model.node import EtcdSettings
from tests.support.cluster import cluster_network
from tests.support.etcd import EtcdCluster

# plaintext; etcd TLS + client certificates + auth with the API plain; and secure as `pgwarden up`
# (the API over mTLS too): the middle one tells the etcd side's cost from the API side's.
MODES = ("plain", "etcdtls", "tls")
ROUNDS = 2  # plain, etcdtls, secure, plain, ...: fresh clusters, alternately
LABELS = {"plain": "pgwarden plaintext", "etcdtls": "pgwarden etcd TLS+auth", "tls": "pgwarden TLS+auth"}
RENEW_SECONDS = 20.0
# Faster than the keeper's 0.25 s, for more samples in the window; the connection is kept warm
# either way (KEEPALIVE in dcs/etcd.py is 60 s), so the pace does not change a renewal's cost.
RENEW_EVERY = 0.1
COLD_CLIENTS = 10
LEASE_TTL = 30

RENEWAL_KEYS = ("renew_p50", "renew_p99", "renew_cold", "read_cold", "cpu_etcd", "cpu_agents", "cpu_haproxy")
RTO_KEY = "secure_rto"
BREAKDOWN = ("plain", "tls", "token")  # etcd alone: plaintext, TLS + auth without a token, with one
BREAKDOWN_KEYS = tuple(f"renew_p50_etcd_{step}" for step in BREAKDOWN)
_USER = EtcdUser("bench", "bench-secret", "bench", "/bench/")


def key(metric: str, mode: str) -> str:
    """The results key of ``metric`` measured on the ``mode`` cluster (report.METRICS names it)."""
    return f"{metric}_{mode}"


def keys(mode: str) -> list[str]:
    """Every results key measured on the ``mode`` cluster."""
    return [key(metric, mode) for metric in (*RENEWAL_KEYS, RTO_KEY)]


def all_keys() -> list[str]:
    return [*BREAKDOWN_KEYS, *(k for mode in MODES for k in keys(mode))]


def cluster(mode: str) -> Callable[[], PgwardenCluster]:
    """The factory of the ``mode`` cluster, unstarted."""
    if mode == "etcdtls":
        return lambda: PgwardenCluster(label=LABELS[mode], etcd_tls=True)
    return lambda: PgwardenCluster(label=LABELS[mode], secure=mode == "tls")


def agent_settings(on: PgwardenCluster, i: int = 0) -> EtcdSettings:
    """Node ``i``'s etcd settings as its agent reads them: endpoints, TLS files, credentials and
    its own source address."""
    stack = on.stack
    assert stack is not None, "the cluster is not running"
    spec = stack.spec
    return dataclasses.replace(stack.etcd_settings(spec.node_name(i)), bind_address=spec.node_host(i))


def _timeout() -> float:
    return DynamicConfig().retry_timeout / 2  # what the agent gives each etcd request (agent/loop.py)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def renewals(on: PgwardenCluster, seconds: float = RENEW_SECONDS, every: float = RENEW_EVERY) -> list[float]:
    """Seconds each renewal of one lease took, on one warm client, for ``seconds``."""
    with EtcdStore.connect(agent_settings(on), _timeout()) as store:
        return _renew_for(store, store, seconds, every)


def _renew_for(owner: EtcdStore, renewer: EtcdStore, seconds: float, every: float) -> list[float]:
    """``owner`` grants a lease, ``renewer`` renews it every ``every`` for ``seconds``; the
    seconds each renewal took (the first, which makes the connection, not counted)."""
    samples: list[float] = []
    lease = owner.grant_lease(LEASE_TTL)
    try:
        renewer.renew_lease(lease, time.monotonic() + 5)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            renewer.renew_lease(lease, time.monotonic() + LEASE_TTL / 2)
            samples.append(time.perf_counter() - started)
            time.sleep(every)
    finally:
        owner.revoke(lease)
    return samples


def breakdown(seconds: float = RENEW_SECONDS) -> dict[str, float]:
    """Renewal p50 (ms) on etcd alone: plaintext, TLS + auth without a token, with the token."""
    hosts = tuple(f"{cluster_network()}.{21 + i}" for i in range(3))
    figures: dict[str, float] = {}
    with EtcdCluster(hosts) as plain, EtcdStore.connect(plain.settings(), _timeout()) as store:
        figures["renew_p50_etcd_plain"] = statistics.median(_renew_for(store, store, seconds, RENEW_EVERY))
    with (
        EtcdCluster(hosts, secure=True, users=[_USER]) as tls,
        EtcdStore.connect(tls.settings(_USER.name, _USER.password), _timeout()) as authed,
        EtcdStore.connect(tls.settings(), _timeout()) as tokenless,
    ):
        no_token = _renew_for(authed, tokenless, seconds, RENEW_EVERY)
        token = _renew_for(authed, authed, seconds, RENEW_EVERY)
    figures["renew_p50_etcd_tls"] = statistics.median(no_token)
    figures["renew_p50_etcd_token"] = statistics.median(token)
    return {k: v * 1000 for k, v in figures.items()}


def cold_calls(on: PgwardenCluster, count: int = COLD_CLIENTS) -> tuple[list[float], list[float]]:
    """Seconds of each new client's first renewal, and of each new client's first read."""
    settings = agent_settings(on)
    prefix = on.stack.spec.etcd_prefix if on.stack is not None else "/"
    renewed: list[float] = []
    read: list[float] = []
    with EtcdStore.connect(settings, _timeout()) as keeper:
        lease = keeper.grant_lease(LEASE_TTL)
        try:
            for _ in range(count):
                with EtcdStore.connect(settings, _timeout()) as fresh:
                    started = time.perf_counter()
                    fresh.renew_lease(lease, time.monotonic() + LEASE_TTL / 2)
                    renewed.append(time.perf_counter() - started)
                with EtcdStore.connect(settings, _timeout()) as fresh:
                    started = time.perf_counter()
                    fresh.get_prefix(prefix)
                    read.append(time.perf_counter() - started)
        finally:
            keeper.revoke(lease)
    return renewed, read


def _parts(on: PgwardenCluster) -> dict[str, list[int]]:
    """The PIDs whose CPU the window counts: etcd's members, the agents, HAProxy (PostgreSQL,
    the same in both stacks, left out)."""
    stack = on.stack
    assert stack is not None, "the cluster is not running"
    n = len(on.nodes)
    found = {
        "cpu_etcd": [on.etcd_pid(i) for i in range(3)],
        "cpu_agents": [on.agent_pid(i) for i in range(n)],
        "cpu_haproxy": [stack.pids.get("haproxy")],
    }
    return {part: [p for p in pids if p is not None] for part, pids in found.items()}


def _ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):  # gone: counts for nothing from then on
            total += cpu_ticks(pid)
    return total


def latency_figures(on: PgwardenCluster, mode: str) -> dict[str, float]:
    """One window of renewals (and the CPU the stack's parts used meanwhile, as % of one core)
    and one round of cold calls on ``on``, in milliseconds."""
    parts = _parts(on)
    before = {part: _ticks(pids) for part, pids in parts.items()}
    started = time.monotonic()
    warm = renewals(on)
    elapsed = time.monotonic() - started
    hz = os.sysconf("SC_CLK_TCK")
    cpu = {key(p, mode): (_ticks(pids) - before[p]) / hz / elapsed * 100 for p, pids in parts.items()}
    assert len(warm) >= 20, f"{on.label}: only {len(warm)} renewals in {RENEW_SECONDS:.0f} s"
    renewed, read = cold_calls(on)
    return {
        key("renew_p50", mode): statistics.median(warm) * 1000,
        key("renew_p99", mode): _percentile(warm, 0.99) * 1000,
        key("renew_cold", mode): statistics.median(renewed) * 1000,
        key("read_cold", mode): statistics.median(read) * 1000,
        **cpu,
    }


def rto(on: PgwardenCluster, mode: str) -> dict[str, float]:
    """One node loss on ``on``: its RTO in seconds (the old primary rejoins before it returns)."""
    return {key(RTO_KEY, mode): node_loss(on, kind=f"secure_{mode}").recovery_s}
