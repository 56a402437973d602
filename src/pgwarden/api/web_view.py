"""The live web view: a page, its script and style (package files), and the compact state it polls.

``GET /ui`` serves ``web/index.html``, which loads ``/ui/app.js`` and ``/ui/app.css`` from the
same agent (no CDN, no external asset: the Content-Security-Policy allows this origin only) and
polls ``GET /ui/state`` every second and ``GET /cluster/events`` every few seconds. The files are
read from the package (importlib.resources) on the first request, not at import: an agent nobody
looks at never loads them. ``/ui/state`` is ``/cluster`` (members with role, state, timeline,
lag and each member's last decision) plus the timeline history and the serving agent's view of
etcd and failsafe mode, rendered once per snapshot however many browsers poll it.

Read-only: every request is a GET answered like ``/cluster`` (no credentials needed; with
``api.tls.verify_client: required`` the browser must present a client certificate).
"""

from __future__ import annotations

import json
import threading
import time
from importlib import resources
from typing import Any

from pgwarden.agent.lease import monotonic
from pgwarden.agent.snapshot import Snapshot, SnapshotHolder
from pgwarden.api.contract import Operations
from pgwarden.documents.render import history_objects

HISTORY_SHOWN = 10
ASSETS: dict[str, tuple[str, str]] = {  # path below /ui -> (package file, content type)
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
}
# The page may load and call only this agent; nothing inline, no frames, no forms.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


class WebView:
    def __init__(self, snapshots: SnapshotHolder, operations: Operations) -> None:
        self._snapshots = snapshots
        self._ops = operations
        self._lock = threading.Lock()
        self._assets: dict[str, bytes] = {}
        self._state: tuple[Snapshot, bytes] | None = None

    def asset(self, path: str) -> tuple[bytes, str]:
        """The body and content type of ``/ui/<path>``; KeyError for any other path."""
        filename, content_type = ASSETS[path]
        with self._lock:
            body = self._assets.get(filename)
            if body is None:
                body = resources.files("pgwarden.api").joinpath("web", filename).read_bytes()
                self._assets[filename] = body
        return body, content_type

    def state(self) -> bytes:
        """``GET /ui/state``, rendered once per snapshot (the ``time`` field is the snapshot's)."""
        snap = self._snapshots.get()
        with self._lock:
            cached = self._state
            if cached is not None and cached[0] is snap:
                return cached[1]
        body = json.dumps(self.state_document(snap), default=str).encode()
        with self._lock:
            self._state = (snap, body)
        return body

    def state_document(self, snap: Snapshot) -> dict[str, Any]:
        document: dict[str, Any] = dict(self._ops.cluster())
        # Named fields, not /history's Patroni arrays: the page shows each entry's reason and event.
        document["history"] = history_objects(snap.view)[-HISTORY_SHOWN:]
        document["served_by"] = snap.config.name
        document["synchronous_mode"] = snap.view.config.synchronous_mode.value
        document["failsafe_mode"] = snap.view.config.failsafe_mode
        document["failsafe_active"] = snap.failsafe_active(monotonic())
        document["dcs_ok"] = snap.store_ok
        # When the serving agent's loop last looked (wall clock): the page says how fresh it is.
        age = monotonic() - snap.loop_at if snap.loop_at else None
        document["observed_at"] = round(time.time() - age, 3) if age is not None else None
        return document
