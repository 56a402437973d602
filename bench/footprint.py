"""Agent footprint on an idle cluster: resident memory and CPU of each agent process over a window,
the agent's start-up time, and (where the agent reports it) how long one cycle takes.

RSS is ``VmRSS`` from ``/proc/<pid>/status`` at the end of the window. No window follows a
``GET /metrics``: its first request loads prometheus_client into a pgwarden agent, and Patroni's
are not asked; bench/plan.py reads it (the cycle time), and the RSS after it, once the windows
are over. CPU is the growth of ``utime + stime`` (all threads) from ``/proc/<pid>/stat`` over the
window, as % of one core.
PostgreSQL's own processes are not counted: they are the same for both systems. pgwarden's fence,
a second small process per node, is measured on its own.

Start-up is timed on a standby: its agent is SIGKILLed (PostgreSQL keeps running) and started
again; the clock runs from just before the process is spawned until its REST API answers
``GET /patroni`` with the role and state it had before (a running replica): the first cycle has
then observed PostgreSQL and etcd, and (pgwarden) its first decision is published. A crashed
agent must get this far within the leader lease to keep its key.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import httpx

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


def rss_now(cluster: ClusterUnderTest) -> list[float]:
    """Every agent's ``VmRSS`` now, MB."""
    pids = [cluster.agent_pid(i) for i in range(len(cluster.nodes))]
    return [rss_kb(p) / 1024 for p in pids if p is not None]


def startup(cluster: ClusterUnderTest, i: int, timeout: float = 60.0) -> float:
    """Seconds from spawning node ``i``'s agent (killed first) to its first cycle being done."""
    before = cluster.status(i)
    assert before is not None, f"{cluster.nodes[i].name}: no status before the restart"
    pid = cluster.agent_pid(i)
    assert pid is not None, f"{cluster.nodes[i].name}: no agent runs"
    cluster.kill([pid])
    while cluster.agent_pid(i) is not None:  # reaped, and the API port is free again
        time.sleep(0.01)
    host, port = cluster.rest_address(i)
    with httpx.Client(timeout=0.5, trust_env=False) as client:
        started = time.monotonic()
        cluster.start_agent(i)
        while time.monotonic() - started < timeout:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                doc = client.get(f"http://{host}:{port}/patroni").json()
                if _settled(doc, before):
                    return time.monotonic() - started
            time.sleep(0.01)
    raise AssertionError(f"{cluster.nodes[i].name}: agent not back after {timeout:.0f} s")


def _settled(doc: object, before: dict[str, object]) -> bool:
    if not isinstance(doc, dict):
        return False
    same = doc.get("role") == before.get("role") and doc.get("state") == before.get("state")
    # pgwarden says "starting" until its first decision; Patroni has no such field.
    return same and doc.get("reason_code", "") is not None


def cycle_ms(cluster: ClusterUnderTest, samples: int = 5, spacing: float = 1.1) -> list[float]:
    """Every agent's last cycle duration, read ``samples`` times (empty where not reported)."""
    found: list[float] = []
    for n in range(samples):
        for i in range(len(cluster.nodes)):
            seconds = cluster.cycle_seconds(i)
            if seconds is not None:
                found.append(seconds * 1000)
        if n + 1 < samples:
            time.sleep(spacing)
    return found
