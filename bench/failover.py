"""Failover scenarios on a cluster under test: node loss, PostgreSQL crash, switchover, rejoin.

A writer inserts a numbered row every 20 ms through HAProxy's write port (a new connection after
any error, ``connect_timeout=1``). Recovery time is from the fault to the first acknowledged
write after it; a write gap is the longest time between two acknowledged writes; lost writes are
acknowledged ids missing from the new primary afterwards.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import psycopg

from bench.cluster import ClusterUnderTest
from bench.crash_timeline import CrashWatch, Timeline
from pgwarden.drill.writer import Writer, missing_ids

WRITE_INTERVAL = 0.02
ACKS = 25  # acknowledged writes that show the cluster writable, before and after a fault
RECOVERY_BOUND = 150.0  # Patroni's default ttl is 30 s; anything beyond this is a failure


@dataclass
class FaultOutcome:
    recovery_s: float  # fault -> first acknowledged write
    longest_gap_s: float
    lost: int  # acknowledged writes missing afterwards
    primary_before: int
    primary_after: int | None = None
    rejoin_s: float | None = None
    timeline: Timeline | None = None  # a PostgreSQL crash's split (bench/crash_timeline.py)


def _table(kind: str) -> str:
    return f"bench_{kind}_{time.monotonic_ns() % 10**9}"


def _under_writes(
    cluster: ClusterUnderTest,
    kind: str,
    arm: Callable[[], Callable[[], None]],
    watch: CrashWatch | None = None,
) -> FaultOutcome:
    """Inject a fault while the writer writes; wait until writes are acknowledged again.

    ``arm`` is called once the writer is connected and returns the fault itself: a kill must
    find its victims (including the writer's backend) before the clock starts, so that the
    fault takes microseconds. A ``watch`` starts its pollers right after the fault."""
    primary = cluster.primary_index()
    assert primary is not None, f"{cluster.label}: no single primary before the fault"
    router = cluster.router_conninfo(1)
    writer = Writer(router, table=_table(kind), interval=WRITE_INTERVAL, max_seconds=RECOVERY_BOUND + 60)
    writer.prepare()
    with writer:
        assert writer.wait_for_acks(ACKS, 30), f"{cluster.label}: no writes before the fault"
        fault = arm()
        started = time.monotonic()
        fault()
        if watch is not None:
            watch.crashed()
        faulted = time.monotonic()  # a switchover request returns when it is done
        recovered = writer.wait_for_acks(ACKS, RECOVERY_BOUND)
    report = writer.report
    assert recovered, f"{cluster.label}: no write acknowledged within {RECOVERY_BOUND:.0f} s of the {kind}"
    back = recovered_at(report.ack_times, faulted)
    timeline = watch.finish(report, back) if watch is not None else None
    lost = missing_ids(cluster.router_conninfo(5), writer.table, report.acknowledged)
    return FaultOutcome(
        recovery_s=back - faulted,
        longest_gap_s=report.longest_gap(after=started),
        lost=len(lost),
        primary_before=primary,
        primary_after=cluster.primary_index(),
        timeline=timeline,
    )


def recovered_at(ack_times: list[float], faulted: float) -> float:
    """When writes came back: the end of the longest gap between acknowledgements that ends after
    the fault. Not simply the first acknowledgement after it: an INSERT the old primary committed
    just before dying can be read by the client just after (and, asynchronous, even be lost)."""
    before = [t for t in ack_times if t <= faulted][-1:]
    after = [t for t in ack_times if t > faulted]
    pairs = list(itertools.pairwise(before + after))
    if not pairs:
        return after[0]
    return max(pairs, key=lambda p: p[1] - p[0])[1]


def wait_streaming(cluster: ClusterUnderTest, name: str, timeout: float) -> float:
    """Seconds until ``name`` streams from the current primary."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        p = cluster.primary_index()
        if p is not None and name in cluster.streaming_standbys(p):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{cluster.label}: {name} not streaming {timeout:.0f} s after its agent restarted")


def node_loss(cluster: ClusterUnderTest, kind: str = "nodeloss", sync: bool = False) -> FaultOutcome:
    """SIGKILL the primary's agent and PostgreSQL; then restart the agent and time its rejoin (the
    old primary rewinds and streams from the new one). With ``sync``, the fault waits until a
    synchronous standby is in force."""
    cluster.wait_healthy(240, sync=sync)
    p = cluster.primary_index()
    assert p is not None
    outcome = _under_writes(cluster, kind, lambda: partial(cluster.kill, cluster.node_processes(p)))
    cluster.start_agent(p)
    outcome.rejoin_s = wait_streaming(cluster, cluster.nodes[p].name, 180)
    return outcome


def postgres_crash(cluster: ClusterUnderTest) -> FaultOutcome:
    """SIGKILL the primary's postmaster and its children; the agent stays alive. The outcome's
    ``timeline`` says where the time went (bench/crash_timeline.py)."""
    cluster.wait_healthy(240)
    p = cluster.primary_index()
    assert p is not None
    watch = CrashWatch(cluster, p)
    arm = lambda: partial(cluster.kill, cluster.postgres_processes(p))  # noqa: E731
    return _under_writes(cluster, "crash", arm, watch)


def switchover(cluster: ClusterUnderTest) -> FaultOutcome:
    """A planned switchover to a streaming standby through the leader's REST API."""
    cluster.wait_healthy(240)
    p = cluster.primary_index()
    assert p is not None
    candidate = next(j for j in range(len(cluster.nodes)) if j != p)
    answers: list[str] = []

    def request() -> None:
        reply = cluster.switchover(p, candidate)
        answers.append(f"{reply.status_code} {reply.text.strip()[:200]}")
        assert reply.status_code == 200, f"{cluster.label}: switchover answered {answers[-1]}"

    outcome = _under_writes(cluster, "switchover", lambda: request)
    assert outcome.primary_after in (candidate, None), f"{cluster.label}: primary is not the candidate"
    return outcome


def wait_caught_up(cluster: ClusterUnderTest, timeout: float = 600.0) -> float:
    """Seconds until every standby has replayed all but 1 MB of the primary's WAL (after a load)."""
    started = time.monotonic()
    query = (
        "SELECT count(*) FILTER (WHERE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) < 1048576),"
        " count(*) "
        "FROM pg_stat_replication WHERE state = 'streaming'"
    )
    while time.monotonic() - started < timeout:
        p = cluster.primary_index()
        if p is not None:
            try:
                with psycopg.connect(cluster.node_conninfo(p), autocommit=True) as conn:
                    row = conn.execute(query).fetchone()
                if row and row[0] == row[1] == len(cluster.nodes) - 1:
                    return time.monotonic() - started
            except psycopg.Error:
                pass
        time.sleep(0.5)
    raise AssertionError(f"{cluster.label}: standbys not caught up after {timeout:.0f} s")


def checkpoint_everywhere(cluster: ClusterUnderTest) -> None:
    """CHECKPOINT on the primary, then a restartpoint on every standby: after a bulk load, so that
    a failover does not start halfway through a checkpoint spanning the whole load (pg_rewind
    would then need WAL from the start of the load, which the new primary has recycled)."""
    p = cluster.primary_index()
    assert p is not None
    order = [p] + [i for i in range(len(cluster.nodes)) if i != p]
    for i in order:
        with psycopg.connect(cluster.node_conninfo(i, 5), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        if i == p:
            wait_caught_up(cluster)
