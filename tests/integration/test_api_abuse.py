"""API abuse on a running cluster (issue 11): 500 slow connections per node and a flood of
``GET /cluster`` while the primary's node dies.

What a user relies on, asserted: HAProxy's health checks keep answering on every node that was
not killed (HAProxy never records a check timeout or connection failure for them, and checks sent
the way HAProxy sends them answer well within its 1 s check timeout); the failover completes with
the usual RTO and nothing acknowledged is lost outside the kill's last second; the agents' thread
count and memory stay bounded (the API's cap holds the open connections, not a thread each).
Everything runs for a bounded time, from the test process, against loopback only.
"""

from __future__ import annotations

import csv
import http.client
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from pgwarden.local.stack import Stack
from tests.support.cluster import primary_name, running_stack, wait_for
from tests.support.invariants import Invariants, routed_primary

pytestmark = pytest.mark.integration

SLOW_PER_NODE = 500
FLOOD_THREADS_PER_NODE = 2
ABUSE_SECONDS = 180.0  # the abuse stops by itself after this, whatever the test does
RTO_BOUND = 12.0  # s; node-loss RTO is ~4-5 s (docs/faults.md), generous for a loaded machine
CHECK_TIMEOUT = 1.0  # HAProxy's `timeout check` (router/haproxy.py)
THREADS_MARGIN = 20  # the API may add 6 pool threads; peers, jobs and callbacks a few more
RSS_MARGIN_MB = 40.0
MAX_CONNECTIONS = 256  # api.max_connections' default


def _i(name: str) -> int:
    return int(name.removeprefix("node")) - 1


