"""A real cluster whose REST APIs serve HTTPS and require client certificates, with an allowlist.

One cluster serves the module: the agents call each other with their client certificates, the
stack's HAProxy checks them with the config `haproxy-config` renders (CA verified, its own
certificate presented), clients without a certificate of the cluster's CA get no answer at all,
an address outside the allowlist cannot call operations, certificates rotated by file change and
by SIGHUP are picked up while a second HAProxy checks every 100 ms without one failed check, and
a switchover under writes works as it does in plain HTTP.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from typer.testing import CliRunner

from pgwarden.cli.main import app
from pgwarden.client import ClusterClient, target_from_stack
from pgwarden.drill.writer import Writer, missing_ids
from pgwarden.local.pki import Pki
from pgwarden.local.stack import Stack
from pgwarden.tls import client_context
from tests.support.cluster import (
    WriterWatch,
    cluster_network,
    conninfo,
    primary_name,
    running_stack,
    wait_for,
)

pytestmark = pytest.mark.integration

INSIDE, OUTSIDE = 50, 200  # last octets of the test's own source addresses: in and out of the allowlist


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    network = cluster_network()
    with running_stack(
        network=network, api_tls=True, api_verify_client="required", api_allowlist=(f"{network}.0/26",)
    ) as s:
        yield s


def _source(stack: Stack, octet: int) -> str:
    return f"{stack.spec.network}.{octet}"


def _client(stack: Stack, source: str | None = None, identity: tuple[str, str] | None = None) -> httpx.Client:
    """An HTTPS client trusting the stack's CA, presenting the CLI's certificate (or ``identity``)."""
    ca = str(stack.spec.tls_dir / "ca.crt")
    cert, key = identity or stack.spec.tls_files("cli")
    context = client_context(ca, cert, key)
    return httpx.Client(transport=httpx.HTTPTransport(verify=context, local_address=source), timeout=10)


def _auth(stack: Stack) -> tuple[str, str]:
    creds = stack.describe()["api_auth"]
    return creds["username"], creds["password"]


def _refused(http: httpx.Client, method: str, url: str) -> bool:
    try:
        http.request(method, url, json={} if method in ("POST", "DELETE") else None)
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
        return True
    return False


def _stats(host: str, port: int) -> list[dict[str, str]]:
    text = httpx.get(f"http://{host}:{port}/;csv", timeout=5).text
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return [r for r in rows if r.get("svname") not in ("FRONTEND", "BACKEND")]


def _served_serial(host: str, port: int, stack: Stack) -> int:
    context = client_context(str(stack.spec.tls_dir / "ca.crt"), *stack.spec.tls_files("cli"))
    with context.wrap_socket(socket.create_connection((host, port), 5), server_hostname=host) as sock:
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _serial_of(path: str) -> int:
    return x509.load_pem_x509_certificate(Path(path).read_bytes()).serial_number


def test_haproxy_checks_every_agent_over_mutual_tls(stack: Stack) -> None:
    cfg = (stack.spec.dir / "haproxy.cfg").read_text()
    tls = stack.spec.tls_dir
    assert f"check-ssl verify required ca-file {tls}/ca.crt crt {tls}/haproxy.pem" in cfg
    r = stack.spec.router
    rows = {(row["pxname"], row["svname"]): row for row in _stats(r.bind_host, r.stats)}
    primary = primary_name(stack)
    assert rows[("primary", str(primary))]["status"] == "UP"
    assert rows[("primary", str(primary))]["check_status"] == "L7OK"  # the agent's 200, over TLS
    standbys = [n for (px, n), row in rows.items() if px == "replicas" and row["status"] == "UP"]
    assert sorted(standbys) == sorted(n for n in ("node1", "node2", "node3") if n != primary)


def test_no_certificate_or_another_cas_gets_no_answer_at_all(stack: Stack, tmp_path: Path) -> None:
    url = stack.spec.api_url(0)
    trust = ssl.create_default_context(cafile=str(stack.spec.tls_dir / "ca.crt"))
    anonymous = httpx.Client(verify=trust, timeout=10)
    stranger = Pki(tmp_path / "stranger", "another CA")
    foreign = stranger.issue_client("cli")
    with anonymous, _client(stack, identity=(str(foreign.cert), str(foreign.key))) as outsider:
        for http in (anonymous, outsider):
            for method, path in (("GET", "/primary"), ("OPTIONS", "/replica"), ("GET", "/patroni"),
                                 ("POST", "/switchover"), ("DELETE", "/switchover")):  # fmt: skip
                assert _refused(http, method, url + path), (method, path)
    with _client(stack) as member_of_the_club:
        assert member_of_the_club.get(url + "/patroni").status_code == 200


def test_an_address_outside_the_allowlist_cannot_call_operations(stack: Stack) -> None:
    url = stack.spec.api_url(0)
    with _client(stack, _source(stack, OUTSIDE)) as outside:
        reply = outside.request("DELETE", url + "/switchover", json={}, auth=_auth(stack))
        assert reply.status_code == 403, reply.text
        assert f"{_source(stack, OUTSIDE)} may not call operations" in reply.json()["error"]
        assert outside.get(url + "/patroni").status_code == 200  # reads stay open
        assert outside.get(url + "/cluster").status_code == 200
    with _client(stack, _source(stack, INSIDE)) as inside:
        reply = inside.request("DELETE", url + "/switchover", json={}, auth=_auth(stack))
        assert reply.status_code == 404, reply.text  # let in: there is just no switchover to cancel


@pytest.fixture
def checking_haproxy(stack: Stack, tmp_path: Path) -> Iterator[Path]:
    """A second HAProxy from `pgwarden haproxy-config --check-interval 100`, on its own address;
    yields its log, where every failed check is written with HAProxy's reason."""
    host = _source(stack, 2)
    result = CliRunner().invoke(
        app,
        ["haproxy-config", "--dir", str(stack.spec.dir), "--bind", host, "--check-interval", "100"],
    )
    assert result.exit_code == 0, result.output
    assert "check-ssl verify required ca-file" in result.stdout and " crt " in result.stdout
    cfg = tmp_path / "haproxy.cfg"
    # Every check's failure, with HAProxy's reason, goes to its log (what a failed test shows).
    logged = result.stdout.replace("global\n", "global\n    log stderr local0\n", 1)
    logged = logged.replace("defaults\n", "defaults\n    log global\n    option log-health-checks\n", 1)
    cfg.write_text(logged)
    log = tmp_path / "haproxy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=out)
    try:
        wait_for(lambda: _up_servers(host, 7000) == 6 or proc.poll() is not None, 30, "the second HAProxy")
        assert proc.poll() is None, log.read_text()
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _up_servers(host: str, port: int) -> int:
    """Servers that answer their checks as expected: UP, or DOWN on a 503 (the other role)."""
    try:
        rows = _stats(host, port)
    except httpx.HTTPError:
        return 0
    return sum(r["status"] == "UP" or r.get("check_code") == "503" for r in rows)


