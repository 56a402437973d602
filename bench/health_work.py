"""The health endpoint while the agents work: a standby re-cloned from the primary, and a failover.

HAProxy keeps asking every agent through both, and a check that waits behind the agent's work
(a cycle running pg_basebackup's job, a promotion) is a backend marked down or up late. So the
same ApacheBench load as bench.health (a new connection per request, ``OPTIONS``, concurrency
8), while:

- **clone**: a standby is reinitialized (``POST /reinitialize``: its data directory wiped and
  cloned again from the primary, ~1 GB after the ``load`` phase) 1 s into a load of
  ``CLONE_SECONDS``; twice: with the load on the primary's agent (``/primary``: its node serves
  the base backup), then on the cloning standby's own agent (``/health``: 503 while it has no
  PostgreSQL, which is an answer, not a failure). ``health_clone_s`` (reinitialize -> streaming)
  says how much of the load the clone covered.
- **failover**: the primary's node is SIGKILLed (agent and PostgreSQL) 1 s into a load of
  ``FAILOVER_SECONDS`` on a standby's agent (``/health``: its PostgreSQL runs throughout, as a
  standby, then perhaps as the new primary); then the old primary is started again and rejoins.

Every call is bounded: ab by its time or request count, the clone and the rejoin by timeouts.
"""

from __future__ import annotations

import threading
import time

import httpx

from bench import failover, health
from bench.cluster import ClusterUnderTest

CONCURRENCY = 8
FAILOVER_SECONDS = 12.0  # covers pgwarden's failover (~4 s); Patroni's may outlast it
KILL_AFTER = 1.0
CLONE_TIMEOUT = 900.0
CLONE_SECONDS = 8.0  # of load per clone: about a 1 GB clone on this machine (health_clone_s says)
RUNS = 3  # at most, per scenario: each clones ~1 GB or fails over and rejoins
LOAD_REQUESTS = 200_000  # more than fit in CLONE_SECONDS or FAILOVER_SECONDS: the time ends a load
_FIGURES = ("rps", "p50", "p99")
CLONE_KEYS = (
    *(f"health_clone_{f}_{CONCURRENCY}" for f in _FIGURES),
    *(f"health_cloning_{f}_{CONCURRENCY}" for f in _FIGURES),
    "health_clone_s",
)
FAILOVER_KEYS = tuple(f"health_failover_{f}_{CONCURRENCY}" for f in _FIGURES)


def _standby(cluster: ClusterUnderTest, primary: int) -> int:
    return next(i for i in range(len(cluster.nodes)) if i != primary)


def _measured(run: health.HealthRun, prefix: str) -> dict[str, float]:
    errors = run.failed - run.non_2xx
    assert errors == 0, f"{errors} of {run.requests} health requests got no answer ({prefix})"
    c = CONCURRENCY
    return {
        f"{prefix}_rps_{c}": run.per_second,
        f"{prefix}_p50_{c}": run.p50_ms,
        f"{prefix}_p99_{c}": run.p99_ms,
    }


def during_clone(cluster: ClusterUnderTest, requests: int) -> dict[str, float]:
    """Both agents' health answers while a standby is cloned again from the primary: one clone
    with the load on the primary's agent, then one with it on the cloning standby's."""
    figures: dict[str, float] = {}
    for prefix, on_primary in (("health_clone", True), ("health_cloning", False)):
        run, took = _one_clone(cluster, requests, on_primary)
        figures |= _measured(run, prefix)
        if on_primary:
            figures["health_clone_s"] = took
    return figures


def _one_clone(cluster: ClusterUnderTest, requests: int, on_primary: bool) -> tuple[health.HealthRun, float]:
    """The load on one agent with a standby re-cloned KILL_AFTER into it; the seconds from the
    reinitialize until the standby streams again."""
    cluster.wait_healthy(240)
    p = cluster.primary_index()
    assert p is not None, "no primary"
    s = _standby(cluster, p)
    target, name = cluster.nodes[p if on_primary else s], cluster.nodes[s].name
    sent: list[float] = []
    left: list[float] = []  # when the standby was first seen not streaming (cloning)
    done = threading.Event()

    def reinitialize() -> None:
        sent.append(time.monotonic())
        reply = httpx.post(
            f"{cluster._api(s)}/reinitialize",  # https:// where the cluster serves its API over TLS
            json={},
            auth=cluster.api_auth(),
            timeout=30,
            verify=cluster.api_verify(),
            trust_env=False,
        )
        assert reply.status_code in (200, 202), f"reinitialize: {reply.status_code} {reply.text[:200]}"

    def watch() -> None:
        while not done.is_set() and not left:
            if not _settled(cluster, s):
                left.append(time.monotonic())
            done.wait(0.2)

    asker, watcher = threading.Timer(KILL_AFTER, reinitialize), threading.Timer(KILL_AFTER, watch)
    asker.start()
    watcher.start()
    try:
        run = health.measure(
            target.host, target.api_port, requests, CONCURRENCY,
            path="/primary" if on_primary else "/health", seconds=CLONE_SECONDS,
        )  # fmt: skip
    finally:
        done.set()
        asker.join(35)
        watcher.join(35)
    assert sent, "the reinitialize was not sent"
    assert left, "the standby's agent said it ran as before throughout the load: no clone ran during it"
    limit = time.monotonic() + CLONE_TIMEOUT
    while not _settled(cluster, s) and time.monotonic() < limit:
        time.sleep(0.2)
    failover.wait_streaming(cluster, name, max(1.0, limit - time.monotonic()))
    return run, time.monotonic() - sent[0]


def _settled(cluster: ClusterUnderTest, i: int) -> bool:
    """Node ``i``'s agent says its PostgreSQL runs as a standby (Patroni 4: ``streaming``; while
    cloning both say otherwise). pg_stat_replication alone cannot tell: pg_basebackup's own WAL
    stream shows there as ``streaming`` under the member's name while the clone runs."""
    status = cluster.status(i) or {}
    return status.get("state") in ("running", "streaming") and status.get("role") in ("replica", "standby")


def during_failover(cluster: ClusterUnderTest, requests: int) -> dict[str, float]:
    """A standby's agent's health answers across the primary's node loss."""
    cluster.wait_healthy(240)
    p = cluster.primary_index()
    assert p is not None, "no primary"
    standby = cluster.nodes[_standby(cluster, p)]
    victims = cluster.node_processes(p)
    killer = threading.Timer(KILL_AFTER, cluster.kill, (victims,))
    killer.start()
    try:
        run = health.measure(
            standby.host, standby.api_port, requests, CONCURRENCY, path="/health", seconds=FAILOVER_SECONDS
        )
    finally:
        killer.join(KILL_AFTER + 5)
    # The old primary rejoins before the next run (its wait_healthy); a slow rejoin is not this
    # scenario's figure and must not throw away the load's (Patroni's took > 300 s once).
    cluster.start_agent(p)
    return _measured(run, "health_failover")
