"""The agent: every ``loop_wait`` seconds, or at once when etcd changes, observe -> decide -> act."""

from __future__ import annotations

import dataclasses
import logging
import ssl
import threading
from collections.abc import Callable

from pgwarden.agent.callbacks import CallbackRunner, callback_events, missing_commands, role_seen
from pgwarden.agent.decision_log import DecisionLog
from pgwarden.agent.execute import Executor, Outcome
from pgwarden.agent.failsafe import FailsafeClient, PromiseBox
from pgwarden.agent.fence import FenceLink
from pgwarden.agent.guard import LOOP, ErrorCounts, backoff, describe
from pgwarden.agent.jobs import JobRunner
from pgwarden.agent.lease import LeaderLease, monotonic
from pgwarden.agent.lease_guard import LeaseGuard
from pgwarden.agent.lease_keeper import LeaseKeeper
from pgwarden.agent.member_record import member_record
from pgwarden.agent.node_reload import NodeConfigReload, ReloadPlan
from pgwarden.agent.notify import ServiceNotifier
from pgwarden.agent.observe import Observer
from pgwarden.agent.peers import PeerClient
from pgwarden.agent.postmaster_watch import PostmasterWatch
from pgwarden.agent.reloads import Reloads
from pgwarden.agent.requests import RequestBox
from pgwarden.agent.snapshot import Snapshot, SnapshotHolder
from pgwarden.agent.wal_clock import WalClock
from pgwarden.agent.watch import ClusterWatch
from pgwarden.agent.watchdog import Watchdog
from pgwarden.api.inspection import AgentInspection, Sources
from pgwarden.api.operations import AgentOperations
from pgwarden.api.server import ApiServer
from pgwarden.api.tls import ReloadableClientContext, calls_peers_over_tls, peer_context, peer_files
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.dcs.etcd_tls import tls_files as etcd_tls_files
from pgwarden.dcs.keys import ClusterKeys
from pgwarden.dcs.store import LeaseExpired, StoreError
from pgwarden.ha import actions as a
from pgwarden.ha.decide import decide
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Memory, Observation
from pgwarden.ha.reasons import Reason
from pgwarden.logs import apply as apply_logging
from pgwarden.model import ClusterView, LocalState, NodeConfig, Role
from pgwarden.postgres.controller import PostgresController
from pgwarden.postgres.diagnostics import postgres_facts
from pgwarden.postgres.parameter_check import check_parameters

log = logging.getLogger(__name__)

# Actions that change what PostgreSQL is doing: after them the next cycle comes quickly, so the
# new state is published (and a new primary's slots created) without waiting a full loop_wait.
_STATE_CHANGING = (
    a.Promote,
    a.StartPrimary,
    a.StartStandby,
    a.Demote,
    a.AcquireLeader,
    a.Follow,
    a.StopPostgres,
    a.ReleaseLeader,
    a.ApplyParameters,  # so the settings left pending a restart are published at once
)
_PROBE_TIMEOUT = 2.0
# While a switchover names this node (as leader or candidate), cycles come this often: the leader
# waits on the candidate's replay position, which the candidate's API reports from its last cycle.
_SWITCHOVER_CYCLE = 0.05


def failsafe_client(config: NodeConfig, tls: ssl.SSLContext | None = None) -> FailsafeClient:
    """Asks the members for their promises with this node's API credentials (the cluster's),
    within half a retry_timeout (docs/timing.md: the round must fit inside the margin)."""
    api, pg = config.api, config.postgresql
    auth = (api.username, api.password or "") if api.username else None
    conn_url = f"postgres://{pg.connect_address}/postgres"
    timeout = min(1.0, config.bootstrap.retry_timeout / 2)
    return FailsafeClient(config.name, api.url, conn_url, auth, timeout, config.etcd.bind_address, tls)