def _failed_checks(log: Path, start: int = 0) -> list[str]:
    """HAProxy's log lines of checks that failed from line ``start`` on, a 503 aside (the answer
    of a member in the other role: a working check)."""
    lines = log.read_text().splitlines()[start:]
    failed = [line for line in lines if "Health check for server" in line and " failed, " in line]
    return [line.split("]: ", 1)[-1] for line in failed if "code: 503" not in line and line.startswith("<")]


def test_rotated_certificates_are_served_without_one_failed_check(
    stack: Stack, checking_haproxy: Path
) -> None:
    log = checking_haproxy
    time.sleep(5)  # a baseline: how the checks fare on this machine without a rotation
    baseline = _failed_checks(log)
    print(f"baseline (5 s, no rotation): {len(baseline)} failed checks: {baseline}")
    start = len(log.read_text().splitlines())
    pki = Pki(stack.spec.tls_dir)
    spec = stack.spec
    # node1 and node3: rotated, then SIGHUP. node2: rotated by its files alone, first through a
    # half-written certificate, which must keep the old pair serving until the whole one lands.
    node2_cert = Path(spec.tls_files("node2")[0])
    serving = _serial_of(str(node2_cert))
    whole = node2_cert.read_bytes()
    node2_cert.write_bytes(whole[: len(whole) // 2])
    time.sleep(5)  # more than two looks at the files
    assert _served_serial(spec.node_host(1), spec.api_port, stack) == serving
    node2_cert.write_bytes(whole)  # the writer finishes (the same pair again), then a rotation
    for i in range(3):
        pki.rotate(spec.node_name(i))
        if i != 1:
            os.kill(stack.pids[spec.node_name(i)], signal.SIGHUP)
    for i in range(3):
        expected = _serial_of(spec.tls_files(spec.node_name(i))[0])
        host_i = spec.node_host(i)
        wait_for(
            lambda h=host_i, e=expected: _served_serial(h, spec.api_port, stack) == e,
            20,
            f"{spec.node_name(i)} serving its new certificate",
        )
    time.sleep(2)  # twenty more checks after the last reload
    failed = _failed_checks(log, start)
    print(f"during the rotation: {len(failed)} failed checks: {failed}")
    # A certificate problem fails the handshake ("Layer6 invalid response") or resets the
    # connection ("Layer4 connection problem"); a timeout is this machine's load: with check-ssl,
    # HAProxy gives the TCP and TLS handshakes min(timeout connect, inter) = 100 ms.
    broken = [line for line in failed if "timeout" not in line]
    assert broken == [], f"checks failed during the rotation: {broken}"
    logs = {spec.node_name(i): (spec.dir / "logs" / f"{spec.node_name(i)}.log").read_text() for i in range(3)}
    assert "reloaded the REST API's certificate (on SIGHUP)" in logs["node1"]
    assert "reloaded the REST API's certificate (its files changed)" in logs["node2"]
    assert "not a complete PEM certificate or key" in logs["node2"]
    assert "reloaded the certificate presented to peers" in logs["node3"]
    assert all(stack.statuses().values()), "every agent still answers"


def test_switchover_under_writes_with_agents_talking_over_mutual_tls(stack: Stack) -> None:
    wait_for(lambda: stack.healthy()[0], 120, "one primary and every standby streaming")
    old = primary_name(stack)
    assert old is not None
    candidate = next(n for n in ("node1", "node2", "node3") if n != old)
    r = stack.spec.router
    router = conninfo(stack, r.bind_host, r.primary, 2)
    writer = Writer(router, table="tls_switchover_writes")
    writer.prepare()
    target = dataclasses.replace(target_from_stack(stack.spec.dir), bind_address=_source(stack, INSIDE))
    with ClusterClient(target) as client, WriterWatch(stack) as watch, writer:
        assert writer.wait_for_acks(25, 30), "no writes acknowledged before the switchover"
        body = {"leader": old, "candidate": candidate}
        answer = client.call(client.leader(), "POST", "/switchover", body, 60)
        assert answer.document["leader"] == candidate
        assert writer.wait_for_acks(25, 30), "no writes acknowledged through HAProxy after the switchover"
    assert primary_name(stack) == candidate
    assert missing_ids(router, writer.table, writer.report.acknowledged) == []
    assert watch.overlaps == []
    wait_for(lambda: stack.healthy()[0], 120, "the old primary streaming from the new one")
