"""Where an idle agent's CPU goes, thread by thread, and what its cluster asks of etcd: this build
beside another one, both idling at the same time.

``python -m bench.idle_threads [--baseline SRC] [--windows 4] [--seconds 60]``
starts this build's pgwarden cluster (the test suite's running_stack; PGWARDEN_TEST_NETWORKS picks
its loopback networks) and, with ``--baseline``, a second one whose agents run from ``SRC`` (``git
archive main src``, say: bench.pgwarden_cluster.baseline), lets them settle, then measures both
over the same windows. Per window and build it prints figures that do not depend on the machine's
load:

- each agent's CPU seconds per minute (the process's CPU clock, nanoseconds), and its fence's;
- the primary's and one standby's CPU by thread (``/proc/PID/task/*/stat``, 10 ms ticks), named
  by py-spy when it is installed;
- etcd's requests per second by gRPC method over the cluster's three members, and the lease
  keep-alives per member (bench/etcd_load.py);
- the primary's lease keeper renewals in the window (``GET /diagnostics`` ``etcd.renewals.total``;
  builds before it: not shown), and each agent's cycles (``GET /events``): at idle, etcd's
  keep-alives should be the primary's cycles + its keeper's renewals + every agent's cycles (each
  keeps its member lease alive once a cycle).

Bounded: ``windows * seconds`` plus start-up; the clusters are stopped on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import etcd_load
from bench.footprint import fences
from bench.health_profile import thread_cpu
from bench.pgwarden_cluster import PgwardenCluster, baseline

SETTLE = 20.0  # after both clusters are healthy: start-up work (checkpoints, first slots) done


def process_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` so far, all threads (its CPU clock: nanoseconds, not ticks)."""
    return time.clock_gettime(((~pid) << 3) | 2)  # CPUCLOCK_SCHED of pid (clock_getcpuclockid)


