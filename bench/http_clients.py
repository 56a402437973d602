"""HTTP clients for etcd and the peers, by measurement: httpx, urllib3, the standard library's
http.client and pgwarden's own client over it (pgwarden/outbound_http.py, what the agent uses),
each against one real etcd member on loopback, plain and over TLS with a client certificate (what
issue 13's secure transport needs), bound to a source address as the agent binds.

    .venv/bin/python -m bench.http_clients [--requests 2000] [--runs 5] [--network 127.0.144]

Per client, each figure the median (min-max) of ``--runs`` fresh interpreters: resident memory
added by importing it, making one client and sending one request, in a bare interpreter (so ssl
counts for each) and in the agent (after the agent's own modules: what the client costs there);
the import time; and per request on a kept connection (POST /v3/kv/range, as every agent cycle
does): wall p50/p99 and the CPU it costs the caller. urllib3 is taken from Patroni's venv
(.venv-patroni, made by scripts/install-bench-deps.sh), placed after pgwarden's packages on the
path: pgwarden does not depend on it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from pgwarden.local import processes

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv/bin/python"
PATRONI_SITE = REPO / ".venv-patroni/lib" / f"python{sysconfig.get_python_version()}" / "site-packages"
BODY = json.dumps({"key": "L3BnLw==", "range_end": "L3BnMA=="})  # /pg/ .. /pg0
# What the running agent imports before any HTTP client (tests/unit/test_agent_start.py).
AGENT = "import pgwarden.daemon.start, pgwarden.config.node, pgwarden.local.siblings, pgwarden.agent.loop"

# One client, made as the agent would make it; run in a fresh interpreter for the memory figure.
MAKE = {
    "httpx": "import httpx; c = httpx.Client(transport=httpx.HTTPTransport(local_address=SRC))",
    "urllib3": "import urllib3; c = urllib3.HTTPConnectionPool(HOST, PORT, source_address=(SRC, 0))",
    "http.client": "import http.client; c = http.client.HTTPConnection(HOST, PORT, source_address=(SRC, 0))",
    "pgwarden (http.client)": "from pgwarden.outbound_http import HttpClient; c = HttpClient(source=SRC)",
}
# The same over TLS with a client certificate: HOST, PORT, SRC, CA, CERT, KEY are set beforehand.
MAKE_TLS = {
    "httpx": "import httpx, ssl; ctx = ssl.create_default_context(cafile=CA); "
    "ctx.load_cert_chain(CERT, KEY); c = httpx.Client(transport=httpx.HTTPTransport("
    "local_address=SRC, verify=ctx))",
    "urllib3": "import urllib3, ssl; ctx = ssl.create_default_context(cafile=CA); "
    "ctx.load_cert_chain(CERT, KEY); c = urllib3.HTTPSConnectionPool(HOST, PORT, "
    "source_address=(SRC, 0), ssl_context=ctx)",
    "http.client": "import http.client, ssl; ctx = ssl.create_default_context(cafile=CA); "
    "ctx.load_cert_chain(CERT, KEY); c = http.client.HTTPSConnection(HOST, PORT, "
    "source_address=(SRC, 0), context=ctx)",
    "pgwarden (http.client)": "import ssl; from pgwarden.outbound_http import HttpClient; "
    "ctx = ssl.create_default_context(cafile=CA); ctx.load_cert_chain(CERT, KEY); "
    "c = HttpClient(source=SRC, tls=ctx)",
}
REQUEST = {
    "httpx": "r = c.post(URL, content=BODY); assert r.status_code == 200; r.read()",
    "urllib3": "r = c.urlopen('POST', '/v3/kv/range', body=BODY); assert r.status == 200",
    "http.client": "c.request('POST', '/v3/kv/range', body=BODY); r = c.getresponse(); "
    "assert r.status == 200; r.read()",
    "pgwarden (http.client)": "with c.stream('POST', URL, body=BODY.encode(), timeout=5) as r: "
    "assert r.status == 200; r.read(1 << 20)",
}
PROGRAM = """
import json, os, sys, time
sys.path.append({site!r})
HOST, PORT, SRC, CA, CERT, KEY, N, BODY = {args!r}
URL = ('https' if CA else 'http') + f'://{{HOST}}:{{PORT}}/v3/kv/range'
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) / 1024
{base}
base = rss()
t = time.perf_counter()
{make}
made = time.perf_counter() - t
{request}
added = rss() - base
walls = []
cpu = time.process_time()
for _ in range(N):
    t = time.perf_counter()
    {request}
    walls.append(time.perf_counter() - t)
