"""The invariant checker of every fault test: a writer through HAProxy, a watcher of every node, a verdict.

While a fault runs, ``Writer`` inserts a unique id through HAProxy's write port every 20 ms and
records which were acknowledged, and ``NodeWatch`` asks every node directly, every 50 ms, whether
it accepts writes; with ``direct_writers``, ``DirectWriters`` also inserts straight into every
node every 50 ms (what a libpq ``target_session_attrs`` client, a cron job or anything else that
connects to a node address would get acknowledged, HAProxy or not). ``Invariants.finish`` then
waits for the cluster to heal and reports the split-brain window (any instant two nodes accepted
writes), the acknowledged ids missing from the final primary (lost writes), the longest write gap
(RTO), and whether the cluster healed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from pgwarden.drill.writer import Writer, missing_ids
from pgwarden.local.stack import Stack
from tests.support.cluster import WriterWatch, conninfo

# When set, every report is appended to this file as one JSON line (docs/faults.md's figures).
FIGURES_ENV = "PGWARDEN_FAULT_FIGURES"


@dataclass
class NodeWatch(WriterWatch):
    """A WriterWatch whose poll never blocks on one node.

    Each node is probed by a thread of its own; the poll reads each node's latest answer, and an
    answer older than ``stale_after`` counts as "does not accept writes": a frozen or cut-off
    server cannot take a write either, and a probe stuck on it must not blind the watch to the
    others. Every change of a node's answer is kept in ``changes`` for later questions.
    """

    stale_after: float = 0.5
    changes: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    # Instants HAProxy's write port had more than one server up: a split brain clients would see.
    routed_to_several: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    _latest: dict[int, tuple[float, bool]] = field(default_factory=dict)
    _probes: list[threading.Thread] = field(default_factory=list)
    _probes_stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> NodeWatch:
        for i in range(self.stack.spec.nodes):
            self.changes[self.stack.spec.node_name(i)] = []
            probe = threading.Thread(target=self._probe_loop, args=(i,), daemon=True)
            probe.start()
            self._probes.append(probe)
        router = threading.Thread(target=self._router_loop, daemon=True)
        router.start()
        self._probes.append(router)
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._probes_stop.set()
        for probe in self._probes:
            probe.join(5)  # a probe stuck on a frozen node is a daemon thread; it ends with its query

    def _accepts_writes(self, conns: dict[int, Any], i: int) -> bool:
        seen = self._latest.get(i)
        return seen is not None and seen[1] and time.monotonic() - seen[0] <= self.stale_after

    def _probe_loop(self, i: int) -> None:
        spec = self.stack.spec
        name = spec.node_name(i)
        conn: psycopg.Connection[Any] | None = None
        deadline = time.monotonic() + 900  # bounded, whatever the test does
        while not self._probes_stop.is_set() and time.monotonic() < deadline:
            writable = False
            try:
                if conn is None or conn.closed:
                    info = conninfo(self.stack, spec.node_host(i), spec.pg_port, 1)
                    conn = psycopg.connect(info, autocommit=True)
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                writable = row is not None and row[0] is False
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
            now = time.monotonic()
            self._latest[i] = (now, writable)
            history = self.changes[name]
            if not history or history[-1][1] != writable:
                history.append((now, writable))
            self._probes_stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def _router_loop(self) -> None:
        r = self.stack.spec.router
        url = f"http://{r.bind_host}:{r.stats}/;csv"
        deadline = time.monotonic() + 900
        with httpx.Client(timeout=1) as client:
            while not self._probes_stop.is_set() and time.monotonic() < deadline:
                try:
                    text = client.get(url).text
                except httpx.HTTPError:
                    text = ""
                up = tuple(
                    sorted(
                        row["svname"]
                        for row in csv.DictReader(io.StringIO(text.lstrip("# ")))
                        if row.get("pxname") == "primary"
                        and row.get("svname") not in ("FRONTEND", "BACKEND")
                        and (row.get("status") or "").startswith("UP")
                    )
                )
                if len(up) > 1:
                    self.routed_to_several.append((time.monotonic(), up))
                self._probes_stop.wait(2 * self.interval)

    # --- questions about what was seen ------------------------------------------------------
    def writable_between(self, name: str, start: float, end: float) -> bool:
        """Whether ``name`` answered "accepts writes" at any moment in [start, end]."""
        state = False
        for at, writable in self.changes.get(name, []):
            if at <= start:
                state = writable
            elif at > end:
                break
            elif writable:
                return True
        return state

    def writable_at(self, name: str, at: float) -> bool:
        return self.writable_between(name, at, at)

    def last_writable(self, name: str) -> float | None:
        """When ``name`` last stopped accepting writes (or now, if it still does)."""
        history = self.changes.get(name, [])
        for k in range(len(history) - 1, -1, -1):
            if history[k][1]:
                return history[k + 1][0] if k + 1 < len(history) else time.monotonic()
        return None

    def first_writable_after(self, name: str, start: float) -> float | None:
        for at, writable in self.changes.get(name, []):
            if writable and at >= start:
                return at
        return None

    def split_brain_ms(self) -> float:
        """Total time two nodes accepted writes at once: consecutive overlapping polls form one
        window, which counts one poll interval more than its first-to-last span."""
        windows: list[list[float]] = []
        for at, _ in self.overlaps:
            if windows and at - windows[-1][1] <= 3 * self.interval:
                windows[-1][1] = at
            else:
                windows.append([at, at])
        return sum(end - start + self.interval for start, end in windows) * 1000


@dataclass
class DirectWriters:
    """One writer per node, straight to its address (not through HAProxy), every ``interval``.

    A standby's refusals keep the connection (no reconnect storm); a broken connection is opened
    again at the next tick. An INSERT sent to a frozen server waits in its socket and, if the
    server acknowledges it once thawed, counts then: the acknowledgement time is what a client saw.
    """

    stack: Stack
    interval: float = 0.05
    table: str = field(default_factory=lambda: f"direct_{secrets.token_hex(4)}")
    acks: dict[str, list[float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def prepare(self, router_conninfo: str) -> None:
        with psycopg.connect(router_conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {self.table} (node text, n bigint)")

    def __enter__(self) -> DirectWriters:
        for i in range(self.stack.spec.nodes):
            self.acks[self.stack.spec.node_name(i)] = []
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)  # one stuck on a frozen node is a daemon thread; it ends with its INSERT

    def _run(self, i: int) -> None:
        spec = self.stack.spec
        name = spec.node_name(i)
        conn: psycopg.Connection[Any] | None = None
        deadline = time.monotonic() + 900  # bounded, whatever the test does
        n = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            n += 1
            try:
                if conn is None or conn.closed or conn.broken:
                    info = conninfo(self.stack, spec.node_host(i), spec.pg_port, 1)
                    conn = psycopg.connect(info, autocommit=True)
                conn.execute(f"INSERT INTO {self.table} VALUES (%s, %s)", (name, n))
                self.acks[name].append(time.monotonic())
            except psycopg.Error:
                if conn is not None and (conn.closed or conn.broken):
                    conn.close()
                    conn = None
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def acknowledged_between(self, name: str, start: float, end: float) -> list[float]:
        return [t for t in list(self.acks.get(name, [])) if start <= t <= end]

    def last_ack(self, name: str, before: float | None = None) -> float | None:
        times = [t for t in list(self.acks.get(name, [])) if before is None or t <= before]
        return times[-1] if times else None

    def first_ack(self, name: str, after: float) -> float | None:
        return next((t for t in list(self.acks.get(name, [])) if t >= after), None)


@dataclass
class Report:
    """What one fault did to the cluster, as a user would check it."""

    fault: str
    primary_before: str | None
    primary_after: str | None
    healed: bool
    heal_summary: str
    acknowledged: int
    lost: dict[int, float]  # acknowledged id missing from the final primary -> when it was acknowledged
    rto: float  # seconds: the longest gap between two acknowledged writes through HAProxy
    split_brain_ms: float
    overlaps: list[tuple[float, list[str]]]
    routed_to_several: list[tuple[float, tuple[str, ...]]]  # HAProxy had several servers UP
    routed_to_writers: list[tuple[float, tuple[str, ...]]]  # ... of which several accepted writes
    polls: int
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.notes.items())
        return (
            f"[{self.fault}] primary {self.primary_before} -> {self.primary_after}; healed={self.healed}; "
            f"RTO {self.rto:.2f}s; acknowledged {self.acknowledged}, lost {len(self.lost)}; "
            f"split-brain {self.split_brain_ms:.0f} ms ({len(self.overlaps)} of {self.polls} polls); "
            f"HAProxy had several servers up in {len(self.routed_to_several)} checks{extra}"
        )

    def publish(self) -> None:
        """Print the figures, and append them to $PGWARDEN_FAULT_FIGURES when set."""
        print(self.line())
        path = os.environ.get(FIGURES_ENV)
        if path:
            doc = {
                "fault": self.fault,
                "primary_before": self.primary_before,
                "primary_after": self.primary_after,
                "healed": self.healed,
                "rto_s": round(self.rto, 3),
                "acknowledged": self.acknowledged,
                "lost": len(self.lost),
                "split_brain_ms": round(self.split_brain_ms),
                "haproxy_several_up_checks": len(self.routed_to_several),
                **self.notes,
            }
            with open(path, "a") as out:
                out.write(json.dumps(doc) + "\n")

    def lost_outside(self, start: float, end: float) -> list[int]:
        """Lost ids acknowledged outside [start, end]: asynchronous replication may lose only the
        writes a primary acknowledged just before it stopped, never older ones or later ones."""
        return [i for i, at in self.lost.items() if not start <= at <= end]

    def assert_invariants(self, lost_allowed: bool = False, split_brain_allowed: bool = False) -> None:
        """The promises of every fault: healed, one writer at a time (on the nodes and through
        HAProxy), nothing acknowledged lost."""
        assert self.healed, f"[{self.fault}] the cluster did not heal: {self.heal_summary}"
        assert self.routed_to_writers == [], (
            f"[{self.fault}] HAProxy routed writes to several writable servers: {self.routed_to_writers[:5]}"
        )
        if not split_brain_allowed:
            assert self.overlaps == [], (
                f"[{self.fault}] two nodes accepted writes at once: {self.overlaps[:5]}"
            )
        if not lost_allowed:
            assert not self.lost, f"[{self.fault}] acknowledged writes lost: {sorted(self.lost)[:20]}"


class Invariants:
    """``with Invariants(stack, "fault name") as check:`` inject the fault, then ``check.finish()``."""

    def __init__(
        self, stack: Stack, fault: str, heal_timeout: float = 120.0, direct_writers: bool = False
    ) -> None:
        self.stack = stack
        self.fault = fault
        self.heal_timeout = heal_timeout
        router = stack.spec.router
        self.router_conninfo = conninfo(stack, router.bind_host, router.primary, 2)
        self.writer = Writer(self.router_conninfo, table=f"inv_{secrets.token_hex(4)}", max_seconds=600)
        self.watch = NodeWatch(stack)
        self.direct = DirectWriters(stack) if direct_writers else None
        self.primary_before: str | None = None
        self.notes: dict[str, Any] = {}
        self._running = False

    def __enter__(self) -> Invariants:
        self.primary_before = routed_primary(self.stack, 60)
        self.writer.prepare()
        if self.direct is not None:
            self.direct.prepare(self.router_conninfo)
        self.watch.__enter__()
        self.writer.__enter__()
        if self.direct is not None:
            self.direct.__enter__()
        self._running = True
        if not self.writer.wait_for_acks(10, 30):
            self.__exit__(None, None, None)
            raise AssertionError(f"[{self.fault}] the writer got no acknowledgement before the fault")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._running:
            self._running = False
            self.writer.stop()
            if self.direct is not None:
                self.direct.__exit__(*exc)
            self.watch.__exit__(*exc)

    def acked_since(self, start: float) -> int:
        return sum(1 for t in list(self.writer.report.ack_times) if t >= start)

    def finish(self) -> Report:
        """Wait until healed (one primary, every other node streaming from it, HAProxy routing
        writes to it alone, the writer acknowledged again), then stop and report."""
        deadline = time.monotonic() + self.heal_timeout
        primary = None
        summary = "not checked"
        while time.monotonic() < deadline:
            state = self.stack.observe()
            summary = state.summary
            if state.routed and _streaming_from_primary(state.members, state.primary):
                primary = state.primary
                break
            time.sleep(0.5)
        healed = primary is not None and self.writer.wait_for_acks(10, max(5.0, deadline - time.monotonic()))
        self.__exit__(None, None, None)
        report = self.writer.report
        acked_at = dict(zip(report.acknowledged, report.ack_times, strict=True))
        lost: dict[int, float] = {}
        if primary is not None:
            i = int(primary.removeprefix("node")) - 1
            direct = conninfo(self.stack, self.stack.spec.node_host(i), self.stack.spec.pg_port, 5)
            lost = {n: acked_at[n] for n in missing_ids(direct, self.writer.table, list(report.acknowledged))}
        return Report(
            fault=self.fault,
            primary_before=self.primary_before,
            primary_after=primary,
            healed=healed,
            heal_summary=summary,
            acknowledged=len(report.acknowledged),
            lost=lost,
            rto=report.longest_gap(),
            split_brain_ms=self.watch.split_brain_ms(),
            overlaps=list(self.watch.overlaps),
            routed_to_several=list(self.watch.routed_to_several),
            routed_to_writers=[
                (at, up)
                for at, up in self.watch.routed_to_several
                if sum(self.watch.writable_at(n, at) for n in up) > 1
            ],
            polls=self.watch.polls,
            notes=self.notes,
        )


def _streaming_from_primary(members: Any, primary: str | None) -> bool:
    """Every member answers, and every standby follows the primary, or (cascading) the member its
    ``replicatefrom`` tag names."""
    return primary is not None and all(
        s is not None and (n == primary or s.get("upstream") in _upstreams(s, primary))
        for n, s in members.items()
    )


def _upstreams(status: Any, primary: str) -> tuple[str, ...]:
    named = (status.get("tags") or {}).get("replicatefrom")
    return (primary, named) if isinstance(named, str) else (primary,)


def routed_primary(stack: Stack, timeout: float) -> str:
    """The primary once the cluster is healthy and HAProxy routes writes to it alone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = stack.observe()
        if (
            state.routed
            and state.primary is not None
            and _streaming_from_primary(state.members, state.primary)
        ):
            return state.primary
        time.sleep(0.5)
    raise AssertionError(f"the cluster is not healthy: {stack.healthy()[1]}")