def thread_names(pid: int) -> dict[int, str]:
    """Python's thread names of ``pid`` by thread id (py-spy dump; {} without py-spy)."""
    spy = shutil.which("py-spy")
    if spy is None:
        return {}
    try:
        out = subprocess.run(
            [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
        ).stdout
    except subprocess.SubprocessError:
        return {}
    return {int(m.group(1), 16 if m.group(1).startswith("0x") else 10): m.group(2)
            for m in re.finditer(r'^Thread (0x[0-9A-Fa-f]+|\d+) \(\w+\): "(.*)"$', out, re.M)}  # fmt: skip


def keepalives_by_member(urls: list[str]) -> list[float]:
    """LeaseKeepAlive messages each etcd member has received so far."""
    found = []
    with httpx.Client(timeout=5, trust_env=False) as client:
        for url in urls:
            requests, _ = etcd_load.parse(client.get(f"{url}/metrics").text)
            found.append(requests.get("LeaseKeepAlive", 0.0))
    return found


def _get(cluster: PgwardenCluster, i: int, path: str) -> Any:
    url = f"{cluster._api(i)}{path}"
    return httpx.get(url, timeout=3, auth=cluster.api_auth(), trust_env=False).json()


def cycles(cluster: PgwardenCluster, i: int) -> int | None:
    """Node ``i``'s cycles so far, as its decision log counts them (``GET /events``: runs of the
    same reason, each with its count of decisions; at idle one run grows)."""
    with contextlib.suppress(httpx.HTTPError, ValueError, TypeError, KeyError):
        doc = _get(cluster, i, "/events")
        return sum(int(run["decisions"]) for run in doc["events"])
    return None


def keeper_renewals(cluster: PgwardenCluster, i: int) -> int | None:
    """The lease keeper's renewals since node ``i``'s agent started (None: not reported)."""
    with contextlib.suppress(httpx.HTTPError, ValueError, TypeError, AttributeError):
        doc = _get(cluster, i, "/diagnostics")
        total = (doc["etcd"]["renewals"] or {}).get("total")
        return int(total) if total is not None else None
    return None


@dataclass
class Look:
    """One build's counters at one moment."""

    at: float
    agents: list[float]
    fences: list[float]
    threads: dict[int, dict[int, float]]  # node index -> thread id -> CPU seconds (ticks)
    etcd: etcd_load.Snapshot
    keepalives: list[float]
    renewals: int | None
    cycles: list[int | None]


class Build:
    def __init__(self, label: str, cluster: PgwardenCluster) -> None:
        self.label = label
        self.cluster = cluster
        self.primary = 0
        self.standby = 1
        self.pids: list[int] = []
        self.fence_pids: list[int] = []
        self.names: dict[int, dict[int, str]] = {}

    def settle(self) -> None:
        primary = self.cluster.primary_index()
        assert primary is not None, f"{self.label}: no primary"
        self.primary = primary
        self.standby = next(i for i in range(len(self.cluster.nodes)) if i != primary)
        pids = [self.cluster.agent_pid(i) for i in range(len(self.cluster.nodes))]
        assert all(pids), f"{self.label}: not every agent runs"
        self.pids = [p for p in pids if p is not None]
        self.fence_pids = fences(self.cluster)

    def look(self) -> Look:
        urls = [f"http://{e}" for e in self.cluster.etcd_endpoints()]
        return Look(
            time.monotonic(),
            [process_cpu(p) for p in self.pids],
            [process_cpu(p) for p in self.fence_pids],
            {i: thread_cpu(self.pids[i]) for i in (self.primary, self.standby)},
            etcd_load.snapshot(urls),
            keepalives_by_member(urls),
            keeper_renewals(self.cluster, self.primary),
            [cycles(self.cluster, i) for i in range(len(self.pids))],
        )

    def report(self, before: Look, after: Look) -> Iterator[str]:
        minutes = (after.at - before.at) / 60
        names = [n.name for n in self.cluster.nodes]
        per_min = [(b - a) / minutes for a, b in zip(before.agents, after.agents, strict=True)]
        role = ["" if i != self.primary else " (primary)" for i in range(len(names))]
        agents = ", ".join(f"{names[i]}{role[i]} {cpu:.3f}" for i, cpu in enumerate(per_min))
        yield f"  agents, CPU s/min: {agents}"
        fence = [(b - a) / minutes for a, b in zip(before.fences, after.fences, strict=True)]
        yield "  fences, CPU s/min: " + ", ".join(f"{cpu:.3f}" for cpu in fence)
        for i in (self.primary, self.standby):
            names_i = self.names.get(i, {})
            used = sorted(
                ((t - before.threads[i].get(tid, 0.0)) / minutes, tid) for tid, t in after.threads[i].items()
            )
            shown = ", ".join(f"{names_i.get(tid, tid)} {cpu:.2f}" for cpu, tid in reversed(used) if cpu > 0)
            yield f"  {names[i]} threads, CPU s/min: {shown}"
        load = etcd_load.difference(before.etcd, after.etcd, after.at - before.at)
        methods = ", ".join(f"{m} {v:.2f}" for m, v in sorted(load.by_method.items()))
        yield f"  etcd requests/s {load.requests_per_s:.2f}: {methods}"
        pairs = zip(before.keepalives, after.keepalives, strict=True)
        members = [(b - a) / (after.at - before.at) for a, b in pairs]
        yield "  keep-alives/s by etcd member: " + ", ".join(f"{k:.2f}" for k in members)
        seconds = after.at - before.at
        if before.renewals is not None and after.renewals is not None:
            rate = (after.renewals - before.renewals) / seconds
            yield f"  the primary's lease keeper: {rate:.2f} renewals/s"
        done = [
            f"{(b - a) / seconds:.2f}" if a is not None and b is not None else "?"
            for a, b in zip(before.cycles, after.cycles, strict=True)
        ]
        yield "  cycles/s by agent: " + ", ".join(done)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--baseline", type=Path, help="another build's src directory, measured alongside")
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    builds = [Build("this build", PgwardenCluster())]
    if args.baseline is not None:
        builds.append(Build("baseline", baseline(args.baseline)))
    with contextlib.ExitStack() as stack:
        for build in builds:
            build.cluster.start(timeout=240)
            stack.callback(build.cluster.stop)
        time.sleep(SETTLE)
        for build in builds:
            build.settle()
            build.names = {i: thread_names(build.pids[i]) for i in (build.primary, build.standby)}
        for n in range(args.windows):
            befores = [b.look() for b in builds]
            time.sleep(args.seconds)
            afters = [b.look() for b in builds]
            with open("/proc/loadavg") as f:
                load = f.read().split()[0]
            print(f"window {n + 1} of {args.seconds:.0f} s (load {load}):", flush=True)
            for build, before, after in zip(builds, befores, afters, strict=True):
                print(f" {build.label}:", flush=True)
                for line in build.report(before, after):
                    print(line, flush=True)


if __name__ == "__main__":
    main()
