"""The agent's HTTP client against real HTTP(S) servers on loopback: deadlines, kept connections,
source binding, streamed and capped bodies, TLS with client certificates."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pgwarden.local.pki import Pki
from pgwarden.outbound_http import ConnectError, HttpClient, ReadError, Timeout
from pgwarden.tls import client_context

SLACK = 1.0  # the machine is shared and loaded: scheduling, not the client, takes this


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def _answer(self, body: bytes = b"") -> None:
        path = self.path
        if path == "/hang":
            time.sleep(3)
            return
        if path == "/lines":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for text in (b'{"a": 1}\n{"b"', b": 2}\n", b'{"c": 3}'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(text), text))
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
            return
        if path == "/trickle":  # a body that never ends: a byte every 0.1 s
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
            return
        if path == "/big":
            data = b"y" * 200_000
        else:
            data = json.dumps(
                {
                    "client": self.client_address[0],
                    "port": self.client_address[1],
                    "auth": self.headers.get("Authorization"),
                    "proxy": self.headers.get("Proxy-Authorization"),
                    "got": body.decode(),
                }
            ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if path == "/drop":  # closes the kept connection without saying so (as a restarted member)
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def server(tls: ssl.SSLContext | None = None) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def ask(http: HttpClient, url: str, timeout: float = 5.0, **kwargs: object) -> dict[str, object]:
    with http.stream("GET", url, timeout=timeout, **kwargs) as reply:  # type: ignore[arg-type]
        assert reply.status == 200
        answer = json.loads(reply.read(1 << 20))
    assert isinstance(answer, dict)
    return answer


@pytest.fixture
def http() -> Iterator[HttpClient]:
    client = HttpClient(source="127.0.0.2", basic_auth=("user", "pw"))
    yield client
    client.close()


def test_requests_leave_from_the_source_address_on_one_kept_connection(http: HttpClient) -> None:
    with server() as url:
        first, second = ask(http, url + "/a"), ask(http, url + "/b")
    assert first["client"] == second["client"] == "127.0.0.2"
    assert first["port"] == second["port"]  # the same connection served both
    assert first["auth"] == "Basic dXNlcjpwdw=="


def test_a_kept_connection_the_server_closed_is_not_reused(http: HttpClient) -> None:
    with server() as url:
        first = ask(http, url + "/drop")
        time.sleep(0.2)  # the server's close reaches us while the connection is idle
        second = ask(http, url + "/a")
    assert first["port"] != second["port"]


def test_a_post_carries_its_body_and_proxies_in_the_environment_are_ignored(
    http: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.9:1")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.9:1")
    with server() as url, http.stream("POST", url + "/p", timeout=5, body=b'{"x": 1}') as reply:
        assert json.loads(reply.read(1 << 20))["got"] == '{"x": 1}'


def test_a_streamed_answer_arrives_line_by_line(http: HttpClient) -> None:
    with server() as url, http.stream("GET", url + "/lines", timeout=5) as reply:
        assert [json.loads(line) for line in reply.lines()] == [{"a": 1}, {"b": 2}, {"c": 3}]
        assert reply.complete


def test_a_body_that_never_ends_is_cut_at_the_deadline_and_its_connection_dropped(http: HttpClient) -> None:
    with server() as url:
        started = time.monotonic()
        with pytest.raises(Timeout), http.stream("GET", url + "/trickle", timeout=0.5) as reply:
            reply.read(1 << 20)
        assert time.monotonic() - started < 0.5 + SLACK
        assert ask(http, url + "/a")["port"]  # a new connection serves the next request


def test_an_answer_larger_than_the_cap_is_refused(http: HttpClient) -> None:
    with server() as url:
        with (
            pytest.raises(ReadError, match="larger than 1000 bytes"),
            http.stream("GET", url + "/big", timeout=5) as reply,
        ):
            reply.read(1000)
        first, second = ask(http, url + "/a"), ask(http, url + "/b")
    assert first["port"] == second["port"]


def test_a_server_that_does_not_answer_costs_the_deadline(http: HttpClient) -> None:
    with server() as url:
        started = time.monotonic()
        with pytest.raises(Timeout), http.stream("GET", url + "/hang", timeout=0.5):
            pass
        assert time.monotonic() - started < 0.5 + SLACK


def test_a_closed_port_is_refused_at_once(http: HttpClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening
        with (
            pytest.raises(ConnectError, match="refused"),
            http.stream("GET", f"http://127.0.0.1:{port}/", timeout=5),
        ):
            pass


def test_threads_share_the_client(http: HttpClient) -> None:
    with server() as url, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: ask(http, f"{url}/{i}"), range(80)))
    assert {a["client"] for a in answers} == {"127.0.0.2"}


def test_not_an_http_url_is_a_value_error(http: HttpClient) -> None:
    with pytest.raises(ValueError, match="not an http"), http.stream("GET", "etcd://x/", timeout=1):
        pass


# --- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki"), "cluster CA")
    pki.issue_server("server", ["127.0.0.1"])
    pki.issue_client("agent")
    return pki


def _requiring_client_certs(pki: Pki) -> ssl.SSLContext:
    files = pki.paths("server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    context.load_verify_locations(pki.ca_cert)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _client(pki: Pki, with_cert: bool) -> ssl.SSLContext:
    agent = pki.paths("agent")
    cert, key = (str(agent.cert), str(agent.key)) if with_cert else (None, None)
    return client_context(str(pki.ca_cert), cert, key)


def test_tls_with_a_client_certificate(pki: Pki) -> None:
    with server(_requiring_client_certs(pki)) as url:
        http = HttpClient(tls=_client(pki, with_cert=True), source="127.0.0.2")
        try:
            first, second = ask(http, url + "/a"), ask(http, url + "/b")
        finally:
            http.close()
    assert first["port"] == second["port"] and first["client"] == "127.0.0.2"


def test_tls_without_the_client_certificate_the_server_wants_fails(pki: Pki) -> None:
    with server(_requiring_client_certs(pki)) as url:
        http = HttpClient(tls=_client(pki, with_cert=False))
        # TLS 1.3: the refusal arrives with the first read, after the handshake
        with pytest.raises((ConnectError, ReadError)):
            ask(http, url + "/a")


def test_a_server_outside_the_trusted_cas_is_refused_unless_verification_is_off(
    pki: Pki, tmp_path: Path
) -> None:
    other = Pki(tmp_path, "another CA")
    other.issue_client("someone")
    with server(_requiring_client_certs(pki)) as url:
        stranger = HttpClient(tls=client_context(str(other.ca_cert)))
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            ask(stranger, url + "/a")
        system = HttpClient()  # the system's CAs
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            ask(system, url + "/a")
    with server(_tls_server_only(pki)) as url:
        unverified = client_context(None, insecure=True)  # what peers use without api.tls.cafile
        assert ask(HttpClient(tls=unverified), url + "/a")["client"] == "127.0.0.1"


def _tls_server_only(pki: Pki) -> ssl.SSLContext:
    files = pki.paths("server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return context


def test_a_line_longer_than_the_limit_is_refused(http: HttpClient) -> None:
    with (
        server() as url,
        http.stream("GET", url + "/big", timeout=5) as reply,
        pytest.raises(ReadError, match="longer than 100000 bytes"),
    ):
        list(reply.lines(100_000))
