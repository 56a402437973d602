"""The agent's HTTP requests to etcd and to its peers, over the standard library's ``http.client``.

Why not httpx (or urllib3): measured in the agent (bench/http_clients.py, docs/benchmarks.md),
httpx adds 7.3 MB of resident memory to the agent and urllib3 0.5 MB, ``http.client`` 0.1 MB (what
it needs, the agent has loaded already), and it costs the caller the least CPU per request (httpx
3-4 times as much, urllib3 about twice). What the agent needs of a client is small, and all here:

- one deadline per request, covering the connection, the sending and every read of the answer:
  each socket operation waits at most what is left of it (so does a connection attempt, capped
  further by ``connect``), and a body that trickles in past it ends with `Timeout`;
- the source address bound (``source``): tests cut one node's loopback address from the rest;
- TLS with the given context (client certificate, CA; a ``ReloadableClientContext`` hands every
  new connection the context built last), the system's CAs without one;
- answers streamed (`Reply.chunks`, `Reply.lines`), so a caller caps a body as it arrives;
- connections kept for ``keepalive`` seconds and shared between threads: one connection serves
  one request at a time; a kept connection the other side closed (readable while idle) is
  dropped before use, never sent a request it would lose;
- no proxy from the environment, no redirects, no decompression: none of them is wanted here.

Failures are one of `ConnectError`, `Timeout`, `ReadError` (all `TransportError`), whose text
is the one OpenSSL or the socket gave, which callers turn into sentences (dcs/etcd_tls.py).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

# Requests sent again once when a kept connection turns out closed by the server (never a POST:
# etcd may have acted on it).
_IDEMPOTENT = frozenset({"GET", "HEAD"})
# How many idle connections to one origin are kept; more (a burst of hedged renewals) are closed.
MAX_IDLE = 8
CHUNK = 64 * 1024
# The longest line `Reply.lines` returns by default.
MAX_LINE = 4 * 1024 * 1024


class TransportError(Exception):
    """No usable HTTP answer: the connection failed, timed out or broke."""


class ConnectError(TransportError):
    """The connection could not be made (refused, unreachable, TLS handshake refused)."""


class Timeout(TransportError):
    """The request's deadline passed (connecting, sending or reading)."""


class ReadError(TransportError):
    """The connection broke, or the other side did not speak HTTP, after it was made."""


