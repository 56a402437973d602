"""The cluster under test: one interface over a pgwarden stack and a Patroni cluster, so every
scenario runs unchanged against both.

Both expose Patroni's REST paths (``GET /patroni``, ``POST /switchover``, ``PATCH /config``) and
name each standby's ``application_name`` after its member, so everything but starting, stopping
and the agent's process is written once here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psycopg

from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.local import processes
from pgwarden.router.haproxy import RouterPorts


@dataclass(frozen=True)
class Node:
    name: str
    host: str
    pg_port: int
    api_port: int
    data_dir: Path


class ClusterUnderTest(ABC):
    """A 3-node cluster behind HAProxy on its own loopback network; a context manager."""

    system: str  # "pgwarden" or "Patroni"
    label: str  # the column header: "pgwarden", "Patroni defaults", "Patroni fastest"
    nodes: list[Node]
    router: RouterPorts
    superuser_password: str

    # --- what each implementation provides --------------------------------------------------
    @abstractmethod
    def start(self, timeout: float) -> None:
        """Start etcd, the nodes and HAProxy; return once the cluster is healthy."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every process this cluster started (by PID) and remove its files."""

    @abstractmethod
    def agent_pid(self, i: int) -> int | None:
        """The PID of node ``i``'s agent (pgwarden agent or Patroni), None when it is not running."""

    @abstractmethod
    def start_agent(self, i: int) -> None:
        """Start node ``i``'s agent again after a kill; it brings its PostgreSQL back itself."""

    @abstractmethod
    def api_auth(self) -> tuple[str, str] | None:
        """Basic auth for the REST API's write operations."""

    @abstractmethod
    def sync_config(self, mode: str) -> dict[str, Any]:
        """The dynamic config patch for ``mode``: ``off``, ``on`` (FIRST 1) or ``quorum`` (ANY 1)."""

    @abstractmethod
    def settings(self) -> str:
        """The timing settings, one line for the report."""

    @abstractmethod
    def log_tail(self, i: int, lines: int = 30) -> str:
        """The end of node ``i``'s agent log, for failure reports."""

    @abstractmethod
    def etcd_endpoints(self) -> list[str]:
        """The etcd members' client addresses (``host:port``), in member order."""

    @abstractmethod
    def kill_etcd(self, i: int) -> None:
        """SIGKILL etcd member ``i`` and wait until it is gone."""

    @abstractmethod
    def start_etcd(self, i: int) -> None:
        """Start etcd member ``i`` again on its data directory (does not wait for it)."""

    @abstractmethod
    def etcd_pid(self, i: int) -> int | None:
        """The PID of etcd member ``i``, None when it is not running."""

    @abstractmethod
    def etcd_leader(self) -> int | None:
        """The index of the etcd member that leads, as the members report it."""

    @abstractmethod
    def etcd_healthy(self) -> int:
        """How many etcd members answer ``/health`` with true."""

    def api_verify(self) -> ssl.SSLContext | bool:
        """How the bench calls the REST APIs: ``True`` over plain HTTP; a cluster whose APIs serve
        TLS (pgwarden's secure stack) gives a context with its CA and a client certificate."""
        return True

    def cycle_seconds(self, i: int) -> float | None:
        """How long node ``i``'s agent took for its last cycle, when it says (pgwarden's /metrics)."""
        return None

    def __enter__(self) -> ClusterUnderTest:
        try:
            self.start(timeout=240)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- addresses --------------------------------------------------------------------------
    def conninfo(self, host: str, port: int, timeout: int = 2) -> str:
        password = self.superuser_password.replace("\\", "\\\\").replace("'", "\\'")
        return (
            f"host={host} port={port} user=postgres password='{password}' dbname=postgres "
            f"connect_timeout={timeout}"
        )

    def router_conninfo(self, timeout: int = 1) -> str:
        return self.conninfo(self.router.bind_host, self.router.primary, timeout)

    def node_conninfo(self, i: int, timeout: int = 2) -> str:
        node = self.nodes[i]
        return self.conninfo(node.host, node.pg_port, timeout)

    def rest_address(self, i: int) -> tuple[str, int]:
        return self.nodes[i].host, self.nodes[i].api_port

    # --- observation ------------------------------------------------------------------------
    def status(self, i: int) -> dict[str, Any] | None:
        try:
            reply = httpx.get(f"{self._api(i)}/patroni", timeout=1, verify=self.api_verify(), trust_env=False)
            document = reply.json()
        except (httpx.HTTPError, ValueError):
            return None
        return document if isinstance(document, dict) else None

    def primary_index(self) -> int | None:
        found = []
        for i in range(len(self.nodes)):
            s = self.status(i)
            if s and s.get("role") == "primary" and s.get("state") == "running":
                found.append(i)
        return found[0] if len(found) == 1 else None

    def streaming_standbys(self, primary: int) -> dict[str, str]:
        """application_name -> sync_state of every standby streaming from ``primary``."""
        try:
            with psycopg.connect(self.node_conninfo(primary, 1), autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT application_name, sync_state FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchall()
        except psycopg.Error:
            return {}
        return {str(name): str(state) for name, state in rows}

    def writable_through_router(self) -> bool:
        try:
            with psycopg.connect(self.router_conninfo(1), autocommit=True) as conn:
                row = conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()
            return bool(row and row[0])
        except psycopg.Error:
            return False

    def healthy(self, sync: bool = False) -> bool:
        """One primary, every other node streaming from it (or from its cascading upstream; one
        of the primary's synchronous when ``sync``), and HAProxy sending writes to it."""
        p = self.primary_index()
        if p is None:
            return False
        expected: dict[int, set[str]] = {p: set()}  # upstream -> the standbys it should feed
        for j, n in enumerate(self.nodes):
            if j != p:
                expected.setdefault(self.upstream(j, p), set()).add(n.name)
        standbys = self.streaming_standbys(p)
        if not expected[p] <= set(standbys):
            return False
        if sync and not any(state in ("sync", "quorum") for state in standbys.values()):
            return False
        for upstream, names in expected.items():
            if upstream != p and not names <= set(self.streaming_standbys(upstream)):
                return False
        return self.writable_through_router()

    def upstream(self, i: int, primary: int) -> int:
        """The node standby ``i`` should stream from while ``primary`` leads: the primary, unless
        the cluster cascades (pgwarden's ``replicatefrom`` tag)."""
        return primary

    def wait_healthy(self, timeout: float = 180.0, sync: bool = False) -> float:
        """Seconds until healthy; AssertionError with the agents' log tails after ``timeout``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.healthy(sync):
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"{self.label}: not healthy after {timeout:.0f} s\n{self.describe_state()}")

    def describe_state(self) -> str:
        lines = []
        for i, node in enumerate(self.nodes):
            s = self.status(i) or {}
            lines.append(
                f"{node.name}: role={s.get('role')} state={s.get('state')} agent={self.agent_pid(i)}"
            )
        return "\n".join(lines)

    def synchronous_standby_names(self) -> str:
        p = self.primary_index()
        if p is None:
            return "?"
        with psycopg.connect(self.node_conninfo(p), autocommit=True) as conn:
            row = conn.execute("SHOW synchronous_standby_names").fetchone()
        return str(row[0]) if row else "?"

    # --- faults and operations --------------------------------------------------------------
    def node_processes(self, i: int) -> list[int]:
        """Node ``i``'s agent, its postmaster and every child of either: what dies with the node.
        Found before the fault, so that the kill itself takes microseconds, not a /proc scan."""
        postmaster = postmaster_pid(str(self.nodes[i].data_dir))
        assert postmaster is not None, f"no postmaster runs on {self.nodes[i].name}"
        agent = self.agent_pid(i)
        found = [postmaster, *processes.children(postmaster)]
        return found + ([agent, *processes.children(agent)] if agent is not None else [])

    def postgres_processes(self, i: int) -> list[int]:
        """Node ``i``'s postmaster and its children: what dies when PostgreSQL crashes."""
        postmaster = postmaster_pid(str(self.nodes[i].data_dir))
        assert postmaster is not None, f"no postmaster runs on {self.nodes[i].name}"
        return [postmaster, *processes.children(postmaster)]

    @staticmethod
    def kill(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill_node(self, i: int) -> None:
        """A node's death: SIGKILL the agent, the postmaster and every child of either."""
        self.kill(self.node_processes(i))

    def kill_postmaster(self, i: int) -> None:
        """PostgreSQL crashes on node ``i``; its agent lives on."""
        self.kill(self.postgres_processes(i))

    def _api(self, i: int) -> str:
        """Node ``i``'s REST API base URL (``https://`` when the cluster serves it over TLS)."""
        host, port = self.rest_address(i)
        return f"http://{host}:{port}"

    def switchover(self, leader: int, candidate: int, timeout: float = 90.0) -> httpx.Response:
        """POST /switchover to the leader's REST API; both answer once the new primary runs."""
        body = {"leader": self.nodes[leader].name, "candidate": self.nodes[candidate].name}
        return httpx.post(
            f"{self._api(leader)}/switchover",
            json=body,
            auth=self.api_auth(),
            timeout=timeout,
            verify=self.api_verify(),
            trust_env=False,
        )

    def patch_config(self, patch: dict[str, Any]) -> None:
        p = self.primary_index()
        reply = httpx.patch(
            f"{self._api(p if p is not None else 0)}/config",
            json=patch,
            auth=self.api_auth(),
            timeout=30,
            verify=self.api_verify(),
            trust_env=False,
        )
        if reply.status_code != 200:
            raise AssertionError(f"PATCH /config {patch} answered {reply.status_code}: {reply.text}")

    # --- etcd and failsafe mode -------------------------------------------------------------
    def etcd_quorum_members(self, timeout: float = 30.0) -> list[int]:
        """A follower and the etcd leader: killing both leaves one member without a quorum."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.etcd_leader()
            if leader is not None:
                return [next(i for i in range(3) if i != leader), leader]
            time.sleep(0.2)
        raise AssertionError(f"{self.label}: no etcd leader within {timeout:.0f} s")

    def wait_etcd_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.etcd_healthy() < 3:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.label}: etcd not healthy {timeout:.0f} s after its restart")
            time.sleep(0.2)

    def set_failsafe(self, on: bool, timeout: float = 60.0) -> None:
        """``failsafe_mode`` live (both systems' dynamic config); with it on, wait until the leader
        published the topology (``GET /failsafe`` lists every node: Patroni's shape, and ours)."""
        self.patch_config({"failsafe_mode": on})
        if not on:
            time.sleep(3)  # every agent reads the config again within a loop or two
            return
        every = sorted(n.name for n in self.nodes)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.primary_index()
            if p is not None:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    doc = httpx.get(
                        f"{self._api(p)}/failsafe", timeout=2, verify=self.api_verify(), trust_env=False
                    ).json()
                    if isinstance(doc, dict) and sorted(doc) == every:
                        return
            time.sleep(0.3)
        raise AssertionError(f"{self.label}: no failsafe topology of {every} within {timeout:.0f} s")

    def set_sync_mode(self, mode: str, timeout: float = 60.0) -> str:
        """Switch the synchronous mode live; returns the primary's synchronous_standby_names."""
        self.patch_config(self.sync_config(mode))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = ""
            with contextlib.suppress(psycopg.Error):
                names = self.synchronous_standby_names()
            quorum = names.upper().startswith("ANY")
            settled = {"off": names == "", "quorum": quorum}.get(mode, names != "" and not quorum)
            if settled and (mode == "off" or self.healthy(sync=True)):
                return names
            time.sleep(0.3)
        raise AssertionError(f"{self.label}: synchronous mode {mode!r} not in force after {timeout:.0f} s")
