"""Health-endpoint latency: p50/p99 of ``OPTIONS /primary`` and ``GET /replica`` as HAProxy asks them.

Each request opens a new TCP connection (as HAProxy's checks do). Measured at concurrency 1 and 8
on an idle standby, and again on a standby while its agent is busy re-cloning it (POST
/reinitialize after loading some data, so the base backup takes a while).
Run: ``.venv/bin/python -m bench.api_latency --requests 2000``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

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
        for concurrency in (1, 8):
            for method, path in (("OPTIONS", "/primary"), ("GET", "/replica")):
                figures = measure(host, port, method, path, args.requests, concurrency)
                results.append(
                    {
                        "state": "idle standby",
                        "call": f"{method} {path}",
                        "concurrency": concurrency,
                        **figures,
                    }
                )
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
            figures = measure(host, port, "OPTIONS", "/primary", args.requests // 4, concurrency)
            still = (stack.statuses().get(stack.spec.node_name(s)) or {}).get("state")
            results.append(
                {
                    "state": f"while cloning (after: {still})",
                    "call": "OPTIONS /primary",
                    "concurrency": concurrency,
                    **figures,
                }
            )
            print(json.dumps(results[-1]), flush=True)
        wait_for(lambda: stack.healthy()[0], 300, "the re-cloned standby streaming again")


if __name__ == "__main__":
    main()
