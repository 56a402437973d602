"""Agent footprint on an idle cluster: resident memory and CPU of each agent process over a window.

RSS is ``VmRSS`` from ``/proc/<pid>/status`` at the end of the window; CPU is the growth of
``utime + stime`` (all threads) from ``/proc/<pid>/stat`` over the window, as % of one core.
PostgreSQL's own processes are not counted: they are the same for both systems. pgwarden's fence,
a second small process per node, is measured on its own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from bench.cluster import ClusterUnderTest
from pgwarden.fence.files import running_fence

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Footprint:
    rss_mb: float
    cpu_percent: float


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError(f"no VmRSS for {pid}")


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))


def fences(cluster: ClusterUnderTest) -> list[int]:
    """pgwarden's fence of every node (a second process per node, beside the agent)."""
    found = [running_fence(str(node.data_dir)) for node in cluster.nodes]
    assert all(found), f"{cluster.label}: not every node runs its fence: {found}"
    return [p for p in found if p is not None]


def idle(cluster: ClusterUnderTest, seconds: float, extra: list[int] | None = None) -> list[Footprint]:
    """One figure per agent (then per process of ``extra``), measured together over the same
    ``seconds`` of an idle cluster."""
    pids = [cluster.agent_pid(i) for i in range(len(cluster.nodes))]
    assert all(pids), f"{cluster.label}: not every agent runs: {pids}"
    live = [p for p in pids if p is not None] + list(extra or [])
    before = {p: cpu_ticks(p) for p in live}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return [
        Footprint(
            rss_mb=rss_kb(p) / 1024,
            cpu_percent=100.0 * (cpu_ticks(p) - before[p]) / _TICKS / elapsed,
        )
        for p in live
    ]
