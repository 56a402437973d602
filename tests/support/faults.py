"""Faults for real test clusters: network cuts (nftables on lo), frozen nodes, stopped etcd members.

Every node and etcd member of a test cluster has its own loopback address, so a path between two
of them is cut by dropping packets on ``lo``. Agents bind their etcd and peer connections to
their node's address (matched by ``ip saddr``); PostgreSQL's own outgoing connections (a
standby's WAL receiver, pg_rewind, pg_basebackup) leave from 127.0.0.1 and are matched by the
node's OS user (``meta skuid``) instead. A cut in both directions marks the connections it
matches in conntrack and drops every packet of them, so replies are cut too even when their
address says nothing about the node. Every fault is a context manager that undoes itself,
whatever happens inside; tables left by a crashed run are named ``pgwarden_test_*``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import httpx

from pgwarden.dcs.etcd import EtcdStore
from pgwarden.dcs.keys import DEFAULT_PREFIX
from pgwarden.fence.files import running_fence
from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.local import etcd_members, processes
from pgwarden.local.stack import Stack

TABLE_PREFIX = "pgwarden_test_"
_live_tables: set[str] = set()


@dataclass(frozen=True)
class Endpoint:
    """One side of a cut: the loopback addresses its processes use, and the OS users whose
    PostgreSQL connections leave from 127.0.0.1."""

    name: str
    hosts: tuple[str, ...]
    uids: tuple[int, ...] = ()

    def __add__(self, other: Endpoint) -> Endpoint:
        return Endpoint(f"{self.name}+{other.name}", self.hosts + other.hosts, self.uids + other.uids)


def node(stack: Stack, i: int) -> Endpoint:
    """Node ``i``: its agent (etcd, peer API) and its PostgreSQL (replication, rewind, clone)."""
    user = stack.spec.user_for(i)
    uids = (pwd.getpwnam(user).pw_uid,) if user else ()
    return Endpoint(stack.spec.node_name(i), (stack.spec.node_host(i),), uids)


def nodes(stack: Stack, indices: Sequence[int]) -> Endpoint:
    found = [node(stack, i) for i in indices]
    joined = found[0]
    for other in found[1:]:
        joined = joined + other
    return joined


def etcd(stack: Stack, members: Sequence[int] = (0, 1, 2)) -> Endpoint:
    hosts = tuple(stack.spec.etcd_host(i) for i in members)
    return Endpoint("etcd" + ",".join(str(i + 1) for i in members), hosts)


@dataclass
class NetworkCut:
    """Drop rules on ``lo`` in one nftables table of its own; ``with`` applies and always removes it.

    ``apply`` and ``remove`` may also be called by hand (a flapping network), and are idempotent.
    """

    name: str = field(default_factory=lambda: TABLE_PREFIX + secrets.token_hex(4))
    mark: int = field(default_factory=lambda: 0x5057_0000 + secrets.randbelow(0xFFFF))
    rules: list[str] = field(default_factory=list)
    active: bool = False
    description: list[str] = field(default_factory=list)

    def drop(self, source: Endpoint, target: Endpoint, both_ways: bool = True) -> NetworkCut:
        """Drop what ``source`` sends to ``target`` (and, with ``both_ways``, the reverse, and every
        reply on a connection either side opened)."""
        self.description.append(f"{source.name} {'<->' if both_ways else '->'} {target.name}")
        pairs = [(source, target), (target, source)] if both_ways else [(source, target)]
        action = f"ct mark set {self.mark:#x} drop" if both_ways else "drop"
        for src, dst in pairs:
            if not dst.hosts:
                continue
            daddr = _set(dst.hosts)
            if src.hosts:
                self.rules.append(f'oifname "lo" ip saddr {_set(src.hosts)} ip daddr {daddr} {action}')
            if src.uids:
                uids = "{ " + ", ".join(str(u) for u in src.uids) + " }"
                self.rules.append(f'oifname "lo" meta skuid {uids} ip daddr {daddr} {action}')
        if both_ways:
            marked = f'oifname "lo" ct mark {self.mark:#x} drop'
            if marked not in self.rules:
                self.rules.append(marked)
        if self.active:
            self.remove()
            self.apply()
        return self

    def __str__(self) -> str:
        return ", ".join(self.description) or "no cut"

    def ruleset(self) -> str:
        body = "\n".join(f"    {rule}" for rule in self.rules)
        return (
            f"table inet {self.name} {{\n"
            "  chain output {\n    type filter hook output priority 0; policy accept;\n"
            f"{body}\n  }}\n}}\n"
        )

    def apply(self) -> None:
        if self.active:
            return
        _live_tables.add(self.name)
        subprocess.run(["nft", "-f", "-"], input=self.ruleset().encode(), check=True, capture_output=True)
        self.active = True

    def apply_at(self, when: float) -> float:
        """Apply at monotonic time ``when``, to within a few milliseconds (nft is started first
        and handed the rules at that moment); returns when the rules were in place."""
        if self.active:
            return time.monotonic()
        _live_tables.add(self.name)
        nft = subprocess.Popen(
            ["nft", "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        if when - time.monotonic() > 0.02:
            time.sleep(when - time.monotonic() - 0.01)
        while time.monotonic() < when:
            pass  # the last milliseconds busy: a sleep may overshoot by a scheduler tick
        _, err = nft.communicate(self.ruleset().encode(), timeout=10)
        if nft.returncode != 0:
            raise RuntimeError(f"nft refused the rules: {err.decode(errors='replace')}")
        self.active = True
        return time.monotonic()

    def remove(self) -> None:
        _delete_table(self.name)
        self.active = False

    def __enter__(self) -> NetworkCut:
        self.apply()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _set(items: Sequence[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def _delete_table(name: str) -> None:
    subprocess.run(["nft", "delete", "table", "inet", name], check=False, capture_output=True)
    _live_tables.discard(name)


@atexit.register
def _remove_forgotten_tables() -> None:
    # A test process dying between apply and remove must not leave the machine partitioned.
    for name in list(_live_tables):
        _delete_table(name)


def next_publish(stack: Stack, name: str, timeout: float = 5.0) -> float:
    """When the agent of ``name`` next rewrote its member key (monotonic): the end of one of its
    loop cycles, so the next cycle begins about ``loop_wait`` minus the cycle's length later."""
    key = f"{DEFAULT_PREFIX}/{stack.spec.cluster}/members/{name}"
    last = None
    deadline = time.monotonic() + timeout
    with EtcdStore.connect(stack.etcd_settings(), 1.0) as store:
        while time.monotonic() < deadline:
            found = store.get_prefix(key).get(key)
            revision = found.mod_revision if found is not None else None
            if last is not None and revision != last:
                return time.monotonic()
            last = revision
            time.sleep(0.001)
    raise AssertionError(f"{name} did not publish its member key within {timeout:.0f}s")