cpu = time.process_time() - cpu
walls.sort()
print(json.dumps({{"rss": added, "import_ms": made * 1e3, "p50": walls[len(walls) // 2] * 1e3,
                  "p99": walls[int(len(walls) * 0.99)] * 1e3, "cpu_us": cpu / max(1, N) * 1e6}}))
"""


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _certificates(d: Path, host: str) -> tuple[str, str, str, str, str]:
    """A CA, a server certificate for ``host`` and a client certificate, made with openssl."""

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=bench-ca")  # fmt: skip
    (d / "san.cnf").write_text(f"subjectAltName=IP:{host}\nextendedKeyUsage=serverAuth,clientAuth\n")
    for name in ("server", "client"):
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")  # fmt: skip
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", "san.cnf")  # fmt: skip
    ca, cert, key, client_cert, client_key = (
        str(d / f) for f in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
    )
    return ca, cert, key, client_cert, client_key


def _etcd(d: Path, host: str, tls: tuple[str, str, str] | None) -> tuple[int, int]:
    port, peer = _free_port(host), _free_port(host)
    scheme = "https" if tls else "http"
    cmd = [
        shutil.which("etcd") or "/usr/bin/etcd", "--data-dir", str(d / f"etcd-{scheme}"),
        "--listen-client-urls", f"{scheme}://{host}:{port}", "--advertise-client-urls", f"{scheme}://{host}:{port}",
        "--listen-peer-urls", f"http://{host}:{peer}", "--initial-advertise-peer-urls", f"http://{host}:{peer}",
        "--initial-cluster", f"default=http://{host}:{peer}",
    ]  # fmt: skip
    if tls:
        ca, cert, key = tls
        cmd += ["--cert-file", cert, "--key-file", key, "--client-cert-auth", "--trusted-ca-file", ca]
    pid = processes.spawn(cmd, d / f"etcd-{scheme}.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                time.sleep(1.0)  # serving, and elected (a single member)
                return pid, port
        time.sleep(0.1)
    processes.stop(pid, timeout=5)
    raise RuntimeError(f"etcd did not start on {host}:{port}")


def _run(client: str, args: tuple[object, ...], tls: bool, in_agent: bool) -> dict[str, float]:
    make = (MAKE_TLS if tls else MAKE)[client]
    program = PROGRAM.format(
        site=str(PATRONI_SITE), args=args, base=AGENT if in_agent else "", make=make, request=REQUEST[client]
    )
    command = [str(PYTHON), "-c", program]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    return dict(json.loads(out.stdout))


def _cell(values: list[float], digits: int) -> str:
    med, lo, hi = statistics.median(values), min(values), max(values)
    return f"{med:.{digits}f} ({lo:.{digits}f}\u2013{hi:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--network", default="127.0.144", help="loopback /24 to use (first three octets)")
    opts = parser.parse_args()
    # A stop (timeout's SIGTERM) must still end the etcd members: through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    host, src = f"{opts.network}.21", f"{opts.network}.11"
    d = Path(tempfile.mkdtemp(prefix="pgw-http-"))
    pids = []
    try:
        ca, cert, key, ccert, ckey = _certificates(d, host)
        plain, plain_port = _etcd(d, host, None)
        pids.append(plain)
        secure, tls_port = _etcd(d, host, (ca, cert, key))
        pids.append(secure)
        print(
            "| client | transport | RSS added, bare (MB) | RSS added in the agent (MB) | import + make (ms) "
            "| p50 (ms) | p99 (ms) | caller CPU per request (µs) |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for tls in (False, True):
            for client in MAKE:
                if client == "urllib3" and not PATRONI_SITE.exists():
                    print(f"| {client} | skipped: no {PATRONI_SITE} | | | | | | |")
                    continue
                port = tls_port if tls else plain_port
                args = (host, port, src, ca if tls else "", ccert, ckey, opts.requests, BODY)
                bare = [_run(client, args, tls, in_agent=False) for _ in range(opts.runs)]
                agent_args = (*args[:6], 10, BODY)
                agent = [_run(client, agent_args, tls, in_agent=True) for _ in range(opts.runs)]
                cells = [
                    _cell([r["rss"] for r in bare], 1),
                    _cell([r["rss"] for r in agent], 1),
                    _cell([r["import_ms"] for r in bare], 0),
                    _cell([r["p50"] for r in bare], 3),
                    _cell([r["p99"] for r in bare], 3),
                    _cell([r["cpu_us"] for r in bare], 0),
                ]
                transport = "TLS + client cert" if tls else "plain"
                print(f"| {client} | {transport} | {' | '.join(cells)} |", flush=True)
    finally:
        processes.stop_all(pids, timeout=10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
