"""A REST API that answers junk: each request gets the next kind in turn, one of them a body that never ends.

Stands in for a member whose agent is broken or hostile (tests of `PeerClient` and the hostile-input
suite register it in etcd as a member). Every answer is bounded in time: the endless body stops
after ``endless_for`` seconds or when the client hangs up, the slow one after ``slow_for``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[["_Handler"], None]


def _body(data: bytes, content_type: str = "application/json") -> Answer:
    def answer(handler: _Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def _json(document: Any) -> Answer:
    return _body(json.dumps(document).encode())


def _endless(handler: _Handler) -> None:
    """A chunked body that goes on (a valid-looking start, then padding) until the client leaves."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    deadline = time.monotonic() + handler.server.endless_for  # type: ignore[attr-defined]
    chunk = b'{"state": "running", "pad": "' + b"x" * 4096
    try:
        while time.monotonic() < deadline:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.flush()
            chunk = b"x" * 4096
            time.sleep(0.01)
    except OSError:
        return  # the client hung up: what a bounded reader does


def _slow(handler: _Handler) -> None:
    time.sleep(handler.server.slow_for)  # type: ignore[attr-defined]
    _json({"role": "replica", "state": "running"})(handler)


# The kinds of junk, in the order requests get them (then round again).
KINDS: dict[str, Answer] = {
    "empty list": _json([]),
    "null": _json(None),
    "xlog a string": _json({"xlog": "a"}),
    "priority a string": _json({"role": "replica", "state": "running", "tags": {"failover_priority": "x"}}),
    "200000-deep nesting": _body(b"[" * 200_000 + b"]" * 200_000),
    "huge integers": _body(b'{"timeline": 1' + b"0" * 5000 + b', "xlog": {"location": 1e999}}'),
    "negative LSN": _json({"state": "running", "xlog": {"received_location": -5}}),
    "not UTF-8": _body(b'{"role": "\xff\xfe", "state": "running"}'),
    "truncated JSON": _body(b'{"role": "replica", "state": "runn'),
    "a megabyte": _json({"state": "running", "pad": "x" * 1024 * 1024}),
    "HTML error page": _body(b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    "endless body": _endless,
    "slow answer": _slow,
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        kind = self.server.next_kind()  # type: ignore[attr-defined]
        self.server.served.append(kind)  # type: ignore[attr-defined]
        KINDS[kind](self)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


class JunkPeer:
    """``with JunkPeer("127.0.0.1") as peer:`` serves junk on ``peer.url`` until the block ends."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        kinds: list[str] | None = None,
        endless_for: float = 30.0,
        slow_for: float = 5.0,
    ) -> None:
        self._server = ThreadingHTTPServer((host, 0), _Handler)
        self._server.daemon_threads = True
        # A client hanging up on the endless body is what a bounded reader does: no traceback.
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        order: Iterator[str] = itertools.cycle(kinds or list(KINDS))
        lock = threading.Lock()

        def next_kind() -> str:
            with lock:
                return next(order)

        self._server.next_kind = next_kind  # type: ignore[attr-defined]
        self._server.served = []  # type: ignore[attr-defined]
        self._server.endless_for = endless_for  # type: ignore[attr-defined]
        self._server.slow_for = slow_for  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def served(self) -> list[str]:
        """The kinds answered so far, in order."""
        return list(self._server.served)  # type: ignore[attr-defined]

    def __enter__(self) -> JunkPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
