"""Health-check latency over plain HTTP, TLS, and TLS with a client certificate (mTLS), server alone.

Starts ``ApiServer`` in a child process (a healthy primary from the unit tests' fakes), three
times: plain, HTTPS with ``verify_client: none``, and HTTPS with ``verify_client: required``
(certificates from ``local/pki.py``, ECDSA P-256 as the local stack uses). Each is asked
``OPTIONS /primary`` on a new connection per request, as HAProxy's checks ask: by ApacheBench
(``client: ab``; plain and TLS only, ab cannot present a certificate) and by a Python client in
one thread (``client: python``; all three, so the mTLS cost reads against the same client). Rows
give p50/p99 in ms and the server's CPU per request (what the machine's other load leaves alone).

Run: ``.venv/bin/python -m bench.api_tls --requests 2000``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.api_server import _cpu_seconds
from bench.health import measure as measure_ab

MODES = ("plain", "tls", "mtls")


def serve(port_file: str, mode: str, tls_dir: str) -> None:
    """The child: an ApiServer on a free loopback port in ``mode``, until killed."""
    from pgwarden.api.server import ApiServer
    from pgwarden.model.node import VerifyClient
    from tests.support import api_fakes as fake

    settings: dict[str, object] = {}
    if mode != "plain":
        d = Path(tls_dir)
        settings = {"certfile": str(d / "server.crt"), "keyfile": str(d / "server.key")}
        settings["cafile"] = str(d / "ca.crt")
        settings["verify_client"] = VerifyClient.REQUIRED if mode == "mtls" else VerifyClient.NONE
    holder, operations = fake.SnapshotHolder(fake.primary()), fake.FakeOperations()
    server = ApiServer(fake.api_settings(**settings), holder, operations)
    server.start()
    Path(port_file).write_text(str(server.port))
    threading.Event().wait()


@contextlib.contextmanager
def _server(mode: str, tls_dir: Path) -> Iterator[tuple[int, int]]:
    port_file = Path(tempfile.mktemp(prefix="pgw-bench-tls-", suffix=".port"))
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.api_tls", "--serve", str(port_file), "--mode", mode,
         "--tls-dir", str(tls_dir)]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError(f"the API server ({mode}) did not start")
            time.sleep(0.05)
        yield child.pid, int(port_file.read_text())
    finally:
        child.kill()
        child.wait(10)
        port_file.unlink(missing_ok=True)


def _python_client(port: int, mode: str, tls_dir: Path, requests: int) -> dict[str, float]:
    """One thread, a new connection (and handshake) per request, as HAProxy checks."""
    context = None
    if mode != "plain":
        context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
        if mode == "mtls":
            context.load_cert_chain(str(tls_dir / "haproxy.crt"), str(tls_dir / "haproxy.key"))
    samples = []
    request = b"OPTIONS /primary HTTP/1.0\r\n\r\n"
    deadline = time.monotonic() + 300  # bounded whatever the machine's load
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        sock: socket.socket = socket.create_connection(("127.0.0.1", port), 5)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        with sock:
            sock.sendall(request)
            while sock.recv(4096):
                pass
        samples.append(time.perf_counter() - started)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(samples[max(0, int(len(samples) * 0.99) - 1)] * 1000, 3),
        "requests": len(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--tls-dir", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.mode, args.tls_dir)
        return
    from pgwarden.local.pki import Pki

    with tempfile.TemporaryDirectory(prefix="pgw-bench-pki-") as tmp:
        tls_dir = Path(tmp)
        pki = Pki(tls_dir)
        pki.issue_server("server", ["127.0.0.1"])
        pki.issue_client("haproxy")
        for mode in MODES:
            with _server(mode, tls_dir) as (pid, port):
                time.sleep(0.5)
                if mode != "mtls":
                    scheme = "https" if mode == "tls" else "http"
                    for concurrency in (1, 8):
                        cpu = _cpu_seconds(pid)
                        run = measure_ab("127.0.0.1", port, args.requests, concurrency, scheme=scheme)
                        row = {"mode": mode, "client": "ab", "concurrency": concurrency}
                        row |= {"p50_ms": run.p50_ms, "p99_ms": run.p99_ms, "req_per_s": run.per_second}
                        row["failed"] = run.failed
                        row["server_cpu_us_per_req"] = round((_cpu_seconds(pid) - cpu) / args.requests * 1e6)
                        print(json.dumps(row), flush=True)
                cpu = _cpu_seconds(pid)
                result = _python_client(port, mode, tls_dir, args.requests)
                row = {"mode": mode, "client": "python", "concurrency": 1, **result}
                row["server_cpu_us_per_req"] = round((_cpu_seconds(pid) - cpu) / result["requests"] * 1e6)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
