"""A worker process of the fleet bench: some clusters (bench/fleet_member.py), driven over stdin.

    python -m bench.fleet_worker --first 1 --count 10 --endpoints 127.0.180.21:2379,... --network 181

Each line read on stdin is a command; each answer is one JSON line on stdout:
``status`` (how many of its clusters are healthy), ``mark`` (start a measuring window: forget the
latencies, note the CPU time), ``report`` (the window: every etcd call's round trip by method,
errors, this process's CPU seconds and RSS), ``stop`` (stop every member and exit). A closed
stdin stops it too: the worker never outlives the bench.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.fleet_member import FleetCluster, Latencies
from pgwarden.model import Address

# Between two clusters' starts: 150 agents bootstrapping in the same second is a thundering herd
# of raft writes (initialize, config, leader, members) the idle figures are not about.
STAGGER = 0.2


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size from /proc (kB -> MiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Worker:
    def __init__(self, clusters: list[FleetCluster], latencies: Latencies) -> None:
        self.clusters = clusters
        self.latencies = latencies
        self._marked = (time.monotonic(), cpu_seconds(), self.cycles())

    def cycles(self) -> int:
        return sum(m.cycles for c in self.clusters for m in c.members.values())

    def answer(self, command: str) -> dict[str, Any]:
        if command == "status":
            return {
                "healthy": sum(c.healthy() for c in self.clusters),
                "led": sum(len(c.leaders()) == 1 for c in self.clusters),
                "clusters": len(self.clusters),
                "errors": self.latencies.take()["errors"],
            }
        if command == "mark":
            self.latencies.reset()
            self._marked = (time.monotonic(), cpu_seconds(), self.cycles())
            return {"marked": True}
        if command == "report":
            started, cpu, cycles = self._marked
            return {
                "seconds": time.monotonic() - started,
                "cpu_seconds": cpu_seconds() - cpu,
                "rss_mib": rss_mib(),
                "threads": threading.active_count(),
                "healthy": sum(c.healthy() for c in self.clusters),
                "cycles": self.cycles() - cycles,
                **self.latencies.take(),
            }
        return {"error": f"unknown command {command!r}"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--endpoints", required=True, help="host:port,... of the etcd members")
    parser.add_argument("--network", type=int, required=True, help="third octet of the members' addresses")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    endpoints = [Address(h, int(p)) for h, _, p in (e.rpartition(":") for e in args.endpoints.split(","))]
    latencies = Latencies()
    clusters = [
        FleetCluster(i, endpoints, args.network, latencies)
        for i in range(args.first, args.first + args.count)
    ]
    try:
        for c in clusters:
            c.start()
            time.sleep(STAGGER)
        worker = Worker(clusters, latencies)
        for line in sys.stdin:
            command = line.strip()
            if command == "stop":
                break
            print(json.dumps(worker.answer(command)), flush=True)
    finally:
        for c in clusters:
            c.stop()


if __name__ == "__main__":
    main()
