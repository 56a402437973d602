"""Where the time of a PostgreSQL crash goes: crash -> agent notices -> postmaster started ->
PostgreSQL accepting -> the agent's ``/primary`` answers 200 -> HAProxy marks the server UP ->
the writer's first acknowledged write.

Three pollers run from the crash until the writer is back (each bounded in time, each a thread
of its own so that one slow answer does not blur the others): the new postmaster's status in
postmaster.pid (``ready``: it accepts connections, as pg_ctl reads it), ``OPTIONS /primary`` on
its agent (what HAProxy asks), and HAProxy's stats CSV (the server's status in the ``primary``
listener). Two instants are read afterwards: when the new
postmaster started (``pg_postmaster_start_time()``) and, for pgwarden, when the agent decided to
start it (``GET /events``: the PRIMARY_STARTING run). Every instant is in seconds after the crash.
"""

from __future__ import annotations

import contextlib
import csv
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import psycopg

from bench.cluster import ClusterUnderTest
from pgwarden.agent.decision_log import read_run
from pgwarden.drill.writer import WriterReport
from pgwarden.fence.postmaster import postmaster, postmaster_pid

POLL = 0.01  # seconds between two polls of one poller: the resolution of each instant
BOUND = 120.0  # no poller outlives this, whatever happens


@dataclass(frozen=True)
class Timeline:
    """Instants in seconds after the crash; None where it was not seen."""

    noticed: float | None  # the agent decided to start PostgreSQL (pgwarden's GET /events)
    started: float | None  # the new postmaster's pg_postmaster_start_time()
    accepting: float | None  # the new postmaster's status reads "ready" (accepting connections)
    primary_ok: float | None  # first 200 from the agent's /primary after it answered otherwise
    router_down: float | None  # HAProxy marked the server DOWN (None: it stayed UP)
    router_up: float | None  # HAProxy marked it UP again
    acked: float  # the first acknowledged write (the RTO)
    failed_attempts: int  # the writer's failed attempts in between
    longest_attempt: float  # the slowest of them, seconds (a connect timeout shows here)

    def segments(self) -> dict[str, float]:
        """The split, in seconds, keyed by bench/report.py's metric names; a segment whose ends were
        not both seen is left out. When HAProxy never marked the server DOWN, the client's segment
        starts when PostgreSQL accepts."""
        down = self.router_down is not None
        router = self.router_up if down else self.accepting
        pairs = {
            "crash_noticed": (0.0, self.noticed),
            "crash_started": (0.0, self.started),
            "crash_recovery": (self.started, self.accepting),
            "crash_agent_ok": (self.accepting, self.primary_ok),
            "crash_router_up": (self.primary_ok, self.router_up if down else None),
            "crash_client": (router, self.acked),
        }
        found = {k: b - a for k, (a, b) in pairs.items() if a is not None and b is not None}
        found["crash_longest_attempt"] = self.longest_attempt
        return found


class _Poller:
    """Calls ``check`` every POLL seconds; remembers when it first returned True (monotonic)."""

    def __init__(self, name: str, check: Callable[[], bool | None], stop: threading.Event) -> None:
        self.first: float | None = None
        self._check = check
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name=f"crash-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join(10)

    def _run(self) -> None:
        deadline = time.monotonic() + BOUND
        while self.first is None and not self._stop.is_set() and time.monotonic() < deadline:
            asked = time.monotonic()
            with contextlib.suppress(Exception):
                if self._check():
                    # The instant the answer was asked for: a slow answer does not move it later.
                    self.first = asked
                    return
            self._stop.wait(POLL)


