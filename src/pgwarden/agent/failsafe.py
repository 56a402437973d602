"""Failsafe mode's I/O: the promises this member gives (``POST /failsafe``), and a leader's round of asking.

``PromiseBox`` holds the promise this member gave a leader writing without etcd, and closes the
one gap a rule cannot: between the loop's observation (no promise yet, no leader in etcd: race)
and its AcquireLeader, the API may promise the old leader. So racing and promising exclude each
other under one lock: the executor's AcquireLeader first calls ``begin_race`` (refused while a
promise holds), and a promise is refused while a race is under way. Whether a promise may be
given at all is ``ha.rules.failsafe.refuse_promise``, a pure function of the member's last view.

``FailsafeClient`` asks every member at once, with one deadline for the whole round.
"""

from __future__ import annotations

import json
import logging
import math
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from pgwarden.agent.lease import monotonic
from pgwarden.ha.observation import Promise
from pgwarden.ha.rules.failsafe import refuse_promise
from pgwarden.model import ClusterView, LocalState
from pgwarden.model.deadline import holds
from pgwarden.outbound_http import HttpClient, TransportError
from pgwarden.tls import client_context

log = logging.getLogger(__name__)

# A promise's answer is a small JSON document; a member answering more is not listened to further.
MAX_ANSWER_BYTES = 64 * 1024


class PromiseBox:
    """This member's promise to a failsafe leader, and the interlock with its own racing."""

    def __init__(self, clock: Callable[[], float] = monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._promise: Promise | None = None
        self._racing_until = -math.inf

    def current(self) -> Promise | None:
        """The promise while it holds, else None."""
        with self._lock:
            return self._active(self._clock())

    def _active(self, now: float) -> Promise | None:
        promise = self._promise
        return promise if promise is not None and holds(promise.until, now) else None

    def grant(
        self, leader: str, seconds: float, me: str, view: ClusterView, local: LocalState
    ) -> tuple[float, str | None]:
        """Promise ``leader`` for ``seconds`` from now; returns (seconds promised, refusal or None)."""
        with self._lock:
            now = self._clock()
            held = self._active(now)
            why = refuse_promise(me, leader, seconds, view, local, held, now < self._racing_until, now)
            if why is not None:
                return 0.0, why
            until = now + seconds
            if held is not None and held.until > until:
                until = held.until  # a promise is never shortened
            self._promise = Promise(leader, until)
            return until - now, None

    def begin_race(self, hold: float) -> str | None:
        """Before racing for the key: None, and promises are refused for ``hold`` seconds; or why
        this member may not race (it holds a promise)."""
        with self._lock:
            now = self._clock()
            held = self._active(now)
            if held is not None:
                return f"promised {held.leader} for {held.until - now:.1f}s more (failsafe mode)"
            self._racing_until = now + hold
            return None

    def end_race(self) -> None:
        """The race was lost (the key was taken): promises may be given again."""
        with self._lock:
            self._racing_until = -math.inf


class FailsafeClient:
    """A leader's round of ``POST /failsafe`` to every member, in parallel, within one deadline."""

    def __init__(
        self,
        me: str,
        api_url: str,
        conn_url: str,
        auth: tuple[str, str] | None,
        timeout: float,
        bind_address: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: verifies the members and presents this agent's client certificate, as the peer
        client does (a POST /failsafe is an operation: api.tls.verify_client applies to it)."""
        self._body: dict[str, Any] = {"name": me, "api_url": api_url, "conn_url": conn_url}
        self._timeout = timeout
        verify = tls or client_context(None, insecure=True)
        self._http = HttpClient(source=bind_address, tls=verify, basic_auth=auth)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="failsafe")

    def ask(self, members: Sequence[tuple[str, str]], seconds: float) -> Mapping[str, str]:
        """Ask every (name, REST API URL) to promise for ``seconds``; returns who did not, and why."""
        body = {**self._body, "promise_seconds": seconds}
        # A blank URL: the one in etcd is outside member_networks (model/trust.py), never called.
        refused = {name: "its REST API URL in etcd is not trusted" for name, url in members if not url}
        futures = {self._pool.submit(self._ask, url, body): name for name, url in members if url}
        done, _ = wait(futures, timeout=self._timeout)
        for future, name in futures.items():
            if future not in done:
                refused[name] = f"no answer within {self._timeout:g}s"
                future.cancel()
            elif (why := future.result()) is not None:
                refused[name] = why
        return refused

    def _ask(self, url: str, body: Mapping[str, Any]) -> str | None:
        payload = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        try:
            with self._http.stream(
                "POST", f"{url}/failsafe", body=payload, headers=headers, timeout=self._timeout
            ) as reply:
                status, text = reply.status, reply.read(MAX_ANSWER_BYTES).decode("utf-8", "replace")
        except (TransportError, ValueError) as exc:  # ValueError: a URL that is no http(s) URL
            return f"unreachable: {exc or type(exc).__name__}"
        if status == 200:
            return None
        try:
            doc = json.loads(text)
            why = doc.get("error") if isinstance(doc, dict) else None
        except ValueError:
            why = None
        return f"HTTP {status}: {why or text[:200]}"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
