"""etcd leader elections under writes: does the primary ride them out, or stop (or fail over)?

A writer inserts a row every 20 ms through HAProxy's write port while the etcd leader is killed
(SIGKILL) ``kills`` times in a row; after each kill the member stays down for ``hold`` seconds
(long enough for any lease the election could cost to run out), then is started again and the
next kill waits until all three members are healthy. A *stop* is the primary's postmaster gone
(a new postmaster PID, or none) after a kill: an etcd election must cost neither a stop nor a
failover.

How long an election takes depends on the machine's load (1.1-1.8 s here when quiet, 2-2.8 s
when busy). ``stretch`` makes it last longer, for exploring: one surviving member is frozen
(SIGSTOP) for that long right after the kill, and the other cannot win a vote without it. It is
not a precise knob: once thawed, the frozen member still believes in the dead leader for a
whole election timeout (etcd's check-quorum), so with ``--stretch 2.5`` elections took 3.7-5.6 s.
Run alone: ``.venv/bin/python -m bench.elections [--kills 20] [--stretch S] [--system pgwarden]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from bench.cluster import ClusterUnderTest
from pgwarden.drill.writer import Writer
from pgwarden.postgres.probe import postmaster_pid

KILLS = 20
TOLERATED = 2.5  # the longest etcd election the defaults must ride out (docs/timing.md)
HOLD = 6.0  # seconds the killed member stays down: past any lease deadline the kill could cost
WRITE_INTERVAL = 0.02
_SETTLE_TIMEOUT = 60.0


@dataclass
class ElectionsOutcome:
    kills: int = 0
    stops: int = 0  # the primary's postmaster replaced (stopped and started again) or gone
    failovers: int = 0  # another node primary after the kill
    elections_s: list[float] = field(default_factory=list)  # kill -> a surviving member leads
    longest_gap_s: float = 0.0  # longest time between acknowledged writes, over all kills
    events: list[str] = field(default_factory=list)  # one line per kill that cost a stop or failover

    def figures(self) -> dict[str, float]:
        return {
            "election_stops": float(self.stops),
            "election_failovers": float(self.failovers),
            "election_gap": self.longest_gap_s,
            "election_time": statistics.median(self.elections_s) if self.elections_s else 0.0,
            "election_slow": float(sum(e > TOLERATED for e in self.elections_s)),
        }


def etcd_leader(endpoints: list[str], members: list[int]) -> int | None:
    """Which of ``members`` leads etcd, as they report it (None while nobody does)."""
    ids: dict[str, int] = {}
    leader = None
    for i in members:
        try:
            url = f"http://{endpoints[i]}/v3/maintenance/status"
            status = httpx.post(url, json={}, timeout=0.5, trust_env=False).json()
            ids[str(status["header"]["member_id"])] = i
            leader = str(status.get("leader") or "") or leader
        except (httpx.HTTPError, ValueError, KeyError):
            continue
    return ids.get(leader) if leader else None


def etcd_healthy(endpoints: list[str]) -> int:
    count = 0
    for endpoint in endpoints:
        try:
            reply = httpx.get(f"http://{endpoint}/health", timeout=1, trust_env=False).json()
            count += reply.get("health") == "true"
        except (httpx.HTTPError, ValueError, AttributeError):
            continue
    return count


def _settle(cluster: ClusterUnderTest) -> tuple[int, int, int]:
    """Wait until all etcd members are healthy, one leads, and the cluster has one primary;
    returns (etcd leader, primary, its postmaster PID)."""
    endpoints = cluster.etcd_endpoints()
    deadline = time.monotonic() + _SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        leader = etcd_leader(endpoints, list(range(len(endpoints))))
        primary = cluster.primary_index()
        if leader is not None and primary is not None and etcd_healthy(endpoints) == len(endpoints):
            pid = postmaster_pid(str(cluster.nodes[primary].data_dir))
            if pid is not None:
                return leader, primary, pid
        time.sleep(0.2)
    raise AssertionError(f"{cluster.label}: etcd or the cluster not settled after {_SETTLE_TIMEOUT:.0f} s")


def _wait_new_leader(endpoints: list[str], survivors: list[int], since: float) -> float:
    while time.monotonic() - since < 15:
        if etcd_leader(endpoints, survivors) is not None:
            return time.monotonic() - since
        time.sleep(0.02)
    raise AssertionError("no new etcd leader within 15 s of killing the old one")


@contextlib.contextmanager
def _frozen(pid: int | None) -> Iterator[None]:
    if pid is None:
        yield
        return
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def kill_once(
    cluster: ClusterUnderTest, outcome: ElectionsOutcome, hold: float, stretch: float = 0.0
) -> None:
    """One election: kill the etcd leader (freezing a survivor for ``stretch`` seconds), hold it
    down, start it again; count what it cost."""
    endpoints = cluster.etcd_endpoints()
    leader, primary, pid = _settle(cluster)
    survivors = [i for i in range(len(endpoints)) if i != leader]
    frozen = cluster.etcd_pid(survivors[0]) if stretch > 0 else None
    killed_at = time.monotonic()
    cluster.kill_etcd(leader)
    try:
        with _frozen(frozen):
            time.sleep(max(0.0, killed_at + stretch - time.monotonic()))
        outcome.elections_s.append(_wait_new_leader(endpoints, survivors, killed_at))
        time.sleep(max(0.0, killed_at + hold - time.monotonic()))
    finally:
        cluster.start_etcd(leader)
    outcome.kills += 1
    after = postmaster_pid(str(cluster.nodes[primary].data_dir))
    if after != pid:
        outcome.stops += 1
        outcome.events.append(
            f"kill {outcome.kills}: {cluster.nodes[primary].name}'s postmaster {pid} -> {after}"
            f" (election {outcome.elections_s[-1]:.2f} s)"
        )
    deadline = time.monotonic() + _SETTLE_TIMEOUT
    now_primary = cluster.primary_index()
    while now_primary is None and time.monotonic() < deadline:
        time.sleep(0.2)
        now_primary = cluster.primary_index()
    if now_primary != primary:
        outcome.failovers += 1
        outcome.events.append(f"kill {outcome.kills}: primary {primary} -> {now_primary}")


def elections(
    cluster: ClusterUnderTest, kills: int = KILLS, hold: float = HOLD, stretch: float = 0.0
) -> ElectionsOutcome:
    """``kills`` etcd leader kills in a row under a writer through HAProxy."""
    cluster.wait_healthy(240)
    outcome = ElectionsOutcome()
    table = f"bench_elections_{time.monotonic_ns() % 10**9}"
    bound = kills * (hold + 2 * _SETTLE_TIMEOUT) + 60
    writer = Writer(cluster.router_conninfo(1), table=table, interval=WRITE_INTERVAL, max_seconds=bound)
    writer.prepare()
    with writer:
        assert writer.wait_for_acks(25, 30), f"{cluster.label}: no writes before the first kill"
        started = time.monotonic()
        for _ in range(kills):
            kill_once(cluster, outcome, hold, stretch)
        assert writer.wait_for_acks(25, 60), f"{cluster.label}: no writes after the last kill"
    outcome.longest_gap_s = writer.report.longest_gap(after=started)
    return outcome


def main() -> None:
    from bench.run import SYSTEMS  # the systems' table imports the plan, which imports us

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=KILLS)
    parser.add_argument("--hold", type=float, default=HOLD)
    parser.add_argument("--stretch", type=float, default=0.0, help="seconds each election is made to last")
    parser.add_argument("--system", choices=sorted(SYSTEMS), default="pgwarden")
    args = parser.parse_args()
    with SYSTEMS[args.system][1]() as cluster:
        outcome = elections(cluster, args.kills, args.hold, args.stretch)
    report = {
        **outcome.figures(),
        "kills": outcome.kills,
        "elections_s": [round(x, 2) for x in outcome.elections_s],
        "events": outcome.events,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
