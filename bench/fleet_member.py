"""One cluster of the fleet bench: three real agent cycles on a real etcd, over fake PostgreSQL.

Each member is wired as daemon/agent.py wires a node, minus what never talks to etcd: the real
`Cycle` (agent/loop.py) on its own loop thread, the real `LeaseKeeper` (renewing when the last
renewal is (ttl - margin)/8 old) and the real `ClusterWatch` (a long-poll watch on the cluster
prefix that wakes the loop), all on one real `EtcdStore` (dcs/etcd.py) with the member's own
source address. What is not real: PostgreSQL (tests/sim/fake_postgres.py, one `FakeWorld` per
cluster, WAL shipped by a ticker thread), the peers (answered from the other members' snapshots as
their REST API would, as the simulation does) and the REST API, lease guard, fence and watchdog
(no etcd traffic).

`TimedStore` sits between the member and its `EtcdStore`: it times every call (the client-side
latency of the agent's etcd requests) and, once the member is killed, fails every call, so a
killed member sends nothing more, revokes nothing and holds its keys until their leases expire.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pgwarden.agent.jobs import JobRunner
from pgwarden.agent.lease_keeper import LeaseKeeper
from pgwarden.agent.loop import Cycle, Ports
from pgwarden.agent.peer_answer import read_peer_answer
from pgwarden.agent.watch import ClusterWatch
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.dcs.keys import ClusterKeys
from pgwarden.dcs.store import StoreError
from pgwarden.documents.status import status_document
from pgwarden.ha.observation import Memory, PeerStatus
from pgwarden.model import Address, DynamicConfig, EtcdSettings, Member, NodeConfig, Tags
from tests.sim.fake_postgres import FakePostgres
from tests.sim.harness import node_config
from tests.sim.world import FakeWorld

MEMBERS = 3
# The agent's defaults, spelled out: what every figure of the bench assumes.
FLEET_CONFIG = DynamicConfig(ttl=4.0, loop_wait=1.0, retry_timeout=1.5)
TICK = 0.1  # how often a cluster's fake WAL ships


class Latencies:
    """Every timed etcd call of one process, by method: seconds, kept since the last ``reset``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, list[float]] = defaultdict(list)
        self._errors: dict[str, int] = defaultdict(int)

    def add(self, method: str, seconds: float, ok: bool) -> None:
        with self._lock:
            if ok:
                self._calls[method].append(seconds)
            else:
                self._errors[method] += 1

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._errors.clear()

    def take(self) -> dict[str, Any]:
        """``{"calls": {method: [seconds...]}, "errors": {method: count}}``, a copy."""
        with self._lock:
            return {"calls": {m: list(s) for m, s in self._calls.items()}, "errors": dict(self._errors)}


class TimedStore:
    """The Store the member's cycle, keeper and watch use: the real EtcdStore, timed; dead when killed."""

    def __init__(self, store: EtcdStore, latencies: Latencies) -> None:
        self._store = store
        self._latencies = latencies
        self.dead = False

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._store, name)
        if not callable(call) or name.startswith("_"):
            return call

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.dead:
                raise StoreError("this member was killed")
            started = time.monotonic()
            try:
                answer = call(*args, **kwargs)
            except Exception:
                self._latencies.add(name, time.monotonic() - started, ok=False)
                raise
            self._latencies.add(name, time.monotonic() - started, ok=True)
            return answer

        return timed


class LockedPostgres:
    """A fake PostgreSQL whose every call holds its cluster's lock: three loop threads, the jobs'
    threads and the ticker share one FakeWorld, which is not thread-safe."""

    def __init__(self, pg: FakePostgres, lock: threading.Lock) -> None:
        self._pg = pg
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._pg, name)
        if not callable(attr):
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return locked


