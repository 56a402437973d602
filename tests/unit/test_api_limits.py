"""The REST API server's limits over real loopback sockets: slow clients, connection cap, deadlines,
busy workers, and the thread count that must not grow with any of them."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from pgwarden.api.contract import OperationResult
from pgwarden.api.server import exposure_warning
from pgwarden.api.workers import WorkerPool
from tests.support import api_fakes as fake


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _check(port: int, path: str = "/primary", method: str = "GET") -> tuple[int, float]:
    """One health check as HAProxy does it (new connection, HTTP/1.0); status and seconds taken."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"{method} {path} HTTP/1.0\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), time.monotonic() - started


@contextmanager
def _slow_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that each sent the start of a request and then stall."""
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            sock.sendall(b"GET /cluster HTTP/1.1\r\n")
            socks.append(sock)
        yield socks


def _drip(socks: list[socket.socket]) -> int:
    """One more byte on every slow connection; how many the server has closed meanwhile."""
    closed = 0
    for sock in socks:
        try:
            sock.sendall(b"X")
        except OSError:
            closed += 1
    return closed


def test_slow_loris_connections_never_delay_health_checks_nor_add_threads() -> None:
    """100 connections sending one byte a second against a cap of 40: the checks keep answering
    at once (a new connection takes the slot of the one that waited longest), no thread is added,
    and every slow connection is closed by its request deadline."""
    with fake.running_api(max_connections=40, request_timeout=3.0) as (url, _, _ops):
        port = _port(url)
        assert _check(port)[0] == 200
        threads = threading.active_count()
        with _slow_clients(port, 100) as socks:
            slowest = 0.0
            for _ in range(4):  # bounded: four seconds of dripping
                _drip(socks)
                for _ in range(10):
                    status, took = _check(port)
                    assert status == 200
                    slowest = max(slowest, took)
                time.sleep(1.0)
            assert threading.active_count() == threads, "slow clients must not cost threads"
            assert slowest < 1.0, f"a health check took {slowest:.3f}s behind slow clients"
            time.sleep(1.0)
            assert _drip(socks) + _drip(socks) >= 1  # by now every one was evicted or timed out
            assert all(_gone(sock) for sock in socks)


def _gone(sock: socket.socket) -> bool:
    """The server closed this connection (possibly after a 408)."""
    sock.settimeout(2)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except OSError:
        return False
    return True


def test_an_incomplete_request_gets_408_when_its_deadline_passes() -> None:
    with fake.running_api(request_timeout=0.5) as (url, _, _ops):
        with socket.create_connection(("127.0.0.1", _port(url)), timeout=5) as sock:
            sock.sendall(b"POST /reload HTTP/1.1\r\nContent-Length: 10\r\n\r\n{")
            started = time.monotonic()
            answer = sock.recv(65536)
            assert b" 408 " in answer.split(b"\r\n")[0]
            assert 0.3 < time.monotonic() - started < 3.0
        # A client that connects and sends nothing is closed too, quietly.
        with socket.create_connection(("127.0.0.1", _port(url)), timeout=5) as sock:
            assert sock.recv(65536) == b""


def test_an_idle_keep_alive_connection_is_closed_after_idle_timeout() -> None:
    with fake.running_api(idle_timeout=0.5) as (url, _, _ops):
        connection = http.client.HTTPConnection("127.0.0.1", _port(url), timeout=5)
        connection.request("GET", "/health")
        assert connection.getresponse().read() and connection.sock is not None
        sock = connection.sock
        started = time.monotonic()
        assert sock.recv(1) == b""  # the server closed it
        assert 0.3 < time.monotonic() - started < 3.0
        connection.close()


def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    with fake.running_api() as (url, _, ops):
        connection = http.client.HTTPConnection("127.0.0.1", _port(url), timeout=5)
        try:
            for _ in range(20):
                connection.request("GET", "/primary")
                assert connection.getresponse().read()
            connection.request("GET", "/cluster")
            assert json.loads(connection.getresponse().read())["leader"] == "node1"
        finally:
            connection.close()
        assert ops.calls == [("cluster", ())]


def test_operations_beyond_the_pool_and_its_queue_are_503_at_once() -> None:
    """4 operation threads and 16 waiting: the 21st concurrent switchover is told to retry."""
    release = threading.Event()

    class Stuck(fake.FakeOperations):
        def switchover(self, *args: object) -> OperationResult:  # type: ignore[override]
            release.wait(20)
            return OperationResult(200, "done")

    statuses: list[int] = []
    lock = threading.Lock()
    with fake.running_api(operations=Stuck()) as (url, _, _ops):
        port = _port(url)

        def call() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                body = json.dumps({"candidate": "node2"})
                connection.request("POST", "/switchover", body, {"Content-Type": "application/json"})
                status = connection.getresponse().status
            finally:
                connection.close()
            with lock:
                statuses.append(status)

        callers = [threading.Thread(target=call) for _ in range(24)]
        for caller in callers:
            caller.start()
        deadline = time.monotonic() + 10
        while len(statuses) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(statuses) == [503] * 4
        assert _check(port)[0] == 200  # the checks are not behind the stuck operations
        release.set()
        for caller in callers:
            caller.join(30)
    assert sorted(statuses) == [200] * 20 + [503] * 4


def test_a_non_ascii_content_length_is_400_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with fake.running_api() as (url, _, ops):
        with socket.create_connection(("127.0.0.1", _port(url)), timeout=5) as sock:
            sock.sendall("POST /reload HTTP/1.1\r\nContent-Length: ²\r\n\r\n{}".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        assert "Content-Length" in json.loads(body)["error"]
        assert _check(_port(url), "/health")[0] == 200
    assert ops.calls == []
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_a_silent_tls_client_does_not_block_the_handshakes_of_others(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    trust = ssl.create_default_context(cafile=str(cert))
    with fake.running_api(certfile=str(cert), keyfile=str(key)) as (url, _, _ops):
        port = _port(url)
        with (
            _slow_clients(port, 20),  # TCP connected, no ClientHello that TLS would accept
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            trust.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"GET /primary HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ")


def test_an_ipv6_listen_address_is_served() -> None:
    try:
        probe = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    probe.close()
    holder = fake.SnapshotHolder(fake.primary())
    server = fake.ApiServer(fake.api_settings(listen=fake.Address("::1", 0)), holder, fake.FakeOperations())
    server.start()
    try:
        connection = http.client.HTTPConnection("::1", server.port, timeout=5)
        connection.request("OPTIONS", "/primary")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"")
        assert connection.sock is not None
        connection.close()
    finally:
        server.stop()


def test_a_busy_worker_never_holds_up_the_next_job_while_the_pool_may_grow() -> None:
    pool = WorkerPool("test", threads=3, backlog=2)
    release, started = threading.Event(), threading.Semaphore(0)

    def stuck() -> None:
        started.release()
        release.wait(10)

    try:
        for _ in range(3):  # each on a thread of its own, though the first is busy
            assert pool.submit(stuck)
            assert started.acquire(timeout=5), "a job waited behind a busy thread"
        assert pool.thread_count == 3
        assert pool.submit(stuck) and pool.submit(stuck)  # the backlog of 2 waits
        assert not pool.submit(stuck)  # full: refused at once
    finally:
        release.set()
        pool.close()
    for _ in range(2):
        assert started.acquire(timeout=5)  # the queued ones ran once threads were free
    assert pool.thread_count == 3


def test_an_open_api_is_warned_about_at_every_start() -> None:
    wide = fake.api_settings(listen=fake.Address("0.0.0.0", 8008), allow_unauthenticated_writes=True)
    warning = exposure_warning(wide)
    assert warning is not None and "0.0.0.0:8008 without api.auth" in warning
    assert exposure_warning(fake.api_settings()) is None  # loopback
    assert exposure_warning(fake.api_settings(listen=fake.Address("0.0.0.0", 8008), username="a")) is None
