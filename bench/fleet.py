"""Clusters per etcd: N clusters of 3 members on one real 3-member etcd; etcd's load and one cluster's RTO.

    .venv/bin/python -m bench.fleet --clusters 1,10,25,50 --idle 60 --trials 3

For each N, on a fresh etcd 3.4 of three members on loopback (tests/support/etcd.py): N clusters
of three members each run the real agent cycle, lease keeper and watch on the real etcd client,
over a fake PostgreSQL (bench/fleet_member.py says exactly what is real). Cluster 0 runs in this
process; the others in worker processes of ``--per-process`` clusters (bench/fleet_worker.py), so
the harness's own threads do not share one interpreter lock. Once every cluster has one leader
and two streaming standbys: an idle window of ``--idle`` seconds between two scrapes of etcd's
``/metrics`` (bench/etcd_metrics.py), with the client-side round trip of every etcd call; then
``--trials`` times, cluster 0's leader is killed dead (no revoke, its fake PostgreSQL SIGKILLed)
while the others idle, timed until another member holds the leader key and has promoted.
The figures go to ``--json`` and a summary to stdout (docs/scaling.md, "Clusters per etcd").
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from bench import etcd_metrics
from bench.fleet_member import FleetCluster, Latencies
from bench.fleet_table import growth, table
from bench.fleet_worker import cpu_seconds, rss_mib
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.dcs.keys import ClusterKeys
from pgwarden.model import Address, EtcdSettings
from tests.support.etcd import EtcdCluster

REPO = Path(__file__).resolve().parent.parent
WATCH_CALL = "watch"  # a long poll held until an event or its timeout: a count, not a latency


class Fleet:
    """Cluster 0 here, clusters 1..n-1 in worker processes; a context manager."""

    def __init__(self, n: int, endpoints: Sequence[Address], network: int, per_process: int = 10) -> None:
        self.n = n
        self.endpoints = list(endpoints)
        self.network = network
        self.per_process = per_process
        self.latencies = Latencies()
        self.victim = FleetCluster(0, self.endpoints, network, self.latencies)
        self.workers: list[subprocess.Popen[str]] = []
        self._marked = (time.monotonic(), cpu_seconds())

    def __enter__(self) -> Fleet:
        try:
            self.victim.start()
            endpoints = ",".join(f"{e.host}:{e.port}" for e in self.endpoints)
            for first in range(1, self.n, self.per_process):
                count = min(self.per_process, self.n - first)
                command = [
                    sys.executable,
                    "-m",
                    "bench.fleet_worker",
                    "--first",
                    str(first),
                    "--count",
                    str(count),
                ]
                command += ["--endpoints", endpoints, "--network", str(self.network)]
                self.workers.append(
                    subprocess.Popen(
                        command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
                    )
                )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:
            try:
                if w.stdin is not None:
                    w.stdin.write("stop\n")
                    w.stdin.close()
            except OSError:
                pass
        self.victim.stop()
        for w in self.workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()  # by its PID: a worker that did not stop on request
                w.wait(10)

    def _ask(self, command: str) -> list[dict[str, Any]]:
        for w in self.workers:
            assert w.stdin is not None
            w.stdin.write(command + "\n")
            w.stdin.flush()
        answers = []
        for w in self.workers:
            assert w.stdout is not None
            line = w.stdout.readline()
            if not line:
                raise RuntimeError(f"fleet worker {w.pid} exited (code {w.poll()})")
            answers.append(json.loads(line))
        return answers

    def healthy(self) -> int:
        return int(self.victim.healthy()) + sum(int(a["healthy"]) for a in self._ask("status"))

    def wait_healthy(self, timeout: float) -> float:
        started = time.monotonic()
        while (count := self.healthy()) < self.n:
            if time.monotonic() - started > timeout:
                raise RuntimeError(
                    f"only {count} of {self.n} clusters healthy after {timeout:.0f} s: {self.diagnosis()}"
                )
            time.sleep(0.5)
        return time.monotonic() - started

    def diagnosis(self) -> str:
        """Why clusters are not healthy: how many have one leader, and the etcd calls that failed."""
        answers = self._ask("status")
        led = int(len(self.victim.leaders()) == 1) + sum(int(a["led"]) for a in answers)
        errors: dict[str, int] = defaultdict(int)
        for part in (self.latencies.take()["errors"], *(a["errors"] for a in answers)):
            for method, count in part.items():
                errors[method] += count
        return f"{led} with exactly one leader; failed etcd calls since the start: {dict(errors)}"

    def mark(self) -> None:
        self.latencies.reset()
        self._marked = (time.monotonic(), cpu_seconds())
        self._ask("mark")

    def report(self) -> dict[str, Any]:
        """The window since ``mark``: etcd calls by method (rate, p50/p99) and the harness's cost."""
        started, cpu = self._marked
        mine = {
            "seconds": time.monotonic() - started,
            "cpu_seconds": cpu_seconds() - cpu,
            "rss_mib": rss_mib(),
        }
        parts = [{**mine, **self.latencies.take()}, *self._ask("report")]
        seconds = mine["seconds"]
        calls: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        for p in parts:
            for method, samples in p["calls"].items():
                calls[method] += samples
            for method, count in p["errors"].items():
                errors[method] += count
        return {
            "client_calls": {m: _summary(s, seconds, m != WATCH_CALL) for m, s in sorted(calls.items())},
            "client_errors": dict(errors),
            "client_calls_per_s": round(sum(len(s) for s in calls.values()) / seconds, 1),
            "harness": {
                "processes": len(parts),
                "cpu_percent": round(100 * sum(p["cpu_seconds"] for p in parts) / seconds, 1),
                "rss_mib": round(sum(p["rss_mib"] for p in parts), 1),
                "cycles_per_s": round(sum(p.get("cycles", 0) for p in parts[1:]) / seconds, 1),
            },
        }

    def rto_trial(self, timeout: float = 60.0) -> dict[str, Any]:
        """Kill cluster 0's leader dead; seconds until the key is gone, taken, and a new primary."""
        c = self.victim
        deadline = time.monotonic() + timeout
        while not c.healthy():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{c.name} not healthy before the trial")
            time.sleep(0.1)
        old = c.leaders()[0]
        lease_sent = c.members[old].cycle.lease.sent_at
        gone = _KeyGone(self.endpoints, c.name)
        killed = time.monotonic()
        c.kill_member(old)
        promoted = None
        while promoted is None and time.monotonic() < killed + timeout:
            if c.leaders():
                promoted = time.monotonic()
            time.sleep(0.005)
        deadline = time.monotonic() + 2.0  # the watch's answer may trail the promotion a little
        while gone.taken is None and time.monotonic() < deadline:
            time.sleep(0.01)
        gone.stop()
        taken = gone.taken
        new = c.leaders()
        c.start_member(old)  # back as a standby (the fake rewinds it) for the next trial
        if promoted is None or taken is None:
            raise RuntimeError(f"{c.name}: no new primary within {timeout:.0f} s of killing {old}")
        return {
            "killed": old,
            "new_leader": new[0] if new else None,
            "lease_age_at_kill_s": round(killed - lease_sent, 3) if lease_sent is not None else None,
            "key_gone_s": round(gone.at - killed, 3) if gone.at is not None else None,
            "key_taken_s": round(taken - killed, 3),
            "key_holder": gone.holder,
            "promoted_s": round(promoted - killed, 3),
        }


