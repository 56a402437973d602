"""Where a cloning agent's time goes: the same agent's health answers idle, then while it clones.

``python -m bench.health_profile [--scale 30] [--seconds 6] [--py-spy DIR]`` starts a pgwarden
cluster (the test suite's running_stack; PGWARDEN_TEST_NETWORKS picks its loopback networks),
loads ``pgbench -i -s scale`` and measures one standby's agent twice in the same run: idle, then
while it re-clones the database (``POST /reinitialize``). For each window it prints ab's req/s,
p50 and p99 (a new connection per check, ``OPTIONS /health``, concurrency 8: bench.health) and
figures that do not depend on the machine's load: the agent's CPU per answer (µs, from
/proc/PID/stat over the window) and, with ``--py-spy``, a py-spy profile of
the agent per window (``DIR/idle.txt``, ``DIR/cloning.txt``: raw collapsed stacks by thread).

Bounded: ab by time, the clone by CLONE_TIMEOUT; the cluster is stopped on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from bench import failover, health, health_work, pgbench
from bench.pgwarden_cluster import PgwardenCluster
from pgwarden.local import processes

CONCURRENCY = 8
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (all its threads, not its children) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of each thread of process ``pid``, by thread id."""
    found: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(task.name)] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def thread_names(pid: int) -> dict[int, str]:
    """Python's names of the threads of ``pid`` by thread id (py-spy dump; {} without py-spy)."""
    spy = shutil.which("py-spy")
    if spy is None:
        return {}
    out = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30).stdout
    return {int(m.group(1)): m.group(2) for m in re.finditer(r'^Thread (\d+) \(\w+\): "(.*)"$', out, re.M)}