class CrashWatch:
    """Armed before the crash on the primary ``p``; ``crashed`` starts the clock and the pollers."""

    def __init__(self, cluster: ClusterUnderTest, p: int) -> None:
        self.cluster = cluster
        self.p = p
        self.node = cluster.nodes[p]
        self._stop = threading.Event()
        self.wall0 = 0.0
        self.mono0 = 0.0
        self._router_seen: set[str] = set()
        self._router_down: float | None = None
        self._primary_refused = False
        self._crashed_pid = postmaster_pid(str(self.node.data_dir))
        self.accepting = _Poller("accepting", self._accepts, self._stop)
        self.primary = _Poller("primary", self._primary_ok, self._stop)
        self.router = _Poller("router", self._router_up, self._stop)

    def crashed(self) -> None:
        self.wall0, self.mono0 = time.time(), time.monotonic()
        for poller in (self.accepting, self.primary, self.router):
            poller.start()

    def finish(self, report: WriterReport, acked_at: float) -> Timeline:
        """Stop the pollers; the instants, with ``acked_at`` the monotonic time of the first
        acknowledged write after the crash."""
        self._stop.set()
        for poller in (self.accepting, self.primary, self.router):
            poller.join()
        gap = [d for t, d in report.failures if self.mono0 <= t <= acked_at]
        return Timeline(
            noticed=self._noticed(),
            started=self._started(),
            accepting=self._since(self.accepting.first),
            primary_ok=self._since(self.primary.first),
            router_down=self._since(self._router_down),
            router_up=self._since(self.router.first),
            acked=acked_at - self.mono0,
            failed_attempts=len(gap),
            longest_attempt=max(gap, default=0.0),
        )

    def _since(self, mono: float | None) -> float | None:
        return None if mono is None else mono - self.mono0

    # --- the pollers' checks ----------------------------------------------------------------
    def _accepts(self) -> bool:
        """A new postmaster says it accepts connections: postmaster.pid's status line is "ready",
        as pg_ctl reads it (a file read: a connection attempt, forked and authenticated on a
        loaded machine, blurred this instant by up to 0.4 s)."""
        found = postmaster(str(self.node.data_dir))
        return found is not None and found.pid != self._crashed_pid and found.status == "ready"

    def _primary_ok(self) -> bool:
        """True at the first 200 after a refusal: the agent answers 200 until it noticed the crash."""
        if self._agent("OPTIONS", "/primary", 1).status_code != 200:
            self._primary_refused = True
            return False
        return self._primary_refused

    def _agent(self, method: str, path: str, timeout: float) -> httpx.Response:
        host, port = self.cluster.rest_address(self.p)
        verify = self.cluster.api_verify()
        scheme = "http" if verify is True else "https"
        url = f"{scheme}://{host}:{port}{path}"
        return httpx.request(method, url, timeout=timeout, verify=verify, trust_env=False)

    def _router_up(self) -> bool:
        """The server's status in HAProxy's ``primary`` listener: note when it goes DOWN; True once
        it is UP after having been DOWN, or UP while PostgreSQL accepts (it never went DOWN)."""
        router = self.cluster.router
        reply = httpx.get(f"http://{router.bind_host}:{router.stats}/;csv", timeout=1, trust_env=False)
        status = ""
        for row in csv.reader(io.StringIO(reply.text.lstrip("# "))):
            if row[:2] == ["primary", self.node.name]:
                status = row[17]
        if status.startswith("DOWN") and self._router_down is None:
            self._router_down = time.monotonic()
        if not status.startswith("UP"):
            return False
        return self._router_down is not None or self.accepting.first is not None

    # --- read afterwards --------------------------------------------------------------------
    def _started(self) -> float | None:
        with contextlib.suppress(psycopg.Error):
            with psycopg.connect(self.cluster.node_conninfo(self.p, 2), autocommit=True) as conn:
                row = conn.execute("SELECT extract(epoch FROM pg_postmaster_start_time())").fetchone()
            if row is not None and float(row[0]) >= self.wall0 - 1:
                return float(row[0]) - self.wall0
        return None

    def _noticed(self) -> float | None:
        if self.cluster.system != "pgwarden":
            return None  # Patroni's decisions are in its log only
        with contextlib.suppress(httpx.HTTPError, ValueError):
            document = self._agent("GET", "/events", 2).json()
            events = document.get("events") if isinstance(document, dict) else None
            for run in map(read_run, events if isinstance(events, list) else []):
                if run is not None and run.reason_code == "PRIMARY_STARTING" and run.since >= self.wall0:
                    return run.since - self.wall0
        return None
