"""A real pgwarden cluster for integration tests: etcd x3, agents with PostgreSQL, HAProxy, on loopback.

Each test cluster gets its own loopback network (127.0.N.x, N random) so clusters never collide,
and each node's PostgreSQL runs as its own OS user so later fault tests can cut one node's
traffic with nftables (meta skuid). Everything is stopped and removed on exit, even on failure.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from pgwarden.local.spec import StackSpec
from pgwarden.local.stack import AGENT_COMMAND, Stack
from pgwarden.router.haproxy import RouterPorts
from tests.support.pg import ensure_os_user

# One OS user per node (created on first use, idempotently: tests/support/pg.py ensure_os_user);
# nine, for the scale bench's 9-member clusters (bench/scale.py).
NODE_USERS = tuple(f"pgwtest{i}" for i in range(1, 10))


def cluster_network(tries: int = 40) -> str:
    """A random 127.0.N network for one test cluster whose addresses are all free; parallel
    pytest-xdist workers draw from disjoint ranges, so two clusters started at the same moment
    never share addresses, and a cluster still running in this worker (a module fixture's, or
    one still stopping) is stepped around."""
    low, span = _network_range()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker) if worker.isdigit() else 0
    span //= max(1, workers)
    low += index * span
    network = f"127.0.{random.randint(low, low + span - 1)}"
    for _ in range(tries):
        if network_free(network):
            break
        network = f"127.0.{random.randint(low, low + span - 1)}"
    return network


def network_free(network: str) -> bool:
    """Whether nothing listens on the addresses a cluster on ``network`` takes: the router's
    ports on .1, PostgreSQL and the REST API on the nodes' .11-.19, etcd on .21-.23."""
    router = RouterPorts()
    wanted = [(f"{network}.1", port) for port in (router.primary, router.replicas, router.stats)]
    wanted += [(f"{network}.{11 + i}", port) for i in range(len(NODE_USERS)) for port in (5432, 8008)]
    wanted += [(f"{network}.{21 + i}", port) for i in range(3) for port in (2379, 2380)]
    return all(_bindable(host, port) for host, port in wanted)


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _network_range() -> tuple[int, int]:
    """The third octets test clusters may use: 100-249, or ``PGWARDEN_TEST_NETWORKS=LOW-HIGH`` so
    that test runs started side by side (several checkouts on one machine) never share one."""
    text = os.environ.get("PGWARDEN_TEST_NETWORKS", "100-249")
    low_text, _, high_text = text.partition("-")
    low, high = int(low_text), int(high_text or low_text)
    if not 3 <= low <= high <= 254:
        raise ValueError(f"PGWARDEN_TEST_NETWORKS={text!r}: expected LOW-HIGH within 3-254")
    return low, high - low + 1


@dataclass(frozen=True)
class TaggedSpec(StackSpec):
    """The local stack with ``tags`` per node (by node name): ``replicatefrom`` for cascading
    replication, ``nofailover`` and the rest (docs/configuration.md, ``tags``)."""

    node_tags: dict[str, dict[str, Any]] = field(default_factory=dict)

    def node_config(self, i: int, run_as: str | None) -> dict[str, Any]:
        doc = super().node_config(i, run_as)
        tags = self.node_tags.get(self.node_name(i))
        if tags:
            doc["tags"] = dict(tags)
        return doc


@contextmanager
def running_stack(
    nodes: int = 3,
    dcs: dict[str, Any] | None = None,
    timeout: float = 120.0,
    network: str | None = None,
    agent_command: Sequence[str] = AGENT_COMMAND,
    secure: bool = False,
    synchronous: str | None = None,
    spec_type: type[StackSpec] = StackSpec,
    before_up: Callable[[Path], None] | None = None,
    **spec: Any,
) -> Iterator[Stack]:
    """``network``: a ``cluster_network()`` drawn beforehand (default: drawn here); ``secure``: as
    ``pgwarden up`` starts it (etcd over TLS with client certificates and etcd auth, the APIs
    over mTLS); plain HTTP by default, for speed; ``synchronous``: synchronous_mode on with this
    synchronous_fallback (``"block"`` or ``"degrade"``; ``dcs`` may add to it), yielded once the
    primary has claimed a synchronous standby in etcd; ``spec_type``: a StackSpec subclass (e.g.
    one that adds to every node's config), built from its fields; ``before_up``: called with the
    stack's base directory (``spec.dir.parent``) before it starts, for files the node configs
    name; ``spec``: more StackSpec fields, e.g. ``api_tls=True``."""
    if secure:
        spec = {"api_tls": True, "etcd_tls": True, **spec}
    if synchronous is not None:
        dcs = {"synchronous_mode": "on", "synchronous_fallback": synchronous, **(dcs or {})}
    base = Path(tempfile.mkdtemp(prefix="pgw-", dir="/tmp"))
    os.chmod(base, 0o755)
    network = network or cluster_network()
    users = NODE_USERS[:nodes]
    for user in users:
        ensure_os_user(user)
    stack_spec = spec_type(
        dir=base / "stack",
        nodes=nodes,
        network=network,
        run_as=users,
        router=RouterPorts(bind_host=f"{network}.1"),
        dcs=dcs or {},
        **spec,
    )
    stack = Stack(stack_spec, agent_command)
    try:
        if before_up is not None:
            before_up(base)
        stack.up(timeout=timeout)
        if synchronous is not None:
            wait_for(lambda: claim_without(stack, primary_name(stack)), 90, "a synchronous standby claimed")
        yield stack
    except BaseException:
        _dump_logs(stack_spec.dir / "logs")
        raise
    finally:
        stack.down(purge=False)
        shutil.rmtree(base, ignore_errors=True)


