"""The HTTP server of the REST API: health endpoints and status, answered from the snapshot."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pgwarden.agent.snapshot import SnapshotHolder, status_document
from pgwarden.api.facts import facts_of, query_of
from pgwarden.ha.health import verdict

log = logging.getLogger(__name__)

_STATUS_PATHS = frozenset({"patroni", "status"})


class ApiServer:
    def __init__(self, host: str, port: int, snapshots: SnapshotHolder) -> None:
        handler = type("Handler", (_Handler,), {"snapshots": snapshots})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="api", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    snapshots: SnapshotHolder
    protocol_version = "HTTP/1.1"
    server_version = "pgwarden"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _route(self, with_body: bool) -> None:
        url = urlsplit(self.path)
        endpoint = url.path.strip("/")
        snap = self.snapshots.get()
        doc = status_document(snap)
        if endpoint in _STATUS_PATHS:
            code = 200
        else:
            try:
                query = query_of(dict(parse_qsl(url.query)))
            except ValueError as exc:
                self._send(400, {"error": str(exc)}, with_body)
                return
            code = 200 if verdict(endpoint, facts_of(snap), query) else 503
        self._send(code, doc, with_body)

    def _send(self, code: int, doc: dict[str, Any], with_body: bool) -> None:
        body = json.dumps(doc).encode() if with_body else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._route(with_body=True)

    def do_HEAD(self) -> None:
        self._route(with_body=False)

    def do_OPTIONS(self) -> None:
        self._route(with_body=False)
