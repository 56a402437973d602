"""One HA cycle: observe -> decide -> act -> publish, and the guard that survives a failed one.

``Cycle.step`` runs one cycle and says how long to wait before the next (``ha/cadence.py``); it
starts no thread and never sleeps. The agent's process (daemon/agent.py) runs it on its loop
thread between etcd watch wake-ups; the simulation (tests/sim) runs the very same object on a
virtual clock, with PostgreSQL, the peers and the jobs plugged in through agent/ports.py.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pgwarden.agent.callbacks import CallbackRunner, callback_events, role_seen
from pgwarden.agent.decision_log import DecisionLog
from pgwarden.agent.execute import AskFailsafe, Executor, Outcome, no_failsafe
from pgwarden.agent.failsafe import PromiseBox
from pgwarden.agent.guard import LOOP, ErrorCounts, backoff, describe
from pgwarden.agent.lease import LeaderLease, monotonic
from pgwarden.agent.member_record import member_record
from pgwarden.agent.observe import Observer
from pgwarden.agent.ports import Jobs, Peers, Postgres
from pgwarden.agent.requests import RequestBox
from pgwarden.agent.snapshot import Snapshot, SnapshotHolder
from pgwarden.agent.wal_clock import WalClock
from pgwarden.agent.watchdog import Watchdog
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.store import LeaseExpired, Store, StoreError
from pgwarden.ha.actions import changes_postgres
from pgwarden.ha.cadence import Carried, next_wait
from pgwarden.ha.decide import decide
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Memory, Observation
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.timeline import remembered_timeline
from pgwarden.model import ClusterView, LocalState, Member, NodeConfig, Role, Slot

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0


def _nothing() -> None:
    return None


@dataclass
class Ports:
    """What a node plugs into its cycle, and what the simulation replaces (agent/ports.py)."""

    store: Store
    postgres: Postgres
    peers: Peers
    jobs: Jobs
    clock: Callable[[], float] = monotonic  # monotonic seconds: deadlines, timers
    wall: Callable[[], float] = time.time  # epoch seconds: scheduled times, intents' deadlines
    ask_failsafe: AskFailsafe = no_failsafe
    watchdog: Watchdog | None = None
    lease: LeaderLease = field(default_factory=LeaderLease)
    requests: RequestBox = field(default_factory=RequestBox)
    promises: PromiseBox | None = None
    errors: ErrorCounts = field(default_factory=ErrorCounts)
    callbacks: CallbackRunner | None = None
    before: Callable[[], None] = _nothing  # first thing in a cycle (node config reload, the fence)
    done: Callable[[str], None] = lambda message: None  # a cycle completed (sd_notify)


@dataclass(frozen=True, slots=True)
class Next:
    """What a cycle hands to the one after it: the memory, and how long to wait at most."""

    memory: Memory
    wait: float
    failed: bool = False  # the cycle raised: wait out ``wait`` (a backoff), whatever wakes the loop


class MemberLease:
    """The etcd lease this member's record lives on: granted at first use, kept alive each cycle
    that read etcd, granted again when it expired."""

    def __init__(self, store: Store, ttl: Callable[[], float]) -> None:
        self._store = store
        self._ttl = ttl
        self.lease: int | None = None
        self.published: int | None = None  # the lease the member record was last written on

    def get(self) -> int:
        if self.lease is None:
            self.lease = self._store.grant_lease(self._ttl())
        return self.lease

    def keep(self) -> None:
        if self.lease is None:
            return
        try:
            self._store.keepalive(self.lease)
        except LeaseExpired:
            log.info("member lease expired; granting a new one")
            self.lease = None


class Cycle:
    """One node's HA cycle, with everything it carries from one cycle to the next."""

    def __init__(self, config: NodeConfig, ports: Ports) -> None:
        self.config = config
        self.ports = ports
        self.clock = ports.clock
        self.lease = ports.lease
        self.requests = ports.requests
        self.errors = ports.errors
        self.promises = ports.promises or PromiseBox(ports.clock)
        self.postgres = ports.postgres
        self.jobs = ports.jobs
        self.store = ports.store
        self.cluster = ClusterStore(ports.store, config.cluster, config.etcd.prefix, config.member_networks)
        watchdog = ports.watchdog
        self.observer = Observer(
            config,
            self.cluster,
            self._probe,
            ports.jobs,
            ports.peers,
            self.lease,
            self.requests,
            self.promises,
            watchdog_ready=watchdog.ready if watchdog is not None else lambda ttl, loop_wait: True,
            clock=ports.clock,
            wall=ports.wall,
        )
        self.member_lease = MemberLease(ports.store, lambda: self.observer.last_view.config.ttl)
        self.executor = Executor(
            config,
            ports.store,
            self.cluster,
            ports.postgres,
            ports.jobs,
            self.lease,
            self.member_lease.get,
            clock=ports.clock,
            forget_scheduled_restart=self.requests.cancel_scheduled_restart,
            watchdog=watchdog,
            ask_failsafe=ports.ask_failsafe,
            promises=self.promises,
            known_history=self.observer.last_good.known_history,
        )
        empty_view = ClusterView(name=config.cluster, config=config.bootstrap)
        local = LocalState()
        self.snapshots = SnapshotHolder(Snapshot(config, empty_view, local, member_record(config, local)))
        self.role: Role | None = None  # the role PostgreSQL last ran in, for the callbacks
        self.failing = 0  # cycles failed in a row
        self.last_decision: Decision | None = None
        self.last_outcome: Outcome | None = None
        self.decisions = DecisionLog()  # the recent decisions: GET /events (api/inspection.py)
        self.wal_clock = WalClock()  # the primary's WAL position over time (diagnostics)

    def _probe(self) -> LocalState:
        """The local PostgreSQL, with its replication slots (rules/slots.py): a primary's, and a
        standby's, which keeps those of the members cascading from it."""
        local = self.postgres.probe(PROBE_TIMEOUT)
        if not (local.running and local.probe_ok):
            return local
        try:
            slots = self.postgres.list_slots()
        except Exception as exc:  # unknown this cycle: the rules then create what they want, drop nothing
            log.warning("cannot list the replication slots: %s", exc)
            return local
        listed = {name: Slot(slot.active, slot.restart_lsn) for name, slot in slots.items()}
        return dataclasses.replace(local, slots=listed)

    def use_config(self, config: NodeConfig) -> None:
        """A reloaded node config (agent/node_reload.py): it counts from the next cycle."""
        self.config = config
        self.observer.use_config(config)

    # ---- one cycle, guarded --------------------------------------------------------------------

    def step(self, memory: Memory) -> Next:
        """One cycle; an internal error is reported and retried after a backoff (see ``_failed``)."""
        started = self.clock()
        try:
            return self._cycle(memory, started)
        except Exception as exc:  # issue 11: no internal error ends the loop (see _failed)
            return Next(memory, self._failed(exc, memory), failed=True)

    def _cycle(self, memory: Memory, started: float) -> Next:
        self.ports.before()
        obs = self.observer.observe(memory)
        decision = decide(obs)
        self.decisions.record(decision)
        if self.last_decision is None or decision.message != self.last_decision.message:
            # The decision line: its reason code is a field of its own in JSON logs.
            log.info("%s", decision.message, extra={"reason_code": decision.reason.name})
        else:
            # The same decision again is logged at DEBUG only (log_level: DEBUG shows every cycle).
            log.debug("%s (again)", decision.message, extra={"reason_code": decision.reason.name})
        self.last_decision = decision
        outcome = self.last_outcome = self.executor.run(decision.actions, obs)
        self._callbacks(obs, outcome)
        if decision.answers:
            self.requests.answer(decision.answers, outcome.failed, decision.message)
        self._publish(obs, decision, started)
        self.ports.done(decision.message)  # READY=1 after the first cycle
        if self.failing:
            log.warning("HA loop cycles complete again after %d failed in a row", self.failing)
            self.failing = 0
        deadline = self.lease.deadline()
        now = self.clock()
        carried = Carried(
            succeeded=outcome.failed is None,
            leading=self.lease.lease_id is not None,
            elapsed=now - started,
            until_deadline=None if deadline is None else deadline - now,
        )
        return Next(decision.memory, next_wait(obs, decision, carried))

    def _failed(self, exc: Exception, memory: Memory) -> float:
        """A cycle raised: log it with its traceback, show INTERNAL_ERROR; the backoff to wait.

        PostgreSQL is left as it is: a standby keeps streaming, and a primary whose cycles keep
        failing stops renewing its lease, so the lease guard stops it at the deadline (safety
        rule 1), exactly as when the loop is stuck. Never stopping it here is the point: one bad
        input used to stop every node of the cluster through this path.
        """
        self.failing += 1
        _, changed = self.errors.record(LOOP, exc)
        wait = backoff(self.failing, self.observer.last_view.config.loop_wait)
        try:
            if changed or self.failing == 1:
                log.error(
                    "HA loop cycle failed (%d in a row); retrying in %.1fs", self.failing, wait, exc_info=exc
                )
            else:
                log.error("HA loop cycle failed again (%d in a row): %s", self.failing, describe(exc))
            self._publish_failure(exc, wait, memory)
        except Exception:  # reporting must not be what ends the loop either
            log.exception("could not report the failed cycle")
        return wait

    def _publish_failure(self, exc: Exception, wait: float, memory: Memory) -> None:
        """The snapshot (and, when etcd answered lately, the member record) of a failed cycle: a
        fresh probe, so the API, the lease guard and the peers see PostgreSQL as it is, and the
        INTERNAL_ERROR reason, so `list` and `/patroni` show the crash loop."""
        previous = self.snapshots.get()
        try:
            local, _ = remembered_timeline(self.observer.refresh_local(), memory.standby_timeline)
        except Exception:
            # Cannot tell what PostgreSQL does: "maybe read-write" keeps the lease guard armed.
            local = dataclasses.replace(previous.local, probe_ok=False, in_recovery=None)
        error = describe(exc)
        decision = Decision((), Reason.INTERNAL_ERROR, {"count": self.failing, "error": error, "wait": wait})
        self.decisions.record(decision)  # GET /events and the member record show the crash loop too
        member = dataclasses.replace(
            member_record(self.config, local, self.requests.scheduled_restart(), decision),
            loop_error=f"{self.failing} cycles failed in a row: {error}",
        )
        self.snapshots.set(
            dataclasses.replace(
                previous,
                local=local,
                member=member,
                decision=decision,
                lease_deadline=self.lease.deadline(),
                errors=self.errors.counts(),
            )
        )
        if previous.store_ok:
            self._write_member(member, always=True)

    def _callbacks(self, obs: Observation, outcome: Outcome) -> None:
        before = role_seen(obs.local) or self.role
        events, self.role = callback_events(outcome.executed, before, obs.local.running)
        if self.ports.callbacks is not None:
            self.ports.callbacks.fire(events)

    def _publish(self, obs: Observation, decision: Decision, started: float) -> None:
        # Probed again only when an action may have changed PostgreSQL: an idle leader's renewal
        # and status write leave it as this cycle saw it (one probe per cycle, not two).
        changed = any(changes_postgres(action) for action in decision.actions)
        local = self.observer.refresh_local() if changed else obs.local
        # As decide saw it (ha/rules/timeline.py): a standby's timeline is the highest it received.
        local, _ = remembered_timeline(local, decision.memory.standby_timeline)
        member = member_record(self.config, local, self.requests.scheduled_restart(), decision)
        if local.is_primary and local.write_lsn is not None:
            self.wal_clock.note(obs.wall, local.write_lsn)
        now = self.clock()
        seen = obs.wall if obs.store_ok else self.snapshots.get().store_seen_at
        # The API answers from this at once; etcd may take its time (or time out) below.
        self.snapshots.set(
            Snapshot(
                self.config,
                obs.view,
                local,
                member,
                decision,
                obs.store_ok,
                now,
                now - started,
                self.lease.deadline(),
                self.lease.failsafe_deadline(),
                self.promises.current(),
                self.errors.counts(),
                seen,
            )
        )
        if not obs.store_ok:
            return  # this cycle could not read etcd: writing to it would only wait out its timeouts
        # Written only when etcd's copy (read this cycle) differs, or the lease is new: an idle
        # member writes nothing, and no agent's watch wakes for it (the keepalive keeps the key).
        self._write_member(member, always=obs.view.member(self.config.name) != member)

    def _write_member(self, member: Member, always: bool) -> None:
        leases = self.member_lease
        try:
            leases.keep()
            lease = leases.get()
            if always or lease != leases.published:
                self.cluster.publish_member(member, lease)
                leases.published = lease
        except StoreError as exc:
            log.warning("cannot publish my member record: %s", exc)