# --- freezing ---------------------------------------------------------------------------------


def node_roots(stack: Stack, i: int) -> list[int]:
    """The PIDs of node ``i``'s agent, fence and postmaster (each runs in a session of its own)."""
    data_dir = str(stack.spec.data_dir(i))
    roots = [stack.pids.get(stack.spec.node_name(i)), postmaster_pid(data_dir), running_fence(data_dir)]
    return [pid for pid in roots if pid is not None and processes.alive(pid)]


def _stop_trees(roots: Sequence[int], sig: signal.Signals) -> set[int]:
    """Signal each root first, then its descendants twice: a child forked between our listing and
    its parent stopping is caught by the second pass."""
    signalled: set[int] = set()
    for pid in roots:
        processes.signal_one(pid, sig)
        signalled.add(pid)
    for _ in range(2):
        for root in roots:
            for child in processes.children(root):
                if child not in signalled:
                    processes.signal_one(child, sig)
                    signalled.add(child)
    return signalled


@dataclass
class Freeze:
    """SIGSTOP of a node's agent, postmaster, fence and every child of them; SIGCONT on ``thaw``
    or exit: a whole node frozen (a VM paused, a machine stalled) and thawed."""

    stack: Stack
    index: int
    frozen: set[int] = field(default_factory=set)
    roots: list[int] = field(default_factory=list)
    thaw_started_at: float | None = None
    thawed_at: float | None = None

    def __enter__(self) -> Freeze:
        self.roots = node_roots(self.stack, self.index)
        self.frozen = _stop_trees(self.roots, signal.SIGSTOP)
        return self

    def thaw(self) -> None:
        if self.thawed_at is not None:
            return
        self.thaw_started_at = time.monotonic()
        # Backends first, then the agent, the postmaster and the fence last: the worst order for
        # the fence, so that whatever PostgreSQL acknowledges before the fence acts shows.
        for pid in [p for p in self.frozen if p not in self.roots] + self.roots:
            processes.signal_one(pid, signal.SIGCONT)
        _stop_trees(self.roots, signal.SIGCONT)
        self.thawed_at = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.thaw()


# --- etcd members -----------------------------------------------------------------------------


def etcd_leader(stack: Stack) -> int | None:
    """The index of the etcd member that leads now, as the members themselves report it."""
    ids: dict[str, int] = {}
    leader: str | None = None
    verify = stack.etcd_verify()
    for i, url in enumerate(stack.spec.etcd_urls()):
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            status = httpx.post(f"{url}/v3/maintenance/status", json={}, timeout=1, verify=verify).json()
            ids[str(status["header"]["member_id"])] = i
            leader = str(status["leader"])
    return ids.get(leader) if leader else None


def etcd_healthy(stack: Stack) -> int:
    """How many members answer ``/health`` with true (a member without quorum answers false)."""
    return etcd_members.healthy(stack.spec, stack.etcd_verify())


def kill_etcd(stack: Stack, i: int) -> None:
    """SIGKILL etcd member ``i``, and wait (bounded) until it is gone."""
    pid = stack.pids.get(f"etcd{i + 1}")
    if pid is None:
        return
    processes.signal_one(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes.alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # the test process started it: reap, or it lingers as a zombie
        time.sleep(0.05)


def start_etcd(stack: Stack, i: int) -> None:
    """Start member ``i`` again on its data directory, as ``Stack.start`` first did."""
    pid = stack.pids.get(f"etcd{i + 1}")
    if pid is not None and processes.alive(pid):
        return
    stack._start_etcd(i)  # the stack's own command line; its data directory makes it rejoin


@contextlib.contextmanager
def etcd_members_down(stack: Stack, members: Sequence[int]) -> Iterator[None]:
    """Kill the given etcd members; on exit start them again and wait until all three are healthy."""
    try:
        for i in members:
            kill_etcd(stack, i)
        yield
    finally:
        for i in members:
            start_etcd(stack, i)
        deadline = time.monotonic() + 30
        while etcd_healthy(stack) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