class Reply:
    """The status, headers and (streamed) body of one answer, read within the request's deadline."""

    def __init__(self, response: http.client.HTTPResponse, sock: socket.socket, deadline: float) -> None:
        self.status = response.status
        self.headers = response.headers
        self._response = response
        self._sock = sock
        self._deadline = deadline

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives; `Timeout` when the deadline passes before its end."""
        while True:
            self._arm()
            try:
                chunk = self._response.read1(CHUNK)
            except TimeoutError as exc:
                raise Timeout(f"timed out reading the answer: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                raise ReadError(_text(exc)) from None
            if not chunk:
                return
            yield chunk

    def lines(self, limit: int = MAX_LINE) -> Iterator[bytes]:
        """The body line by line (without the newline), each at most ``limit`` bytes."""
        line = bytearray()
        for chunk in self.chunks():
            start = 0  # only the new bytes are searched: a long line costs no quadratic copying
            while (end := chunk.find(b"\n", start)) >= 0:
                line += chunk[start:end]
                yield self._line(line, limit)
                line.clear()
                start = end + 1
            line += chunk[start:]
            self._line(line, limit)
        if line:
            yield self._line(line, limit)

    @staticmethod
    def _line(line: bytearray, limit: int) -> bytes:
        if len(line) > limit:
            raise ReadError(f"a line of the answer is longer than {limit} bytes")
        return bytes(line)

    def read(self, limit: int) -> bytes:
        """The whole body; ReadError past ``limit`` bytes."""
        body = bytearray()
        for chunk in self.chunks():
            body += chunk
            if len(body) > limit:
                raise ReadError(f"answer larger than {limit} bytes")
        return bytes(body)

    @property
    def complete(self) -> bool:
        """The body was read to its end (the connection may serve another request)."""
        response = self._response
        return response.isclosed() or (not response.chunked and response.length == 0)

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise Timeout("timed out reading the answer")
        self._sock.settimeout(left)


class HttpClient:
    """Requests to any origin, on kept connections; thread-safe (see the module docstring)."""

    def __init__(
        self,
        *,
        source: str | None = None,
        tls: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        keepalive: float = 60.0,
    ) -> None:
        """``tls``: the context for https origins (verifying them, presenting a certificate);
        None verifies them against the system's CAs."""
        self._source = (source, 0) if source else None
        self._tls = tls
        self._headers = dict(headers or {})
        if basic_auth is not None:
            pair = f"{basic_auth[0]}:{basic_auth[1]}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        self._keepalive = keepalive
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str, int], list[tuple[http.client.HTTPConnection, float]]] = {}
        self._closed = False

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        connect: float | None = None,
    ) -> Iterator[Reply]:
        """Send the request and yield the answer (any status) to read within ``timeout`` seconds
        from now; ``connect`` caps the connection attempt further. Raises TransportError."""
        deadline = time.monotonic() + timeout
        origin, target = _origin(url)
        conn, reused = self._connection(origin, deadline, connect)
        reply = None
        try:
            try:
                reply = self._send(conn, method, target, body, headers, deadline)
            except ReadError:
                # A kept connection the server closed just as we sent (its FIN was not there yet
                # when _dropped looked): a GET is safe to send again, once, on a new connection.
                if not reused or method not in _IDEMPOTENT:
                    raise
                conn.close()
                conn, _ = self._connection(origin, deadline, connect, fresh=True)
                reply = self._send(conn, method, target, body, headers, deadline)
            yield reply
        finally:
            if reply is not None and reply.complete and not reply._response.will_close:
                reply._response.close()
                self._keep(origin, conn)
            else:
                conn.close()

    def close(self) -> None:
        """Close the kept connections; later requests still work (on new ones)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn, _ in conns:
                conn.close()

    # -- connections --------------------------------------------------------------------------

    def _connection(
        self, origin: tuple[str, str, int], deadline: float, connect: float | None, fresh: bool = False
    ) -> tuple[http.client.HTTPConnection, bool]:
        """A kept connection to ``origin`` (True) or a new one (False; always with ``fresh``)."""
        now = time.monotonic()
        with self._lock:
            kept = [] if fresh else self._idle.get(origin, [])
            while kept:
                idle, since = kept.pop()
                if now - since < self._keepalive and not _dropped(idle):
                    return idle, True
                idle.close()
        scheme, host, port = origin
        wait = deadline - now
        if connect is not None:
            wait = min(wait, connect)
        if wait <= 0:
            raise Timeout("timed out before connecting")
        conn: http.client.HTTPConnection
        if scheme == "https":
            context = self._tls if self._tls is not None else ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                host, port, timeout=wait, source_address=self._source, context=context
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=wait, source_address=self._source)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise Timeout(f"timed out connecting: {exc}") from None
        except OSError as exc:  # refused, unreachable, TLS handshake (ssl.SSLError is an OSError)
            conn.close()
            raise ConnectError(_text(exc)) from None
        # http.client writes the headers and the body in two sends: without this, Nagle's
        # algorithm holds the body back until the headers are acknowledged (a delayed ACK).
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, False

    def _keep(self, origin: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            kept = self._idle.setdefault(origin, [])
            if len(kept) < MAX_IDLE:
                kept.append((conn, time.monotonic()))
                return
        conn.close()

    def _send(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        deadline: float,
    ) -> Reply:
        sock = conn.sock
        assert sock is not None  # connected by _connection
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("timed out before sending")
        sock.settimeout(left)
        try:
            # A server may refuse before reading the request (TLS 1.3: a client certificate it
            # wants was not sent): its answer, or alert, says why; read it rather than the EOF.
            with contextlib.suppress(OSError):
                conn.request(method, target, body=body, headers={**self._headers, **(headers or {})})
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            response = conn.getresponse()
        except TimeoutError as exc:
            raise Timeout(f"timed out waiting for the answer: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ReadError(_text(exc)) from None
        return Reply(response, sock, deadline)


def _origin(url: str) -> tuple[tuple[str, str, int], str]:
    """(scheme, host, port) and the request target of ``url``; ValueError when it is no HTTP URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return (parts.scheme, parts.hostname, port), target


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle kept connection is readable only when the other side closed it (or sent junk)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