def _proc(pid: int) -> dict[str, int]:
    """Threads, RSS (kB) and open sockets of a live process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    sockets = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            sockets += fd.readlink().name.startswith("socket:")
        except OSError:
            continue
    return {"threads": int(fields["Threads"]), "rss_kb": int(fields["VmRSS"].split()[0]), "sockets": sockets}


@dataclass
class Abuse:
    """Slow clients, a flood of GET /cluster, HAProxy-style checks and a process sampler."""

    stack: Stack
    stop: threading.Event = field(default_factory=threading.Event)
    reconnects: int = 0
    flood_answers: dict[int, int] = field(default_factory=dict)  # status -> count
    # node -> [(when, seconds taken or None for a failure)]
    checks: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    samples: dict[int, list[dict[str, int]]] = field(default_factory=dict)  # agent pid -> samples
    haproxy_states: dict[str, set[str]] = field(default_factory=dict)  # node -> check_status seen
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _address(self, i: int) -> tuple[str, int]:
        return self.stack.spec.node_host(i), self.stack.spec.api_port

    def _running(self, deadline: float) -> bool:
        return not self.stop.is_set() and time.monotonic() < deadline

    def _slow(self, i: int, deadline: float) -> None:
        """SLOW_PER_NODE connections each sending one byte a second, reconnecting when closed."""
        socks: list[socket.socket | None] = [None] * SLOW_PER_NODE
        while self._running(deadline):
            started = time.monotonic()
            for k in range(SLOW_PER_NODE):
                sock = socks[k]
                try:
                    if sock is None:
                        sock = socket.create_connection(self._address(i), timeout=0.5)
                        sock.sendall(b"GET /cluster HTTP/1.1\r\nHost: x\r\n")
                        socks[k] = sock
                        with self._lock:
                            self.reconnects += 1
                    else:
                        sock.sendall(b"X")
                except OSError:
                    if sock is not None:
                        sock.close()
                    socks[k] = None
                if self.stop.is_set():
                    break
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))
        for sock in socks:
            if sock is not None:
                sock.close()

    def _flood(self, i: int, deadline: float) -> None:
        host, port = self._address(i)
        connection: http.client.HTTPConnection | None = None
        while self._running(deadline):
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(host, port, timeout=5)
                connection.request("GET", "/cluster")
                status = connection.getresponse()
                status.read()
                code = status.status
            except (OSError, http.client.HTTPException):
                if connection is not None:
                    connection.close()
                connection = None
                code = 0
                self.stop.wait(0.05)
            with self._lock:
                self.flood_answers[code] = self.flood_answers.get(code, 0) + 1
        if connection is not None:
            connection.close()

    def _check(self, deadline: float) -> None:
        """OPTIONS /primary on every node every 100 ms, a new connection each, as HAProxy asks."""
        names = [self.stack.spec.node_name(i) for i in range(self.stack.spec.nodes)]
        while self._running(deadline):
            for i, name in enumerate(names):
                started = time.monotonic()
                took: float | None
                try:
                    with socket.create_connection(self._address(i), timeout=CHECK_TIMEOUT) as sock:
                        sock.sendall(b"OPTIONS /primary HTTP/1.0\r\n\r\n")
                        answer = sock.recv(4096)
                    took = time.monotonic() - started if answer.startswith(b"HTTP/1.1 ") else None
                except OSError:
                    took = None
                self.checks.setdefault(name, []).append((started, took))
            self.stop.wait(0.1)

    def _sample(self, deadline: float) -> None:
        router = self.stack.spec.router
        url = f"http://{router.bind_host}:{router.stats}/;csv"
        with httpx.Client(timeout=1) as client:
            while self._running(deadline):
                for pid in list(self.stack.pids.values()):
                    try:
                        self.samples.setdefault(pid, []).append(_proc(pid))
                    except (OSError, ValueError, KeyError):
                        continue  # killed meanwhile
                try:
                    text = client.get(url).text
                except httpx.HTTPError:
                    text = ""
                for row in csv.DictReader(io.StringIO(text.lstrip("# "))):
                    if row.get("pxname") == "primary" and row.get("svname", "").startswith("node"):
                        self.haproxy_states.setdefault(row["svname"], set()).add(row.get("check_status", ""))
                self.stop.wait(0.5)

    @contextmanager
    def running(self) -> Iterator[Abuse]:
        deadline = time.monotonic() + ABUSE_SECONDS
        targets = [(self._check, ()), (self._sample, ())]
        for i in range(self.stack.spec.nodes):
            targets.append((self._slow, (i,)))
            targets += [(self._flood, (i,))] * FLOOD_THREADS_PER_NODE
        for target, args in targets:
            thread = threading.Thread(target=target, args=(*args, deadline), daemon=True)
            thread.start()
            self._threads.append(thread)
        try:
            yield self
        finally:
            self.stop.set()
            for thread in self._threads:
                thread.join(15)

    def failed_checks(self, name: str, since: float = 0.0) -> list[float]:
        return [at for at, took in self.checks.get(name, []) if at >= since and took is None]

    def slowest_check(self, name: str) -> float:
        return max((took for _, took in self.checks.get(name, []) if took is not None), default=0.0)


def test_slow_clients_and_a_read_flood_during_a_node_loss_leave_checks_and_failover_unharmed() -> None:
    with running_stack() as stack:
        primary = routed_primary(stack, 120)
        survivors = [n for n in stack.pids if n.startswith("node") and n != primary]
        before = {name: _proc(stack.pids[name]) for name in survivors}
        abuse = Abuse(stack)
        with abuse.running():
            # The slow connections fill every API's connection slots before the fault.
            wait_for(lambda: abuse.reconnects >= SLOW_PER_NODE * stack.spec.nodes, 60, "the slow clients")
            time.sleep(5)
            with Invariants(stack, "node loss under API abuse", heal_timeout=150) as check:
                killed_at = time.monotonic()
                stack.kill_node(_i(primary))
                wait_for(lambda: primary_name(stack) not in (None, primary), 90, "a new primary")
                stack.start_agent(_i(primary))
                report = check.finish()
            time.sleep(2)  # the returned node's API under abuse too
            during = {name: abuse.samples.get(stack.pids[name], []) for name in survivors}
        report.publish()
        print(
            f"abuse: {abuse.reconnects} slow connections opened, flood answers {abuse.flood_answers}, "
            f"slowest check per node { {n: round(abuse.slowest_check(n), 3) for n in abuse.checks} }, "
            f"HAProxy check states {abuse.haproxy_states}, agents before {before}, "
            f"max during { {n: _peaks(s) for n, s in during.items()} }"
        )
        report.assert_invariants(lost_allowed=True)
        assert report.rto <= RTO_BOUND, f"RTO {report.rto:.2f}s under API abuse"
        assert report.lost_outside(killed_at - 1.0, killed_at + 0.1) == []
        for name in survivors:
            assert abuse.failed_checks(name) == [], f"health checks of {name} failed under abuse"
            assert abuse.slowest_check(name) < CHECK_TIMEOUT
            bad = abuse.haproxy_states.get(name, set()) & {"L4TOUT", "L7TOUT", "L4CON", "SOCKERR", "L6TOUT"}
            assert not bad, f"HAProxy saw {bad} checking {name}"
            peaks = _peaks(during[name])
            assert peaks["threads"] <= before[name]["threads"] + THREADS_MARGIN, (name, before[name], peaks)
            assert peaks["rss_kb"] <= before[name]["rss_kb"] + RSS_MARGIN_MB * 1024, (
                name,
                before[name],
                peaks,
            )
            # The cap held: slots full (the attack reached it) but never beyond the limit.
            assert MAX_CONNECTIONS // 2 <= peaks["sockets"] <= MAX_CONNECTIONS + 64, (name, peaks)
        assert abuse.reconnects > SLOW_PER_NODE * stack.spec.nodes  # slots were taken back and reused
        assert abuse.flood_answers.get(200, 0) > 100, abuse.flood_answers


def _peaks(samples: list[dict[str, int]]) -> dict[str, int]:
    return {key: max((s[key] for s in samples), default=0) for key in ("threads", "rss_kb", "sockets")}
