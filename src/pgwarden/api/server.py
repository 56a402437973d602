"""The REST API's HTTP server: reads requests off the wire (optionally TLS), lets ``RestApi`` answer them.

A standard-library threading server: every connection gets its own thread, so a switchover call
waiting for its new primary never delays an HAProxy health check.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.api.contract import Operations
from pgwarden.api.routes import WRITE_METHODS, Request, Response, RestApi, error_response
from pgwarden.model import ApiSettings

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # bytes; a dynamic config is a few kB
# A body over MAX_BODY but under this is read and dropped before the 413, so the client, still
# sending, sees the answer instead of a reset connection; a bigger one gets the answer and a close.
_DRAIN_LIMIT = 16 * MAX_BODY
# Seconds a client may stay silent mid-request, or idle between keep-alive requests, before its
# connection (and thread) is dropped; an operation's own run time does not count.
IDLE_TIMEOUT = 30.0
_POLL_INTERVAL = 0.05  # how often the accept loop checks for stop(), i.e. how long stop() takes


class ApiServer:
    """Listens on ``settings.listen`` (HTTPS when ``settings.certfile`` is set) once started."""

    def __init__(self, settings: ApiSettings, snapshots: SnapshotHolder, operations: Operations) -> None:
        self.api = RestApi(settings, snapshots, operations)
        handler = type("Handler", (_Handler,), {"api": self.api})
        # Load the certificate before binding, so a bad file leaves no socket behind.
        tls = tls_context(settings.certfile, settings.keyfile) if settings.certfile else None
        host = settings.listen.host
        server_class = _Server6 if ":" in host else _Server
        self._httpd = server_class((host, settings.listen.port), handler)
        self._httpd.tls = tls
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(_POLL_INTERVAL,), name="api", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop that never ran
            self._httpd.shutdown()
        self._httpd.server_close()


def tls_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The standard library's backlog of 5 overflows when HAProxy instances and monitoring open a
    # burst of checks at once: the kernel drops the SYN and the client retries after a second.
    request_queue_size = 128
    tls: ssl.SSLContext | None = None

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup the API never needs.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None or not isinstance(request, socket.socket):
            super().finish_request(request, client_address)
            return
        # The TLS handshake happens here, in the connection's own thread, not in the accept loop,
        # so a slow or silent client cannot stall every other client.
        request.settimeout(IDLE_TIMEOUT)
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            super().finish_request(connection, client_address)
        finally:
            connection.close()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    api: RestApi
    protocol_version = "HTTP/1.1"
    server_version = "pgwarden"
    timeout = IDLE_TIMEOUT
    # Headers and body go out as two writes; with Nagle on, the second waits for the client's
    # delayed ACK (~40 ms), which would make every health check slow.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The standard library answers protocol errors (bad request line, unknown method, headers
        # too long) with HTML; our clients parse JSON.
        self.close_connection = True
        if not self.request_version.startswith("HTTP/1."):  # garbage, not HTTP/0.9: say what went wrong
            self.request_version = "HTTP/1.1"
        phrase = message or HTTPStatus(code).phrase
        self._write(error_response(code, f"{phrase}{': ' + explain if explain else ''}"))

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _Refused as refused:
            self.close_connection = True  # the unread body would be taken for the next request
            self._write(refused.response)
            return
        if body is None:  # hung up mid-body, or already answered (an oversized body, drained)
            return
        response = self.api.answer(Request(self.command, self.path, body, self.headers.get("Authorization")))
        if self.command in WRITE_METHODS:
            log.info("%s %s from %s: %d", self.command, self.path, self.client_address[0], response.status)
        self._write(response)

    def _read_body(self) -> bytes | None:
        """The request body; None when there is nothing more to answer."""
        if self.headers.get("Transfer-Encoding"):
            raise _Refused(error_response(411, "send the body with a Content-Length header, not chunked"))
        text = self.headers.get("Content-Length")
        if text is None:
            return b""
        if not text.strip().isdigit():
            raise _Refused(error_response(400, f"the Content-Length header is not a number: {text!r}"))
        length = int(text)
        if length > MAX_BODY:
            too_large = error_response(413, f"the body is {length} bytes; the limit is {MAX_BODY}")
            if length <= _DRAIN_LIMIT and self._drain(length):
                self._write(too_large)
                return None
            raise _Refused(too_large)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return None
        return body

    def _drain(self, length: int) -> bool:
        """Read and drop ``length`` bytes; False when the client stopped sending first."""
        while length > 0:
            chunk = self.rfile.read(min(length, 64 * 1024))
            if not chunk:
                return False
            length -= len(chunk)
        return True

    def _write(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if response.body and self.command != "HEAD":
                self.wfile.write(response.body)
        except OSError as exc:  # the client went away; nothing to answer
            log.debug("cannot answer %s: %s", self.client_address[0], exc)
            self.close_connection = True

    do_GET = do_HEAD = do_OPTIONS = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
    do_TRACE = do_CONNECT = _serve


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response
