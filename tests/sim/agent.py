"""One simulated agent: the real decide and Executor, wired to the fake PostgreSQL and the memory store.

It mirrors ``pgwarden.agent.loop.Agent`` step for step (observe, decide, execute, publish the
member record, schedule the next cycle), with the I/O seams replaced: a per-agent view of the
shared store that can be cut off, a job runner that finishes jobs on the virtual clock, and peers
answered from the other agents' latest snapshots, as their REST API would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pgwarden.agent.execute import Executor, Outcome
from pgwarden.agent.failsafe import PromiseBox
from pgwarden.agent.jobs import Work
from pgwarden.agent.last_good import LastGood
from pgwarden.agent.lease import LeaderLease
from pgwarden.agent.loop import _STATE_CHANGING
from pgwarden.agent.member_record import member_record
from pgwarden.agent.observe import away_member
from pgwarden.agent.snapshot import Snapshot
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.memory import MemoryStore
from pgwarden.dcs.store import LeaseExpired, StoreError
from pgwarden.ha.decide import decide
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Memory, Observation, PeerStatus
from pgwarden.ha.rules.failsafe import absent_members
from pgwarden.model import ClusterView, Job, JobKind, LocalState, Member, NodeConfig
from tests.sim.fake_postgres import FakePostgres

EPOCH = 1_790_000_000.0  # wall-clock seconds at virtual time 0, for scheduled times


class LinkedStore:
    """The shared store as one agent reaches it: every call fails while its link is cut, and
    the next calls of a named method fail while ``failing`` counts them down (a timeout)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.cut = False
        self.failing: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.cut:
                raise StoreError("etcd unreachable: this node is cut off the store")
            if self.failing.get(name, 0) > 0:
                self.failing[name] -= 1
                raise StoreError(f"etcd request timed out ({name})")
            return method(*args, **kwargs)

        return call


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

    def busy(self) -> bool:
        job = self.status()
        return job is not None and job.running

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


class SimAgent:
    """A live agent process: fresh memory, lease and job runner each time one is started."""

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
        self.started = clock()
        self.promises = PromiseBox(clock)
        ask: Failsafe = failsafe or (lambda asker, members, seconds: {n: "no failsafe" for n, _ in members})
        self.postgres = postgres
        self.link = LinkedStore(store)
        self.cluster = ClusterStore(self.link, config.cluster, config.etcd.prefix)
        self.lease = LeaderLease()
        self.jobs = SimJobRunner(clock, job_durations)
        self.last_good = LastGood(config.bootstrap)
        self.executor = Executor(
            config, self.link, self.cluster, postgres, self.jobs, self.lease,  # type: ignore[arg-type]
            self._member_lease_id, clock=clock, known_history=self.last_good.known_history,
            ask_failsafe=lambda members, seconds: ask(self.name, members, seconds),
            promises=self.promises,
        )  # fmt: skip
        self._peers = peers
        self._member_lease: int | None = None
        self.memory = Memory()
        self.last_view = ClusterView(name=config.cluster, config=config.bootstrap)
        local = LocalState()
        self.snapshot = Snapshot(config, self.last_view, local, member_record(config, local))
        self.last_decision: Decision | None = None
        self.last_outcome: Outcome | None = None
        self.next_run = clock()
        self.watched_revision = 0
        self.paused_until: float | None = None
        self.stepped = False  # has run a full cycle since it started or resumed

    @property
    def paused(self) -> bool:
        return self.paused_until is not None

    # ---- one cycle, as Agent.run -------------------------------------------------------------

    def step(self) -> Decision:
        obs = self.observe()
        decision = decide(obs)
        if self.last_decision is None or decision.message != self.last_decision.message:
            self.postgres.world.log(self.name, decision.message)
        self.last_outcome = self.executor.run(decision.actions, obs)
        self.memory = decision.memory
        self.last_decision = decision
        self._publish(obs, decision)
        self._schedule(obs, decision, self.last_outcome.failed is None)
        self.stepped = True
        return decision

    def observe(self) -> Observation:
        view, store_ok = self._read_view()
        local = self.refresh_local()
        peers: Mapping[str, PeerStatus] = {}
        if store_ok and view.leader is None:
            peers = self._peers(self.name, view.members)
        elif store_ok:  # as Observer._ask_peers: a failsafe leader asks about absent topology members
            away = tuple(away_member(n, u) for n, u in absent_members(view, self.name))
            peers = self._peers(self.name, away) if away else {}
        now = self.clock()
        return Observation(
            name=self.name,
            tags=self.config.tags,
            view=view,
            store_ok=store_ok,
            local=local,
            now=now,
            lease_deadline=self.lease.lease_deadline(),
            peers=peers,
            memory=self.memory,
            wall=EPOCH + now,
            failsafe_deadline=self.lease.failsafe_deadline(),
            promise=self.promises.current(),
            agent_started=self.started,
        )

    def refresh_local(self) -> LocalState:
        # The job first: one that ends between the two reads then shows its result in the probe
        # (the real observer reads them the other way round; see the report).
        job = self.jobs.status()
        return dataclasses.replace(self.postgres.local_state(), job=job)

    def _read_view(self) -> tuple[ClusterView, bool]:
        try:
            view, snapshot = self.cluster.read_with_leases()
        except StoreError:
            return self.last_view, False
        config = snapshot.get(self.cluster.keys.config)
        view = self.last_good.apply(view, config is not None, config.mod_revision if config else 0)
        self.last_view = view
        return view, True

    def _publish(self, obs: Observation, decision: Decision) -> None:
        local = self.refresh_local() if decision.actions else obs.local
        member = member_record(self.config, local, decision=decision)
        try:
            self._keep_member_lease(obs)
            self.cluster.publish_member(member, self._member_lease_id())
        except StoreError:
            pass
        now = self.clock()
        self.snapshot = Snapshot(
            self.config, obs.view, local, member, decision, obs.store_ok, now, 0.0, self.lease.deadline(),
            self.lease.failsafe_deadline(), self.promises.current(),
        )  # fmt: skip

    def _keep_member_lease(self, obs: Observation) -> None:
        if self._member_lease is None or not obs.store_ok:
            return
        try:
            self.link.keepalive(self._member_lease)
        except LeaseExpired:
            self._member_lease = None

    def _member_lease_id(self) -> int:
        if self._member_lease is None:
            self._member_lease = self.link.grant_lease(self.last_view.config.ttl)
        return self._member_lease

    def _schedule(self, obs: Observation, decision: Decision, succeeded: bool) -> None:
        """Agent._sleep on the virtual clock: soon after a state change, never past the deadline."""
        quick = succeeded and any(isinstance(x, _STATE_CHANGING) for x in decision.actions)
        wait = 0.2 if quick else obs.view.config.loop_wait
        deadline = self.lease.deadline()
        if deadline is not None:
            wait = min(wait, max(0.05, deadline - self.clock()))
        self.next_run = self.clock() + wait