class Agent:
    def __init__(
        self,
        config: NodeConfig,
        config_path: str | None = None,
        load_config: Callable[[], NodeConfig] | None = None,
    ) -> None:
        """``load_config`` reads the node config file again (SIGHUP); None: no reload."""
        self.config = config
        dcs = config.bootstrap
        # Each etcd request gets half the retry budget per endpoint, so a renewal can still try a
        # second member within retry_timeout when the first hangs.
        self.store = EtcdStore.connect(config.etcd, timeout=dcs.retry_timeout / 2)
        self.keys = ClusterKeys(config.cluster, config.etcd.prefix)
        self.cluster = ClusterStore(self.store, config.cluster, config.etcd.prefix, config.member_networks)
        self.postgres = PostgresController(config.postgresql, config.name)
        self.jobs = JobRunner()
        self.errors = ErrorCounts()  # internal errors the loop and each thread survived
        self._failing = 0  # cycles failed in a row
        self.lease = LeaderLease()
        self.watchdog = Watchdog(config.watchdog, self.lease)
        self._wake = threading.Event()
        self.requests = RequestBox(wake=self._wake.set)
        # Peers are called over TLS with this agent's client certificate when api.tls asks for it.
        self._peer_tls = self._peer_tls_context()
        self.peers = PeerClient(
            timeout=min(1.0, dcs.retry_timeout), bind_address=config.etcd.bind_address, tls=self._peer_tls
        )
        self.promises = PromiseBox()
        self.failsafe = failsafe_client(config, self._peer_tls)
        self.observer = Observer(
            config,
            self.cluster,
            self._probe,
            self.jobs,
            self.peers,
            self.lease,
            self.requests,
            self.promises,
            watchdog_ready=self.watchdog.ready,
        )
        self.executor = Executor(
            config,
            self.store,
            self.cluster,
            self.postgres,
            self.jobs,
            self.lease,
            self._member_lease_id,
            forget_scheduled_restart=self.requests.cancel_scheduled_restart,
            watchdog=self.watchdog,
            ask_failsafe=self.failsafe.ask,
            promises=self.promises,
            known_history=self.observer.last_good.known_history,
        )
        self.callbacks = CallbackRunner(
            config.callbacks,
            config.cluster,
            config.callback_timeout,
            config.name,
            config.api.url,
            errors=self.errors,
        )
        self._role: Role | None = None  # the role PostgreSQL last ran in, for the callbacks
        self._member_lease: int | None = None
        self._published_lease: int | None = None  # the lease the member record was last written on
        self._stop = threading.Event()
        empty_view = ClusterView(name=config.cluster, config=dcs)
        local = LocalState()
        self.snapshots = SnapshotHolder(Snapshot(config, empty_view, local, member_record(config, local)))
        operations = AgentOperations(
            self.cluster,
            self.snapshots,
            self.requests,
            promises=self.promises,
            check_parameters=lambda parameters: check_parameters(config.postgresql, parameters),
        )
        self.decisions = DecisionLog()
        self.wal_clock = WalClock()
        self.lease_keeper = LeaseKeeper(self.store, self.lease, errors=self.errors)
        inspection = AgentInspection(
            Sources(
                config=config,
                snapshots=self.snapshots,
                decisions=self.decisions,
                wal_clock=self.wal_clock,
                etcd_reads=self.observer.reads,
                etcd_renewals=self.lease_keeper.round_trips,
                postgres=lambda: postgres_facts(config.postgresql),
                peers=self.peers.documents,
                watchdog=self.watchdog,
            )
        )
        self.api = ApiServer(config.api, self.snapshots, operations, inspection=inspection)
        # The fence outlives this process: it gets every deadline the lease guard enforces.
        self.fence = FenceLink(
            config.postgresql.data_dir, config.name, self.lease.deadline, config_path, config.log_format
        )
        self.lease.listeners.append(self.fence.publish)
        self.lease_guard = LeaseGuard(
            self.lease,
            self.postgres,
            self._may_write,
            feed=self.fence.publish,
            after_stop=self.watchdog.disarm,
            errors=self.errors,
        )
        self.postmaster_watch = PostmasterWatch(config.postgresql.data_dir, self._wake, self.errors)
        self.watch = ClusterWatch(
            self.store, self.keys, self._wake, lambda: self.observer.last_view.revision, self.errors
        )
        if self._peer_tls is not None:
            self.api.certificates.add(
                "the certificate presented to peers", peer_files(config.api), self._peer_tls.reload
            )
        if config.etcd.tls:
            files = etcd_tls_files(config.etcd)
            self.api.certificates.add("the etcd client certificate", files, self.store.reload_tls)
        self.reloads = Reloads()  # what SIGHUP reloads (cli/agent.py installs the handler)
        self.reloads.add("the REST API's certificates", self.api.request_reload)
        self.node_reload = NodeConfigReload(load_config, self._wake.set) if load_config else None
        if self.node_reload is not None:
            self.reloads.add("the node config", self.node_reload.request)
        self.notifier = ServiceNotifier.from_environment()  # systemd Type=notify (deploy/)

    def _peer_tls_context(self) -> ReloadableClientContext | None:
        api = self.config.api
        return ReloadableClientContext(lambda: peer_context(api)) if calls_peers_over_tls(api) else None

    def _may_write(self) -> bool:
        local = self.snapshots.get().local
        return local.running and local.in_recovery is not True

    def _probe(self) -> LocalState:
        return self.postgres.probe(_PROBE_TIMEOUT)

    def _member_lease_id(self) -> int:
        if self._member_lease is None:
            self._member_lease = self.store.grant_lease(self.observer.last_view.config.ttl)
        return self._member_lease

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        self.fence.ensure_running()  # before anything could make PostgreSQL writable
        self.api.start()
        self.watch.start()
        self.postmaster_watch.start()
        self.lease_guard.start()
        self.lease_keeper.start()
        log.info(
            "agent %s of cluster %s started; API on %s",
            self.config.name,
            self.config.cluster,
            self.config.api.listen,
        )
        for problem in missing_commands(self.config.callbacks):
            log.warning("%s", problem)
        memory = Memory()
        self._last_message = ""
        try:
            while not self._stop.is_set():
                started = monotonic()
                try:
                    memory = self._cycle(memory, started)
                except Exception as exc:  # issue 11: no internal error ends the loop (see _failed)
                    self._failed(exc)
        finally:
            # Only a stop request gets here (a signal; or KeyboardInterrupt / SystemExit, the
            # process exiting anyway): an internal error never does, it is retried above.
            self._shutdown()

    def _reload_config(self) -> None:
        """Apply a node config SIGHUP asked for (agent/node_reload.py says what changes live)."""
        reload = self.node_reload.take(self.config) if self.node_reload is not None else None
        if reload is None:
            return
        self.notifier.reloading()
        self.use_config(reload)
        log.info("%s", reload.summary())
        self.notifier.reloaded()

    def use_config(self, reload: ReloadPlan) -> None:
        config = self.config = reload.config
        apply_logging(config.log_level, config.log_format, config.cluster, config.name)
        self.observer.use_config(config)
        self.callbacks.use(config.callbacks, config.callback_timeout)

    def _cycle(self, memory: Memory, started: float) -> Memory:
        """One observe -> decide -> act cycle; the memory ``decide`` hands to the next one."""
        self._reload_config()
        self.fence.ensure_running()  # a fence that died (OOM killer, an operator) is replaced
        obs = self.observer.observe(memory)
        decision = decide(obs)
        self.decisions.record(decision)
        if decision.message != self._last_message:
            # The decision line: its reason code is a field of its own in JSON logs.
            log.info("%s", decision.message, extra={"reason_code": decision.reason.name})
            self._last_message = decision.message
        outcome = self.executor.run(decision.actions, obs)
        self._callbacks(obs, outcome)
        if decision.answers:
            self.requests.answer(decision.answers, outcome.failed, decision.message)
        self._publish(obs, decision, started)
        self.notifier.cycle_done(decision.message)  # READY=1 after the first cycle
        if self._failing:
            log.warning("HA loop cycles complete again after %d failed in a row", self._failing)
            self._failing = 0
        self._sleep(started, obs, decision, outcome.failed is None)
        return decision.memory

    def _failed(self, exc: Exception) -> None:
        """A cycle raised: log it with its traceback, show INTERNAL_ERROR, retry after a short backoff.

        PostgreSQL is left as it is: a standby keeps streaming, and a primary whose cycles keep
        failing stops renewing its lease, so the lease guard stops it at the deadline (safety
        rule 1), exactly as when the loop is stuck. Never stopping it here is the point: one bad
        input used to stop every node of the cluster through this path.
        """
        self._failing += 1
        _, changed = self.errors.record(LOOP, exc)
        wait = backoff(self._failing, self.observer.last_view.config.loop_wait)
        try:
            if changed or self._failing == 1:
                log.error(
                    "HA loop cycle failed (%d in a row); retrying in %.1fs", self._failing, wait, exc_info=exc
                )
            else:
                log.error("HA loop cycle failed again (%d in a row): %s", self._failing, describe(exc))
            self._publish_failure(exc, wait)
        except Exception:  # reporting must not be what ends the loop either
            log.exception("could not report the failed cycle")
        self._stop.wait(wait)

    def _publish_failure(self, exc: Exception, wait: float) -> None:
        """The snapshot (and, when etcd answered lately, the member record) of a failed cycle: a
        fresh probe, so the API, the lease guard and the peers see PostgreSQL as it is, and the
        INTERNAL_ERROR reason, so `list` and `/patroni` show the crash loop."""
        previous = self.snapshots.get()
        try:
            local = self.observer.refresh_local()
        except Exception:
            # Cannot tell what PostgreSQL does: "maybe read-write" keeps the lease guard armed.
            local = dataclasses.replace(previous.local, probe_ok=False, in_recovery=None)
        error = describe(exc)
        decision = Decision((), Reason.INTERNAL_ERROR, {"count": self._failing, "error": error, "wait": wait})
        self.decisions.record(decision)  # GET /events and the member record show the crash loop too
        member = dataclasses.replace(
            member_record(self.config, local, self.requests.scheduled_restart(), decision),
            loop_error=f"{self._failing} cycles failed in a row: {error}",
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
            try:
                self._keep_member_lease(previous.store_ok)
                lease = self._member_lease_id()
                self.cluster.publish_member(member, lease)
                self._published_lease = lease
            except StoreError as exc:
                log.warning("cannot publish my member record: %s", exc)

    def _callbacks(self, obs: Observation, outcome: Outcome) -> None:
        before = role_seen(obs.local) or self._role
        events, self._role = callback_events(outcome.executed, before, obs.local.running)
        self.callbacks.fire(events)

    def _publish(self, obs: Observation, decision: Decision, started: float) -> None:
        local = obs.local
        if decision.actions:
            local = self.observer.refresh_local()
        member = member_record(self.config, local, self.requests.scheduled_restart(), decision)
        if local.is_primary and local.write_lsn is not None:
            self.wal_clock.note(obs.wall, local.write_lsn)
        now = monotonic()
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
                obs.wall if obs.store_ok else self.snapshots.get().dcs_last_seen,
            )
        )
        if not obs.store_ok:
            return  # this cycle could not read etcd: writing to it would only wait out its timeouts
        try:
            self._keep_member_lease(obs.store_ok)
            lease = self._member_lease_id()
            # Written only when etcd's copy (read this cycle) differs, or the lease is new: an idle
            # member writes nothing, and no agent's watch wakes for it (the keepalive above keeps
            # the key alive).
            if obs.view.member(self.config.name) != member or lease != self._published_lease:
                self.cluster.publish_member(member, lease)
                self._published_lease = lease
        except StoreError as exc:
            log.warning("cannot publish my member record: %s", exc)

    def _keep_member_lease(self, store_ok: bool) -> None:
        if self._member_lease is None or not store_ok:
            return
        try:
            self.store.keepalive(self._member_lease)
        except LeaseExpired:
            log.info("member lease expired; granting a new one")
            self._member_lease = None

    def _sleep(self, started: float, obs: Observation, decision: Decision, succeeded: bool) -> None:
        loop_wait = obs.view.config.loop_wait
        quick = succeeded and any(isinstance(x, _STATE_CHANGING) for x in decision.actions)
        # A leader whose renewal failed retries soon: its lease deadline is running out.
        retry = not succeeded and self.lease.lease_id is not None
        wait = 0.2 if quick else 0.25 if retry else max(0.0, loop_wait - (monotonic() - started))
        intent = obs.view.switchover
        involved = intent is not None and self.config.name in (intent.leader, intent.candidate)
        if involved and intent is not None and intent.active(obs.wall):
            wait = min(wait, _SWITCHOVER_CYCLE)
        deadline = self.lease.deadline()
        if deadline is not None:
            # Decide again no later than the lease deadline: demotion must not wait a tick.
            wait = min(wait, max(0.05, deadline - monotonic()))
        self._wake.wait(wait)
        self._wake.clear()

    def _shutdown(self) -> None:
        """A requested stop: PostgreSQL down cleanly, the key released, so failover is immediate."""
        log.info("agent stopping")
        self.notifier.stopping()
        self.watch.stop()
        self.postmaster_watch.stop()
        self.lease_guard.stop()
        self.lease_keeper.stop()
        try:
            running = self.postgres.is_running()
            self.postgres.stop("fast")
            if running:
                self.callbacks.fire(callback_events((a.StopPostgres(a.StopMode.FAST),), self._role, True)[0])
            if self.lease.lease_id is not None:
                self.cluster.release_leader(self.config.name)
                self.store.revoke(self.lease.lease_id)
                self.lease.forget()
            if self._member_lease is not None:
                self.store.revoke(self._member_lease)
        except Exception as exc:  # shutting down: report, never hang
            log.warning("during shutdown: %s", exc)
        if not self.postgres.is_running():
            # Still running, PostgreSQL keeps its fence and its watchdog (which resets the machine).
            self.watchdog.disarm()
            self.fence.stop()
        self.api.stop()
        self.peers.close()
        self.failsafe.close()
        self.store.close()
        # Give the callbacks this stop fired (on_stop: a VIP to drop) a bounded chance to finish.
        self.callbacks.wait(min(self.config.callback_timeout, 10.0))
