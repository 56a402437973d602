"""A cluster of simulated agents over one memory store and fake PostgreSQL instances, on a virtual clock.

Each tick advances the clock by ``dt``; WAL ships; the router checks health and the client
writes; agents whose watch fired or whose next cycle is due run one cycle each, in random
order; the checker runs after every cycle. Faults act between ticks, as a real failure lands
between two steps of a loop: crash, pause (SIGSTOP: PostgreSQL keeps running), cut from the
store, isolate from the network, kill PostgreSQL, restart an agent with fresh memory.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence

from pgwarden.agent.peer_answer import read_peer_answer
from pgwarden.api.facts import facts_of
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.documents.status import status_document
from pgwarden.ha.health import Query, verdict
from pgwarden.ha.observation import PeerStatus
from pgwarden.model import (
    Address,
    ApiSettings,
    ClusterView,
    Credentials,
    DynamicConfig,
    EtcdSettings,
    JobKind,
    Member,
    NodeConfig,
    PostgresSettings,
    Tags,
)
from tests.sim.invariants import Checker
from tests.sim.node import SimNode
from tests.sim.router import Router, Writer
from tests.sim.world import FakeWorld

CLUSTER = "sim"
# etcd's own timing as a lab would set it: ttl 4 s leaves a 1 s margin past the lease deadline.
SIM_CONFIG = DynamicConfig(ttl=4.0, loop_wait=1.0, retry_timeout=1.5, primary_start_timeout=10.0)
JOB_DURATIONS = {JobKind.INITDB: 1.0, JobKind.CLONE: 2.0, JobKind.REWIND: 1.0}
_URGENT = ("leader", "initialize", "switchover", "config", "sync")


class Clock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now = round(self.now + seconds, 6)


def node_config(index: int, bootstrap: DynamicConfig, tags: Tags) -> NodeConfig:
    name, host = f"node{index + 1}", f"127.0.0.{11 + index}"
    return NodeConfig(
        cluster=CLUSTER,
        name=name,
        etcd=EtcdSettings(hosts=(Address("127.0.0.21", 2379),)),
        api=ApiSettings(listen=Address(host, 8008), connect_address=Address(host, 8008)),
        postgresql=PostgresSettings(
            listen=Address(host, 5432),
            connect_address=Address(host, 5432),
            data_dir=f"/nonexistent/{name}",
            bin_dir="/nonexistent/bin",
            superuser=Credentials("postgres", "secret"),
            replication=Credentials("replicator", "secret"),
        ),
        tags=tags,
        bootstrap=bootstrap,
    )


class Simulation:
    """``n_members`` agents and fake PostgreSQL instances, one memory store, a router and a client;
    ``seed`` fixes every random choice (the order agents run in a tick, write sizes)."""

    def __init__(
        self,
        n_members: int = 3,
        seed: int = 0,
        *,
        config: DynamicConfig = SIM_CONFIG,
        tags: Mapping[str, Tags] | None = None,
        dt: float = 0.1,
        job_durations: Mapping[JobKind, float] = JOB_DURATIONS,
        start_delay: float = 0.5,
        router: Mapping[str, float] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.clock = Clock()
        self.dt = dt
        self.store = MemoryStore(self.clock)
        self.world = FakeWorld(self.clock, start_delay=start_delay)
        self.cluster = ClusterStore(self.store, CLUSTER)
        tags = tags or {}
        nodes = (node_config(i, config, tags.get(f"node{i + 1}", Tags())) for i in range(n_members))
        self.configs = {c.name: c for c in nodes}
        self._job_durations = job_durations
        for c in self.configs.values():
            addr = c.postgresql.connect_address
            self.world.add(c.name, addr.host, addr.port)
        self.agents: dict[str, SimNode] = {}
        self.checker = Checker(self)
        self.world.on_promote.append(self.checker.on_promote)
        self.router = Router(self.configs, self.primary_health, self.clock, **(router or {}))  # type: ignore[arg-type]
        self.writer = Writer(self.world, self.router, self.rng)
        for name in self.configs:
            self.start_agent(name)

    # ---- running -----------------------------------------------------------------------------

    def tick(self) -> None:
        self.clock.advance(self.dt)
        now = self.clock()
        for agent in self.agents.values():
            if agent.paused_until is not None and now >= agent.paused_until:
                agent.paused_until, agent.stepped, agent.next_run = None, False, now
                self.world.log(agent.name, "agent resumed")
        for agent in self.agents.values():
            if not agent.paused:
                agent.jobs.poll()
        self.world.tick(self.dt)
        self.router.tick()
        write = self.writer.tick()
        if write is not None:
            self.checker.on_write(write)
        self.checker.instant()
        self._deliver_watch_events()
        due = [a for a in self.agents.values() if not a.paused and a.next_run <= now + 1e-9]
        self.rng.shuffle(due)
        for agent in due:
            if agent.name in self.agents:
                agent.step()
                self.checker.after_step(agent)

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / self.dt)):
            self.tick()

    def run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Tick until ``done()`` holds; False when ``timeout`` virtual seconds passed first."""
        for _ in range(round(timeout / self.dt)):
            if done():
                return True
            self.tick()
        return done()

    def _deliver_watch_events(self) -> None:
        """The agent's etcd watch: a change of an urgent key wakes its loop at once."""
        urgent = {self.cluster.keys.root + k for k in _URGENT}
        if not self.store.available:
            return  # no etcd member answers a watch either
        for agent in self.agents.values():
            if agent.paused or agent.link.cut or agent.failed:
                continue
            start = agent.watched_revision + 1
            agent.watched_revision = self.store.revision
            if any(e.key in urgent for e in self.store.watch(self.cluster.keys.root, start, 0)):
                agent.next_run = min(agent.next_run, self.clock())

    # ---- what the others see of an agent ----------------------------------------------------

    def answers(self, name: str, asker: str | None = None) -> bool:
        """Whether ``name``'s REST API answers (from ``asker``'s node; None: the router)."""
        agent = self.agents.get(name)
        if agent is None or agent.paused:
            return False
        return name not in self.world.isolated and (asker is None or self.world.reachable(asker, name))

    def peer_statuses(self, asker: str, members: tuple[Member, ...]) -> Mapping[str, PeerStatus]:
        found = {}
        for m in members:
            if m.name == asker:
                continue
            if self.answers(m.name, asker):
                # What the REST API would send, read as the agent reads it.
                answer = json.dumps(status_document(self.agents[m.name].snapshot)).encode()
                found[m.name] = read_peer_answer(m.name, answer)
            else:
                found[m.name] = PeerStatus(name=m.name, reachable=False)
        return found

    def failsafe_round(
        self, asker: str, members: Sequence[tuple[str, str]], seconds: float
    ) -> Mapping[str, str]:
        """POST /failsafe from ``asker`` to each member: its API answers from its PromiseBox and
        its latest snapshot, as AgentOperations.failsafe does; silent when it cannot answer."""
        refused = {}
        for name, _ in members:
            agent = self.agents.get(name)
            if agent is None or not self.answers(name, asker):
                refused[name] = "no answer"
                continue
            snap = agent.snapshot
            _, why = agent.promises.grant(asker, seconds, name, snap.view, snap.local)
            if why is not None:
                refused[name] = why
        return refused

    def primary_health(self, name: str) -> bool | None:
        if not self.answers(name):
            return None
        return verdict("primary", facts_of(self.agents[name].snapshot, self.clock()), Query())

    def responsive(self, name: str) -> bool:
        """Its agent runs, is not frozen, and has completed a cycle since it (re)started."""
        agent = self.agents.get(name)
        return agent is not None and not agent.paused and agent.stepped

    def agent_state(self, name: str) -> str:
        agent = self.agents.get(name)
        if agent is None:
            return "agent dead"
        if agent.paused:
            return "agent paused"
        return "agent running" if agent.stepped else "agent not yet stepped"

    # ---- the truth, read directly ------------------------------------------------------------

    def view(self) -> ClusterView:
        return self.cluster.decode(self.store.peek(self.cluster.keys.root))

    def key_holder(self) -> str | None:
        kv = self.store.peek(self.cluster.keys.leader).get(self.cluster.keys.leader)
        return kv.value if kv is not None else None

    def primary(self) -> str | None:
        writers = self.world.writable()
        return writers[0].name if len(writers) == 1 else None

    def converged(self, caught_up: bool = True) -> bool:
        """One primary holding the key; every other member streams from it the same history
        (and, with ``caught_up``, has received all of it)."""
        leader = self.primary()
        if leader is None or self.key_holder() != leader:
            return False
        head = self.world.instances[leader].data
        assert head is not None
        for name, pg in self.world.instances.items():
            if name == leader:
                continue
            d = pg.data
            if not (pg.ready and pg.in_recovery and pg.streaming_from == leader and d is not None):
                return False
            if caught_up and d.position != head.position:
                return False
            if not d.history.same_bytes(head.history, d.position):
                return False
        return True

    # ---- faults ------------------------------------------------------------------------------

    def start_agent(self, name: str) -> None:
        """A new agent process: fresh memory, lease and job runner; PostgreSQL as it was."""
        self.agents[name] = SimNode(
            self.configs[name],
            self.store,
            self.world.instances[name],
            self.clock,
            self.peer_statuses,
            self._job_durations,
            self.failsafe_round,
        )
        self.agents[name].next_run = self.clock() + self.rng.uniform(0.0, 0.5)
        self.agents[name].watched_revision = self.store.revision
        self.agents[name].link.cut = name in self.world.isolated
        self.world.log(name, "agent started")

    def crash_agent(self, name: str, kill_postgres: bool = False) -> None:
        """The agent process dies (kill -9); its PostgreSQL keeps running unless the node died."""
        agent = self.agents.pop(name, None)
        if agent is not None and agent.jobs.abort() in (JobKind.CLONE, JobKind.INITDB):
            self.world.instances[name].interrupt_copy()
        if kill_postgres:
            self.world.instances[name].crash()
        self.world.log(name, "agent CRASHED" + (" with its node" if kill_postgres else ""))

    def restart_agent(self, name: str) -> None:
        self.crash_agent(name)
        self.start_agent(name)

    def pause_agent(self, name: str, seconds: float) -> None:
        """SIGSTOP for ``seconds``: no cycle, no API, while its PostgreSQL keeps serving."""
        agent = self.agents.get(name)
        if agent is not None:
            agent.paused_until = self.clock() + seconds
            self.world.log(name, f"agent PAUSED for {seconds:.1f}s")

    def cut_from_store(self, name: str, cut: bool = True) -> None:
        agent = self.agents.get(name)
        if agent is not None:
            agent.link.cut = cut
        self.world.log(name, "cut from the store" if cut else "store reachable again")

    def isolate(self, name: str, isolated: bool = True) -> None:
        """A network partition around the node: store, peers, replication and clients."""
        (self.world.isolated.add if isolated else self.world.isolated.discard)(name)
        self.cut_from_store(name, isolated)

    def kill_postgres(self, name: str) -> None:
        self.world.instances[name].kill()

    def heal(self) -> None:
        """Every fault undone: links restored, frozen agents resumed, dead agents started again."""
        self.world.rate.clear()
        self.store.regain_quorum()
        for name in self.configs:
            if name in self.world.isolated:
                self.isolate(name, False)
            agent = self.agents.get(name)
            if agent is None:
                self.start_agent(name)
            else:
                agent.link.cut = False
                if agent.paused:
                    agent.paused_until = self.clock()