class _KeyGone:
    """Watches one cluster's leader key from outside the cluster: when etcd deletes it, and when
    a member writes it again (``taken``: monotonic time, ``holder``: the name it holds)."""

    def __init__(self, endpoints: Sequence[Address], cluster: str) -> None:
        self.store = EtcdStore.connect(EtcdSettings(hosts=tuple(endpoints)), timeout=2.0)
        self.key = ClusterKeys(cluster, "/pgwarden").leader
        self.start = self.store.get_prefix(self.key).revision + 1
        self.at: float | None = None
        self.taken: float | None = None
        self.holder: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.taken is None:
            try:
                events = self.store.watch(self.key, self.start, 1.0)
            except Exception:
                continue
            for e in events:
                self.start = max(self.start, e.mod_revision + 1)
                if e.key != self.key:
                    continue
                if e.kind == "delete" and self.at is None:
                    self.at = time.monotonic()
                elif e.kind == "put" and self.at is not None and self.taken is None:
                    self.taken, self.holder = time.monotonic(), e.value

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(3)
        self.store.close()


def _summary(samples: list[float], seconds: float, latency: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"count": len(samples), "per_s": round(len(samples) / seconds, 2)}
    if latency and samples:
        ordered = sorted(samples)
        out["p50_ms"] = round(statistics.median(ordered) * 1000, 2)
        out["p99_ms"] = round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2)
        out["max_ms"] = round(ordered[-1] * 1000, 2)
    return out