def cluster_document(stack: Stack) -> dict[str, Any]:
    """GET /cluster from the first node that answers ({} when none does)."""
    for i in range(stack.spec.nodes):
        with contextlib.suppress(httpx.HTTPError, ValueError):
            return dict(httpx.get(f"{stack.spec.api_url(i)}/cluster", timeout=2).json())
    return {}


def sync_claim(stack: Stack) -> list[str]:
    """The synchronous set the leader published in etcd (empty: degraded, or nobody yet)."""
    return list(cluster_document(stack).get("synchronous") or [])


def claim_without(stack: Stack, primary: str | None) -> bool:
    """A synchronous standby is claimed, and it is not ``primary``."""
    names = sync_claim(stack)
    return primary is not None and bool(names) and primary not in names


def _dump_logs(logs: Path) -> None:
    for log in sorted(logs.glob("node*.log")):
        lines = log.read_text(errors="replace").splitlines()[-40:]
        print(f"----- {log.name} (last {len(lines)} lines)")
        print("\n".join(lines))


def conninfo(stack: Stack, host: str, port: int, timeout: int = 2) -> str:
    password = stack.spec.superuser_password
    return (
        f"host={host} port={port} user=postgres password={password} dbname=postgres connect_timeout={timeout}"
    )


def write_through_router(stack: Stack, value: int, table: str = "drill") -> bool:
    """One INSERT on a new connection through HAProxy's write port; True when acknowledged."""
    r = stack.spec.router
    try:
        with psycopg.connect(conninfo(stack, r.bind_host, r.primary, 1), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id bigint primary key)")
            conn.execute(f"INSERT INTO {table} VALUES (%s) ON CONFLICT DO NOTHING", (value,))
        return True
    except psycopg.Error:
        return False


def primary_name(stack: Stack) -> str | None:
    names = [
        n
        for n, s in stack.statuses().items()
        if s and s.get("role") == "primary" and s.get("state") == "running"
    ]
    return names[0] if len(names) == 1 else None


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class WriterWatch:
    """Polls every node directly (not through HAProxy) and records any instant two accept writes."""

    stack: Stack
    interval: float = 0.05
    overlaps: list[tuple[float, list[str]]] = field(default_factory=list)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> WriterWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        spec = self.stack.spec
        conns: dict[int, psycopg.Connection[Any] | None] = dict.fromkeys(range(spec.nodes))
        deadline = time.monotonic() + 900  # bounded, whatever the test does
        while not self._stop.is_set() and time.monotonic() < deadline:
            writable = []
            for i in range(spec.nodes):
                if self._accepts_writes(conns, i):
                    writable.append(spec.node_name(i))
            self.polls += 1
            if len(writable) > 1:
                self.overlaps.append((time.monotonic(), writable))
            self._stop.wait(self.interval)
        for conn in conns.values():
            if conn is not None:
                conn.close()

    def _accepts_writes(self, conns: dict[int, psycopg.Connection[Any] | None], i: int) -> bool:
        spec = self.stack.spec
        try:
            conn = conns[i]
            if conn is None or conn.closed:
                conn = psycopg.connect(
                    conninfo(self.stack, spec.node_host(i), spec.pg_port, 1), autocommit=True
                )
                conns[i] = conn
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return row is not None and row[0] is False
        except psycopg.Error:
            conns[i] = None
            return False
