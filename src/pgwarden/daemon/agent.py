"""The agent's process: its HA cycle (agent/loop.py) on the loop thread, and everything around it.

Every ``loop_wait`` seconds, or at once when etcd's watch or the postmaster wakes it, the loop
thread runs one cycle. Around it: the REST API, the lease guard and keeper, the etcd watch, the
postmaster watch, the fence, the node config reload (SIGHUP), sd_notify and the shutdown. This
module sits above both agent/ and api/: the agent's own modules never import the API.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable

from pgwarden.agent.adoption import reap_adopted
from pgwarden.agent.callbacks import CallbackRunner, callback_events, missing_commands
from pgwarden.agent.failsafe import FailsafeClient, PromiseBox
from pgwarden.agent.fence import FenceLink
from pgwarden.agent.guard import ErrorCounts
from pgwarden.agent.jobs import JobRunner
from pgwarden.agent.lease import LeaderLease
from pgwarden.agent.lease_guard import LeaseGuard
from pgwarden.agent.lease_keeper import LeaseKeeper
from pgwarden.agent.loop import Cycle, Ports
from pgwarden.agent.node_reload import NodeConfigReload, ReloadPlan
from pgwarden.agent.notify import ServiceNotifier
from pgwarden.agent.peers import PeerClient
from pgwarden.agent.postmaster_watch import PostmasterWatch
from pgwarden.agent.reloads import Reloads
from pgwarden.agent.requests import RequestBox
from pgwarden.agent.watch import ClusterWatch
from pgwarden.agent.watchdog import Watchdog
from pgwarden.api.inspection import AgentInspection, Sources
from pgwarden.api.operations import AgentOperations
from pgwarden.api.server import ApiServer
from pgwarden.dcs.etcd import EtcdStore
from pgwarden.dcs.etcd_tls import tls_files as etcd_tls_files
from pgwarden.dcs.keys import ClusterKeys
from pgwarden.ha import actions as a
from pgwarden.ha.observation import Memory
from pgwarden.logs import apply as apply_logging
from pgwarden.model import NodeConfig
from pgwarden.postgres.controller import PostgresController
from pgwarden.postgres.diagnostics import postgres_facts
from pgwarden.postgres.parameter_check import check_parameters
from pgwarden.tls import ReloadableClientContext, calls_peers_over_tls, peer_context, peer_files

log = logging.getLogger("pgwarden.agent.loop")  # the name operators know the loop's lines by


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
        self.postgres = PostgresController(config.postgresql, config.name)
        self.jobs = JobRunner()
        self.errors = ErrorCounts()  # internal errors the loop and each thread survived
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
        self.callbacks = CallbackRunner(
            config.callbacks,
            config.cluster,
            config.callback_timeout,
            config.name,
            config.api.url,
            errors=self.errors,
        )
        self._stop = threading.Event()
        self.notifier = ServiceNotifier.from_environment()  # systemd Type=notify (deploy/)
        # The fence outlives this process: it gets every deadline the lease guard enforces.
        self.fence = FenceLink(
            config.postgresql.data_dir, config.name, self.lease.deadline, config_path, config.log_format
        )
        self.lease.listeners.append(self.fence.publish)
        self.cycle = Cycle(
            config,
            Ports(
                store=self.store,
                postgres=self.postgres,
                peers=self.peers,
                jobs=self.jobs,
                ask_failsafe=self.failsafe.ask,
                watchdog=self.watchdog,
                lease=self.lease,
                requests=self.requests,
                promises=self.promises,
                errors=self.errors,
                callbacks=self.callbacks,
                before=self._before_cycle,
                done=self.notifier.cycle_done,
            ),
        )
        self.cluster = self.cycle.cluster
        self.observer = self.cycle.observer
        self.executor = self.cycle.executor
        self.snapshots = self.cycle.snapshots
        self.decisions = self.cycle.decisions
        self.wal_clock = self.cycle.wal_clock
        operations = AgentOperations(
            self.cluster,
            self.snapshots,
            self.requests,
            promises=self.promises,
            check_parameters=lambda parameters: check_parameters(config.postgresql, parameters),
        )
        self.lease_keeper = LeaseKeeper(self.store, self.lease, errors=self.errors)
        inspection = AgentInspection(
            Sources(
                config=config,
                snapshots=self.snapshots,
                decisions=self.cycle.decisions,
                wal_clock=self.cycle.wal_clock,
                etcd_reads=self.observer.reads,
                etcd_renewals=self.lease_keeper.round_trips,
                postgres=lambda: postgres_facts(config.postgresql),
                peers=self.peers.documents,
                watchdog=self.watchdog,
            )
        )
        self.api = ApiServer(config.api, self.snapshots, operations, inspection=inspection)
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
        self.reloads = Reloads()  # what SIGHUP reloads (daemon/start.py installs the handler)
        self.reloads.add("the REST API's certificates", self.api.request_reload)
        self.node_reload = NodeConfigReload(load_config, self._wake.set) if load_config else None
        if self.node_reload is not None:
            self.reloads.add("the node config", self.node_reload.request)

    def _peer_tls_context(self) -> ReloadableClientContext | None:
        api = self.config.api
        return ReloadableClientContext(lambda: peer_context(api)) if calls_peers_over_tls(api) else None

    def _may_write(self) -> bool:
        local = self.snapshots.get().local
        return local.running and local.in_recovery is not True

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
        try:
            while not self._stop.is_set():
                after = self.cycle.step(memory)
                memory = after.memory
                if after.failed:
                    self._stop.wait(after.wait)  # a backoff: no wake-up shortens it
                else:
                    self._wake.wait(after.wait)
                    self._wake.clear()
        finally:
            # Only a stop request gets here (a signal; or KeyboardInterrupt / SystemExit, the
            # process exiting anyway): an internal error never does, the cycle retries it.
            self._shutdown()

    def _before_cycle(self) -> None:
        """First in every cycle (inside its guard): a reload SIGHUP asked for, and the fence."""
        self._reload_config()
        self.fence.ensure_running()  # a fence that died (OOM killer, an operator) is replaced
        reap_adopted()  # a subreaper waits for every orphan it inherits (agent/adoption.py)

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
        self.cycle.use_config(config)
        self.callbacks.use(config.callbacks, config.callback_timeout)

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
                role = self.cycle.role
                self.callbacks.fire(callback_events((a.StopPostgres(a.StopMode.FAST),), role, True)[0])
            if self.lease.lease_id is not None:
                self.cluster.release_leader(self.config.name)
                self.store.revoke(self.lease.lease_id)
                self.lease.forget()
            if self.cycle.member_lease.lease is not None:
                self.store.revoke(self.cycle.member_lease.lease)
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
