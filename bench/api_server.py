"""The REST API server alone: health-check throughput and latency without a cluster around it.

Starts ``ApiServer`` in a child process over a fixed snapshot (a healthy primary holding its
lease, from the unit tests' fakes), then loads it with ApacheBench as HAProxy checks (a new
connection per request, ``OPTIONS /primary`` and ``GET /primary``) at concurrency 1 and 8. With
``--slow N`` it also holds N slow-loris connections (one byte a second) open during the runs,
and reports the server's thread count and RSS at the end. ``--busy MS`` adds a thread holding
the GIL MS ms a second (a cycle's pure-Python share), ``--switch-interval S`` sets the server's
``sys.setswitchinterval``: what a health check waits behind the rest of the agent. Isolated
from etcd and PostgreSQL, so runs compare server designs (e.g. against an older checkout:
``PYTHONPATH=/that/checkout/src``).

Run: ``.venv/bin/python -m bench.api_server --requests 5000 [--slow 200]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.health import measure


def serve(port_file: str, busy_ms: float = 0.0, switch_interval: float | None = None) -> None:
    """The child: an ApiServer on a free loopback port, until killed; with ``busy_ms``, another
    thread runs pure Python for that long every second (an HA cycle's share of the GIL), with
    ``switch_interval``, sys.setswitchinterval of that."""
    from pgwarden.api.server import ApiServer
    from tests.support import api_fakes as fake

    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    server = ApiServer(fake.api_settings(), fake.SnapshotHolder(fake.primary()), fake.FakeOperations())
    server.start()
    if busy_ms:
        threading.Thread(target=_busy, args=(busy_ms / 1000,), daemon=True).start()
    Path(port_file).write_text(str(server.port))
    threading.Event().wait()


def _busy(seconds: float) -> None:
    """Hold the GIL in pure Python for ``seconds`` every second (what a cycle does between its
    I/O: validating, deciding, rendering), forever."""
    document = {"members": [{"name": f"node{i}", "lsn": i * 1000, "tags": {"a": True}} for i in range(30)]}
    while True:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            json.loads(json.dumps(document))
        time.sleep(max(0.0, 1.0 - seconds))


def _status(pid: int) -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"threads": int(fields["Threads"]), "rss_kb": int(fields["VmRSS"].split()[0])}


def _cpu_seconds(pid: int) -> float:
    """utime + stime of every thread: the server's CPU cost, whatever else loads the machine."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _server(busy_ms: float = 0.0, switch_interval: float | None = None) -> Iterator[tuple[int, int]]:
    port_file = Path(f"/tmp/pgw-bench-api-{os.getpid()}.port")
    port_file.unlink(missing_ok=True)
    extra = ["--busy", str(busy_ms)]
    if switch_interval is not None:
        extra += ["--switch-interval", str(switch_interval)]
    child = subprocess.Popen([sys.executable, "-m", "bench.api_server", "--serve", str(port_file), *extra])
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        yield child.pid, int(port_file.read_text())
    finally:
        child.kill()
        child.wait(10)
        port_file.unlink(missing_ok=True)


def _slow_clients(port: int, count: int, stop: threading.Event) -> threading.Thread:
    """``count`` connections sending one byte a second, reconnecting when the server closes them."""

    def run() -> None:
        socks: list[socket.socket | None] = [None] * count
        while not stop.is_set():
            for i in range(count):
                sock = socks[i]
                try:
                    if sock is None:
                        sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                        sock.sendall(b"GET /cluster HTTP/1.1\r\n")
                        socks[i] = sock
                    else:
                        sock.sendall(b"X")
                except OSError:
                    if sock is not None:
                        sock.close()
                    socks[i] = None
            stop.wait(1.0)
        for sock in socks:
            if sock is not None:
                sock.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--slow", type=int, default=0, help="slow-loris connections held meanwhile")
    parser.add_argument(
        "--busy", type=float, default=0.0, help="ms of pure Python per second in another thread"
    )
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="sys.setswitchinterval in the server"
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.busy, args.switch_interval)
        return
    with _server(args.busy, args.switch_interval) as (pid, port):
        stop = threading.Event()
        slow = _slow_clients(port, args.slow, stop) if args.slow else None
        time.sleep(2 if slow else 0.5)
        before = _status(pid)
        try:
            for method in ("OPTIONS", "GET"):
                for concurrency in (1, 8):
                    cpu = _cpu_seconds(pid)
                    run = measure("127.0.0.1", port, args.requests, concurrency, method=method)
                    cpu_us = (_cpu_seconds(pid) - cpu) / args.requests * 1e6
                    row = {
                        "call": f"{method} /primary",
                        "concurrency": concurrency,
                        "slow_clients": args.slow,
                        "busy_ms": args.busy,
                        "switch_interval": args.switch_interval or sys.getswitchinterval(),
                    }
                    row |= {"req_per_s": run.per_second, "p50_ms": run.p50_ms, "p99_ms": run.p99_ms}
                    row |= {"server_cpu_us_per_req": round(cpu_us), "failed": run.failed}
                    print(json.dumps(row), flush=True)
        finally:
            stop.set()
            if slow is not None:
                slow.join(10)
        print(json.dumps({"server_before": before, "server_after": _status(pid)}), flush=True)


if __name__ == "__main__":
    main()
