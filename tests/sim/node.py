"""One simulated node: the agent's own cycle (pgwarden.agent.loop.Cycle) with simulated ports.

Nothing of the agent is copied here. The cycle runs as it does on a node, with what differs
plugged in through agent/ports.py: the fake PostgreSQL, a per-agent view of the shared memory store
that can be cut off, a job runner that finishes jobs on the virtual clock, and peers answered from
the other agents' latest snapshots, as their REST API would. What stays here is the process as the
simulation sees it: when its next cycle is due, whether it is frozen, what its watch saw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from pgwarden.agent.jobs import Work
from pgwarden.agent.loop import Cycle, Ports
from pgwarden.agent.snapshot import Snapshot
from pgwarden.dcs.memory import MemoryStore
from pgwarden.dcs.store import Snapshot as StoreSnapshot
from pgwarden.dcs.store import StoreError, WatchEvent
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Memory, PeerStatus
from pgwarden.model import Job, JobKind, Member, NodeConfig
from tests.sim.fake_postgres import FakePostgres

EPOCH = 1_790_000_000.0  # wall-clock seconds at virtual time 0, for scheduled times

T = TypeVar("T")


class LinkedStore:
    """The shared store as one agent reaches it: every call fails while its link is cut, and
    the next calls of a named method fail while ``failing`` counts them down (a timeout)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.cut = False
        self.failing: dict[str, int] = {}

    def _call(self, name: str, call: Callable[[], T]) -> T:
        if self.cut:
            raise StoreError("etcd unreachable: this node is cut off the store")
        if self.failing.get(name, 0) > 0:
            self.failing[name] -= 1
            raise StoreError(f"etcd request timed out ({name})")
        return call()

    def get_prefix(self, prefix: str) -> StoreSnapshot:
        return self._call("get_prefix", lambda: self._store.get_prefix(prefix))

    def grant_lease(self, ttl: float) -> int:
        return self._call("grant_lease", lambda: self._store.grant_lease(ttl))

    def keepalive(self, lease: int) -> float:
        return self._call("keepalive", lambda: self._store.keepalive(lease))

    def renew_lease(self, lease: int, until: float) -> float:
        return self._call("renew_lease", lambda: self._store.renew_lease(lease, until))

    def revoke(self, lease: int) -> None:
        self._call("revoke", lambda: self._store.revoke(lease))

    def put(self, key: str, value: str, lease: int = 0) -> int:
        return self._call("put", lambda: self._store.put(key, value, lease))

    def create(self, key: str, value: str, lease: int = 0) -> bool:
        return self._call("create", lambda: self._store.create(key, value, lease))

    def replace(self, key: str, value: str, expected_value: str, lease: int = 0) -> bool:
        return self._call("replace", lambda: self._store.replace(key, value, expected_value, lease))

    def replace_at(self, key: str, value: str, mod_revision: int, lease: int = 0) -> bool:
        return self._call("replace_at", lambda: self._store.replace_at(key, value, mod_revision, lease))

    def delete(self, key: str, expected_value: str | None = None) -> bool:
        return self._call("delete", lambda: self._store.delete(key, expected_value))

    def watch(self, prefix: str, start_revision: int, timeout: float) -> list[WatchEvent]:
        return self._call("watch", lambda: self._store.watch(prefix, start_revision, timeout))

    def close(self) -> None:
        return None


class SimJobRunner:
    """JobRunner's interface; the job's thread is ``poll``, called by the simulation each tick
    while the agent is not frozen; the work runs once its virtual duration has passed."""

    def __init__(self, clock: Callable[[], float], durations: Mapping[JobKind, float]) -> None:
        self._clock = clock
        self._durations = durations
        self._job: Job | None = None
        self._work: Work | None = None
        self._due = 0.0

    def status(self) -> Job | None:
        return self._job

    def start(self, kind: JobKind, work: Work) -> None:
        if self._job is not None and self._job.running:
            raise RuntimeError(f"a {self._job.kind.value} job is already running")
        self._job, self._work = Job(kind=kind, running=True), work
        self._due = self._clock() + self._durations.get(kind, 0.0)
        self.poll()

    def poll(self) -> None:
        job, work = self._job, self._work
        if job is None or not job.running or work is None or self._clock() < self._due:
            return
        self._work = None
        try:
            work(lambda text: None)
        except Exception as exc:  # as JobRunner: a failed job is reported, never raised
            self._job = Job(kind=job.kind, running=False, ok=False, error=str(exc)[-500:])
        else:
            self._job = Job(kind=job.kind, running=False, ok=True)

    def abort(self) -> JobKind | None:
        """The agent died mid-job: the job's work never completes."""
        job = self._job
        self._job, self._work = None, None
        return job.kind if job is not None and job.running else None


class Peers(Protocol):
    def __call__(self, asker: str, members: tuple[Member, ...]) -> Mapping[str, PeerStatus]: ...


class Failsafe(Protocol):
    """A round of POST /failsafe from ``asker``: who did not promise, and why."""

    def __call__(
        self, asker: str, members: Sequence[tuple[str, str]], seconds: float
    ) -> Mapping[str, str]: ...


class SimPeers:
    """The peer client of one agent: the simulation answers for the other agents' REST APIs."""

    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    def gather(self, members: Sequence[Member], me: str) -> Mapping[str, PeerStatus]:
        return self._peers(me, tuple(members))


class SimNode:
    """A live agent process: a fresh cycle (memory, lease, job runner) each time one is started."""

    def __init__(
        self,
        config: NodeConfig,
        store: MemoryStore,
        postgres: FakePostgres,
        clock: Callable[[], float],
        peers: Peers,
        job_durations: Mapping[JobKind, float],
        failsafe: Failsafe | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.clock = clock
        self.postgres = postgres
        self.link = LinkedStore(store)
        self.jobs = SimJobRunner(clock, job_durations)
        ask: Failsafe = failsafe or (lambda asker, members, seconds: {n: "no failsafe" for n, _ in members})
        self.cycle = Cycle(
            config,
            Ports(
                store=self.link,
                postgres=postgres,
                peers=SimPeers(peers),
                jobs=self.jobs,
                clock=clock,
                wall=lambda: EPOCH + clock(),
                ask_failsafe=lambda members, seconds: ask(self.name, members, seconds),
            ),
        )
        self.lease = self.cycle.lease
        self.promises = self.cycle.promises
        self.memory = Memory()
        self.next_run = clock()
        self.watched_revision = 0
        self.paused_until: float | None = None
        self.stepped = False  # has run a full cycle since it started or resumed
        self.failed = False  # its last cycle raised: no watch event cuts the backoff short

    @property
    def paused(self) -> bool:
        return self.paused_until is not None

    @property
    def snapshot(self) -> Snapshot:
        """What its REST API serves."""
        return self.cycle.snapshots.get()

    @property
    def last_decision(self) -> Decision | None:
        return self.cycle.last_decision

    def step(self) -> Decision | None:
        """One cycle of the agent's own loop; the next is due when the cycle says."""
        before = self.cycle.last_decision
        after = self.cycle.step(self.memory)
        self.memory, self.failed = after.memory, after.failed
        decision = self.cycle.last_decision
        if decision is not None and (before is None or decision.message != before.message):
            self.postgres.world.log(self.name, decision.message)
        self.next_run = self.clock() + after.wait
        self.stepped = True
        return decision