def all_cpu() -> dict[tuple[int, str], float]:
    """CPU seconds so far of every process on the machine, by (pid, command name)."""
    found: dict[tuple[int, str], float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        found[(int(entry.name), name)] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def top_users(before: dict[tuple[int, str], float], after: dict[tuple[int, str], float], took: float) -> str:
    """The processes that used the most CPU between two ``all_cpu`` looks, as % of one core."""
    used = sorted(((after[k] - before.get(k, 0.0), k) for k in after), reverse=True)[:8]
    return ", ".join(f"{name}[{pid}] {100 * cpu / took:.0f}%" for cpu, (pid, name) in used if cpu > 0)


def window(
    cluster: PgwardenCluster, i: int, seconds: float, label: str, spy: Path | None
) -> dict[str, float]:
    """ab on node ``i``'s agent for ``seconds``; the figures of that window."""
    node = cluster.nodes[i]
    pid = cluster.agent_pid(i)
    assert pid is not None, f"{node.name}'s agent is not running"
    profiler = None
    if spy is not None:
        spy.mkdir(parents=True, exist_ok=True)
        profiler = subprocess.Popen(
            [shutil.which("py-spy") or "py-spy", "record", "--pid", str(pid), "--threads", "--nonblocking",
             "--format", "raw", "--rate", "250", "--duration", str(int(seconds)),
             "--output", str(spy / f"{label}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    before = cpu_seconds(pid)
    threads = thread_cpu(pid)
    machine = all_cpu()
    started = time.monotonic()
    run = health.measure(node.host, node.api_port, 10**6, CONCURRENCY, path="/health", seconds=seconds)
    took = time.monotonic() - started
    used = cpu_seconds(pid) - before
    names = thread_names(pid)
    by_thread = sorted(((t - threads.get(tid, 0.0), tid) for tid, t in thread_cpu(pid).items()), reverse=True)
    print(
        f"{label}: agent CPU by thread (ms): "
        + ", ".join(f"{names.get(tid, tid)} {1000 * cpu:.0f}" for cpu, tid in by_thread if cpu > 0),
        flush=True,
    )
    print(f"{label}: CPU by process (% of a core): {top_users(machine, all_cpu(), took)}", flush=True)
    if profiler is not None:
        profiler.wait(timeout=seconds + 30)
    answered = run.requests
    return {
        "rps": run.per_second,
        "p50_ms": run.p50_ms,
        "p99_ms": run.p99_ms,
        "answers": answered,
        "agent_cpu_s": used,
        "agent_cpu_pct": 100 * used / took,
        "cpu_us_per_answer": 1e6 * used / max(1, answered),
    }


def renice_copy(cluster: PgwardenCluster, i: int, nice: int) -> list[int]:
    """Lower the CPU priority of node ``i``'s agent's pg_basebackup (an experiment from outside:
    what the agent would do to its own child); the PIDs changed."""
    agent = cluster.agent_pid(i)
    assert agent is not None
    changed = []
    for pid in processes.children(agent):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "pg_basebackup":
                os.setpriority(os.PRIO_PROCESS, pid, nice)
                changed.append(pid)
    return changed


def clone_window(
    cluster: PgwardenCluster, s: int, seconds: float, label: str, spy: Path | None, nice: int | None
) -> dict[str, float]:
    """Node ``s`` re-cloned, its agent measured while it clones; the figures and the clone's time."""
    cluster.wait_healthy(240)
    sent = time.monotonic()
    reply = httpx.post(
        f"{cluster._api(s)}/reinitialize", json={}, timeout=30, trust_env=False,
        auth=cluster.api_auth(), verify=cluster.api_verify(),
    )  # fmt: skip
    assert reply.status_code in (200, 202), reply.text
    limit = time.monotonic() + 30
    while health_work._settled(cluster, s) and time.monotonic() < limit:
        time.sleep(0.05)
    if nice is not None:
        limit = time.monotonic() + 10
        while not renice_copy(cluster, s, nice) and time.monotonic() < limit:
            time.sleep(0.02)
    figures = window(cluster, s, seconds, label, spy)
    figures["still_cloning"] = float(not health_work._settled(cluster, s))
    limit = time.monotonic() + health_work.CLONE_TIMEOUT
    while not health_work._settled(cluster, s) and time.monotonic() < limit:
        time.sleep(0.1)
    failover.wait_streaming(cluster, cluster.nodes[s].name, max(1.0, limit - time.monotonic()))
    figures["clone_s"] = time.monotonic() - sent
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=30, help="pgbench scale (60: about 1 GB)")
    parser.add_argument("--seconds", type=float, default=6.0, help="of load per window")
    parser.add_argument("--clones", type=int, default=1, help="clones measured (each ~scale x 15 MB)")
    parser.add_argument(
        "--renice", type=int, default=None,
        help="also measure clones with the agent's pg_basebackup reniced to this from outside, alternately",
    )  # fmt: skip
    parser.add_argument("--py-spy", type=Path, default=None, help="write py-spy profiles here")
    options = parser.parse_args()
    with PgwardenCluster() as cluster:
        assert isinstance(cluster, PgwardenCluster)
        started = time.monotonic()
        pgbench.initialize(cluster, options.scale)
        failover.wait_caught_up(cluster)
        failover.checkpoint_everywhere(cluster)
        print(f"loaded scale {options.scale} in {time.monotonic() - started:.0f} s", flush=True)
        p = cluster.primary_index()
        assert p is not None
        s = next(i for i in range(len(cluster.nodes)) if i != p)
        health.measure(cluster.nodes[s].host, cluster.nodes[s].api_port, 200, 2, path="/health")  # warm-up
        results = {"idle": window(cluster, s, options.seconds, "idle", options.py_spy)}
        for n in range(options.clones):
            results[f"cloning{n}"] = clone_window(
                cluster, s, options.seconds, f"cloning{n}", options.py_spy, None
            )
            if options.renice is not None:
                label = f"reniced{n}"
                results[label] = clone_window(
                    cluster, s, options.seconds, label, options.py_spy, options.renice
                )
        results["idle_after"] = window(cluster, s, options.seconds, "idle_after", options.py_spy)
        load = Path("/proc/loadavg").read_text().split()[:3]
        print(f"load average {' '.join(load)} at the end")
        keys = list(results["cloning0"])
        print(f"{'':11}" + "".join(f"{k[:13]:>14}" for k in keys))
        for name, figures in results.items():
            print(f"{name:11}" + "".join(f"{figures.get(k, float('nan')):>14.3f}" for k in keys))


if __name__ == "__main__":
    main()
