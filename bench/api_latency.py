"""Health-endpoint latency: p50/p99 of ``OPTIONS /primary`` and ``GET /replica`` as HAProxy asks them.

Each request opens a new TCP connection (as HAProxy's checks do). Measured at concurrency 1 and 8
on an idle standby, and again on a standby while its agent is busy re-cloning it (POST
/reinitialize after loading some data, so the base backup takes a while). Two clients: Python's
http.client in threads (``client: python``; its own cost dominates at concurrency 8), and, when
installed, ApacheBench (``client: ab``, C, one thread: the server's figures). Each row also gives
the agent's CPU per request (utime + stime of the agent process over the run / requests), which
the machine's other load does not change.
Run: ``.venv/bin/python -m bench.api_latency --requests 2000``. To measure another checkout's
agent (e.g. before a change): ``PYTHONPATH=/that/checkout/src`` (the agents inherit it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.health import measure as measure_ab
from pgwarden.local.stack import Stack
from tests.support.cluster import conninfo, primary_name, running_stack, wait_for


def _one(host: str, port: int, method: str, path: str) -> float:
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path)
        conn.getresponse().read()
    finally:
        conn.close()
    return time.perf_counter() - started


def measure(
    host: str, port: int, method: str, path: str, requests: int, concurrency: int
) -> dict[str, float]:
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        samples = list(pool.map(lambda _: _one(host, port, method, path), range(requests)))
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 2),
        "p99_ms": round(samples[int(len(samples) * 0.99) - 1] * 1000, 2),
        "max_ms": round(samples[-1] * 1000, 2),
        "requests": len(samples),
    }


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _runs(
    host: str, port: int, method: str, path: str, requests: int, concurrency: int
) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    """The measurements of one call: Python's client, and ab when installed."""

    def python() -> dict[str, Any]:
        started = time.perf_counter()
        figures: dict[str, Any] = measure(host, port, method, path, requests, concurrency)
        figures["req_per_s"] = round(requests / (time.perf_counter() - started))
        return figures

    def ab() -> dict[str, Any]:
        run = measure_ab(host, port, requests, concurrency, path=path, method=method)
        return {
            "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms,
            "req_per_s": round(run.per_second),
            "requests": requests,
            "failed": run.failed,
        }

    return [("python", python)] + ([("ab", ab)] if shutil.which("ab") else [])


_IDLE_WINDOW = 2.0  # seconds the agent's own CPU rate is measured before each run


def _measured(pid: int, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The run's figures plus the agent's CPU per request, its loop's own CPU (measured just
    before, over _IDLE_WINDOW) subtracted: at a few hundred requests a second the loop's few
    percent of a core would otherwise count as hundreds of microseconds per request."""
    cpu = _cpu_seconds(pid)
    time.sleep(_IDLE_WINDOW)
    idle_rate = (_cpu_seconds(pid) - cpu) / _IDLE_WINDOW
    cpu, started = _cpu_seconds(pid), time.monotonic()
    figures = run()
    used = _cpu_seconds(pid) - cpu - idle_rate * (time.monotonic() - started)
    figures["agent_cpu_us_per_req"] = round(max(0.0, used) / figures["requests"] * 1e6)
    figures["agent_idle_cpu_pct"] = round(idle_rate * 100, 2)
    return figures


def _auth(stack: Stack) -> tuple[str, str] | None:
    creds = stack.describe().get("api_auth")
    return (creds["username"], creds["password"]) if creds else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--data-mb", type=int, default=300, help="data to load so a clone takes a while")
    args = parser.parse_args()
    with running_stack() as stack:
        wait_for(lambda: stack.healthy()[0], 120, "a healthy cluster")
        primary = primary_name(stack)
        assert primary is not None
        p = int(primary.removeprefix("node")) - 1
        s = next(i for i in range(stack.spec.nodes) if i != p)
        host, port = stack.spec.node_host(s), stack.spec.api_port
        results = []
        pid = stack.pids[stack.spec.node_name(s)]
        for concurrency in (1, 8):
            for method, path in (("OPTIONS", "/primary"), ("GET", "/replica")):
                for client, run in _runs(host, port, method, path, args.requests, concurrency):
                    row = {"state": "idle standby", "call": f"{method} {path}", "client": client}
                    results.append({**row, "concurrency": concurrency, **_measured(pid, run)})
                    print(json.dumps(results[-1]), flush=True)
        with psycopg.connect(
            conninfo(stack, stack.spec.node_host(p), stack.spec.pg_port, 5), autocommit=True
        ) as c:
            rows = args.data_mb * 1024 * 1024 // 120
            c.execute("CREATE TABLE IF NOT EXISTS ballast (id bigint, pad text)")
            c.execute(f"INSERT INTO ballast SELECT g, repeat('x', 80) FROM generate_series(1, {rows}) g")
            c.execute("CHECKPOINT")
        reply = httpx.post(f"http://{host}:{port}/reinitialize", json={}, auth=_auth(stack), timeout=30)
        assert reply.status_code == 202, reply.text
        wait_for(
            lambda: (stack.statuses().get(stack.spec.node_name(s)) or {}).get("state") == "creating replica",
            30,
            "the clone to start",
            interval=0.05,
        )
        for concurrency in (1, 8):
            for client, run in _runs(host, port, "OPTIONS", "/primary", args.requests // 4, concurrency):
                figures = _measured(pid, run)
                still = (stack.statuses().get(stack.spec.node_name(s)) or {}).get("state")
                row = {
                    "state": f"while cloning (after: {still})",
                    "call": "OPTIONS /primary",
                    "client": client,
                }
                results.append({**row, "concurrency": concurrency, **figures})
                print(json.dumps(results[-1]), flush=True)
        wait_for(lambda: stack.healthy()[0], 300, "the re-cloned standby streaming again")


if __name__ == "__main__":
    main()