class FleetMember:
    """One agent: its cycle on a loop thread, its lease keeper and its watch, on a real etcd."""

    def __init__(
        self,
        config: NodeConfig,
        pg: LockedPostgres,
        peers: Callable[[str, Sequence[Member]], Mapping[str, PeerStatus]],
        latencies: Latencies,
    ) -> None:
        self.config = config
        self.name = config.name
        self.store = TimedStore(
            EtcdStore.connect(config.etcd, timeout=config.bootstrap.retry_timeout / 2), latencies
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        gather = _Peers(peers)
        self.cycle = Cycle(config, Ports(store=self.store, postgres=pg, peers=gather, jobs=JobRunner()))
        self.keeper = LeaseKeeper(self.store, self.cycle.lease)
        keys = ClusterKeys(config.cluster, config.etcd.prefix)
        self.watch = ClusterWatch(
            self.store,
            keys,
            self._wake,
            lambda: self.cycle.observer.last_view.revision,
        )
        self.cycles = 0
        self._thread = threading.Thread(target=self._run, name=f"loop-{self.name}", daemon=True)

    def start(self) -> None:
        self.keeper.start()
        self.watch.start()
        self._thread.start()

    def _run(self) -> None:
        """daemon/agent.py's loop: a cycle, then wait for the cycle's wait or a wake-up."""
        memory = Memory()
        while not self._stop.is_set():
            after = self.cycle.step(memory)
            memory = after.memory
            self.cycles += 1
            if after.failed:
                self._stop.wait(after.wait)
            else:
                self._wake.wait(after.wait)
                self._wake.clear()

    @property
    def alive(self) -> bool:
        return not self.store.dead

    @property
    def leading(self) -> bool:
        return self.alive and self.cycle.lease.lease_id is not None

    def kill(self) -> None:
        """Dead as a killed process: from now on no request reaches etcd, nothing is revoked."""
        self.store.dead = True
        self._stop.set()
        self._wake.set()
        self.keeper.stop()
        self.watch.stop()

    def close(self) -> None:
        self.kill()
        self._thread.join(10)
        self.store._store.close()


class _Peers:
    def __init__(self, peers: Callable[[str, Sequence[Member]], Mapping[str, PeerStatus]]) -> None:
        self._peers = peers

    def gather(self, members: Sequence[Member], me: str) -> Mapping[str, PeerStatus]:
        return self._peers(me, members)


def fleet_config(
    cluster: str, index: int, member: int, endpoints: Sequence[Address], network: int
) -> NodeConfig:
    """Member ``member`` of cluster number ``index``: its own loopback address (source of its etcd
    connections, and what its member record advertises), the cluster's name, the real etcd."""
    base = node_config(member, FLEET_CONFIG, Tags())
    n = index * MEMBERS + member
    host = f"127.0.{network + n // 250}.{1 + n % 250}"
    api, pg = base.api, base.postgresql
    return replace(
        base,
        cluster=cluster,
        name=f"{cluster}-m{member + 1}",
        etcd=EtcdSettings(hosts=tuple(endpoints), bind_address=host),
        api=replace(api, listen=Address(host, 8008), connect_address=Address(host, 8008)),
        postgresql=replace(
            pg,
            listen=Address(host, 5432),
            connect_address=Address(host, 5432),
            data_dir=f"/nonexistent/{cluster}/m{member + 1}",
        ),
    )


class FleetCluster:
    """Three members of one cluster, their fake PostgreSQL world and its WAL ticker."""

    def __init__(self, index: int, endpoints: Sequence[Address], network: int, latencies: Latencies) -> None:
        self.name = f"fleet{index:04d}"
        self.lock = threading.Lock()
        self.world = FakeWorld(time.monotonic)
        self.latencies = latencies
        self.configs = [fleet_config(self.name, index, m, endpoints, network) for m in range(MEMBERS)]
        for c in self.configs:
            addr = c.postgresql.connect_address
            self.world.add(c.name, addr.host, addr.port)
        self.members: dict[str, FleetMember] = {}
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name=f"wal-{self.name}", daemon=True)

    def start(self) -> None:
        for c in self.configs:
            self.start_member(c.name)
        self._ticker.start()

    def start_member(self, name: str) -> None:
        """A fresh agent for ``name`` (its fake PostgreSQL keeps its data, started or not)."""
        config = next(c for c in self.configs if c.name == name)
        old = self.members.get(name)
        if old is not None:
            old.close()
        pg = LockedPostgres(self.world.instances[name], self.lock)
        member = FleetMember(config, pg, self._peer_statuses, self.latencies)
        self.members[name] = member
        member.start()

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            with self.lock:
                self.world.tick(TICK)

    def _peer_statuses(self, asker: str, members: Sequence[Member]) -> Mapping[str, PeerStatus]:
        """What each other member's REST API would answer, read as the agent reads it."""
        found = {}
        for m in members:
            if m.name == asker:
                continue
            peer = self.members.get(m.name)
            if peer is not None and peer.alive:
                answer = json.dumps(status_document(peer.cycle.snapshots.get())).encode()
                found[m.name] = read_peer_answer(m.name, answer)
            else:
                found[m.name] = PeerStatus(name=m.name, reachable=False)
        return found

    # ---- what the bench looks at ------------------------------------------------------------

    def leaders(self) -> list[str]:
        """The live members whose lease is on and whose PostgreSQL is writable."""
        with self.lock:
            writable = {pg.name for pg in self.world.writable()}
        return [n for n, m in self.members.items() if m.leading and n in writable]

    def healthy(self) -> bool:
        """One leader, every other member a standby streaming, all three agents alive."""
        leaders = self.leaders()
        if len(leaders) != 1 or not all(m.alive for m in self.members.values()):
            return False
        with self.lock:
            streaming = [pg for pg in self.world.instances.values() if pg.streaming_from == leaders[0]]
        return len(streaming) == MEMBERS - 1

    def kill_member(self, name: str) -> None:
        """The node dies: its agent (no revoke) and its PostgreSQL (SIGKILL)."""
        self.members[name].kill()
        with self.lock:
            self.world.instances[name].kill()

    def stop(self) -> None:
        self._stop.set()
        for m in self.members.values():
            m.kill()
        for m in self.members.values():
            m.close()
        self._ticker.join(5)