def measure(
    n: int, idle: float, trials: int, network: int, per_process: int, settle: float | None = None
) -> dict[str, Any]:
    """One size: a fresh etcd, ``n`` clusters, the idle window, then the RTO trials.

    ``settle``: wait at most that long for every cluster to be healthy, then measure anyway,
    recording how many were (None: wait 60 s + 3 s per cluster, and fail when they are not)."""
    hosts = tuple(f"127.0.{network}.{21 + i}" for i in range(3))
    with EtcdCluster(hosts=hosts) as etcd:
        urls = [etcd.url(i) for i in range(3)]
        with Fleet(n, etcd.endpoints, network + 1, per_process) as fleet:
            try:
                ready: float | None = fleet.wait_healthy(60 + 3 * n if settle is None else settle)
            except RuntimeError as exc:
                if settle is None:
                    raise
                ready = None
                say(f"measuring anyway: {exc}")
            healthy_before = fleet.healthy()
            say(f"{healthy_before} of {n} clusters healthy; settling, then {idle:.0f} s idle")
            time.sleep(10)  # bootstrap writes (initdb, clones, history) out of the window
            fleet.mark()
            before = [etcd_metrics.scrape(u) for u in urls]
            started = time.monotonic()
            time.sleep(idle)
            after = [etcd_metrics.scrape(u) for u in urls]
            window = etcd_metrics.window(urls, before, after, time.monotonic() - started)
            client = fleet.report()
            leases = etcd_metrics.lease_count(urls[0])
            healthy_after_idle = fleet.healthy()
            rto = []
            for i in range(trials):
                rto.append(fleet.rto_trial())
                say(f"trial {i + 1}: {rto[-1]}")
            healthy_after_trials = fleet.healthy()
    return {
        "clusters": n,
        "members": 3 * n,
        "ready_s": None if ready is None else round(ready, 1),
        "healthy_before_idle": healthy_before,
        "etcd": window,
        "leases": leases,
        "healthy_after_idle": healthy_after_idle,
        "healthy_after_trials": healthy_after_trials,
        **client,
        "rto": rto,
    }


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] [fleet] {text}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clusters", default="1,10,25,50", help="comma-separated sizes, each on a fresh etcd"
    )
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the idle window")
    parser.add_argument("--trials", type=int, default=3, help="RTO trials per size")
    parser.add_argument("--per-process", type=int, default=10, help="clusters per worker process")
    parser.add_argument(
        "--network", type=int, default=180, help="third octet: etcd here, members on the next ones"
    )
    parser.add_argument("--json", default="reports/fleet.json")
    parser.add_argument(
        "--settle", type=float, help="wait at most this long for health, then measure anyway (default: fail)"
    )
    args = parser.parse_args()
    # A killed member's last cycle warns that it cannot write: expected, not worth a line.
    logging.basicConfig(level=logging.ERROR)
    results = []
    for n in (int(x) for x in args.clusters.split(",")):
        say(f"--- {n} clusters of 3 on one 3-member etcd ---")
        results.append(measure(n, args.idle, args.trials, args.network, args.per_process, args.settle))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + table(results))
    if len(results) > 1:
        print("\n" + growth(results[0], results[-1]))


if __name__ == "__main__":
    main()
