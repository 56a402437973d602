"""Carries out a decision's actions in order, one small handler per action; it decides nothing.

It stops at the first action that fails (an exception, or a compare-and-set that lost) and
reports how far it got; the loop then observes again at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pgwarden.agent.failsafe import PromiseBox
from pgwarden.agent.lease import LeaderLease, monotonic
from pgwarden.agent.ports import Jobs, Postgres
from pgwarden.agent.watchdog import Watchdog
from pgwarden.dcs.cluster_store import ClusterStore, HistoryUnreadable
from pgwarden.dcs.store import LeaseExpired, Store, StoreError
from pgwarden.ha import actions as a
from pgwarden.ha.observation import Observation
from pgwarden.ha.rules.datadir import removal_refusal
from pgwarden.ha.rules.parameters import cluster_parameters
from pgwarden.model import (
    FAILSAFE,
    HistoryEntry,
    JobKind,
    LeaderStatus,
    Lsn,
    NodeConfig,
)
from pgwarden.postgres.conninfo import StandbyUpstream
from pgwarden.postgres.controller import ParamChange

log = logging.getLogger(__name__)


class ActionFailed(Exception):
    """An action could not be carried out; the message says which and why."""


# A round of POST /failsafe: (name, REST API URL) of each member and the promise length in
# seconds in; the members that did not promise, and why, out.
AskFailsafe = Callable[[Sequence[tuple[str, str]], float], Mapping[str, str]]


def no_failsafe(members: Sequence[tuple[str, str]], seconds: float) -> Mapping[str, str]:
    return dict.fromkeys((name for name, _ in members), "this agent cannot send failsafe requests")


@dataclass(frozen=True)
class Outcome:
    failed: str | None = None  # which action stopped the decision, and why
    executed: tuple[a.Action, ...] = ()  # the actions carried out, in order (the callbacks' input)


class Executor:
    def __init__(
        self,
        config: NodeConfig,
        store: Store,
        cluster: ClusterStore,
        postgres: Postgres,
        jobs: Jobs,
        lease: LeaderLease,
        member_lease: Callable[[], int],
        clock: Callable[[], float] = monotonic,
        forget_scheduled_restart: Callable[[float], object] = lambda at: None,
        watchdog: Watchdog | None = None,
        ask_failsafe: AskFailsafe = no_failsafe,
        promises: PromiseBox | None = None,
        known_history: Callable[[], tuple[HistoryEntry, ...] | None] = lambda: None,
    ) -> None:
        self._known_history = known_history  # the last valid history read (for a junk history key)
        self._history_refused: str | None = None
        self._clock = clock
        self._watchdog = watchdog
        self._ask_failsafe = ask_failsafe
        self._promises = promises or PromiseBox(clock)
        self._forget_scheduled_restart = forget_scheduled_restart
        self._config = config
        self._store = store
        self._cluster = cluster
        self._pg = postgres
        self._jobs = jobs
        self._lease = lease
        self._member_lease = member_lease
        self._handlers: dict[type[Any], Callable[[Any, Observation], bool | None]] = {
            a.AcquireLeader: self._acquire,
            a.RenewLeader: self._renew,
            a.RewriteLeader: self._rewrite_leader,
            a.ReleaseLeader: self._release,
            a.RenewFailsafe: self._renew_failsafe,
            a.PublishFailsafe: self._publish_failsafe,
            a.RecordFailsafe: self._record_failsafe,
            a.BeginBootstrap: self._begin_bootstrap,
            a.RunInitdb: self._initdb,
            a.FinishBootstrap: self._finish_bootstrap,
            a.CancelBootstrap: self._cancel_bootstrap,
            a.StartPrimary: self._start_primary,
            a.StartStandby: self._start_standby,
            a.Follow: self._follow,
            a.Promote: self._promote,
            a.Demote: self._demote,
            a.StopPostgres: self._stop,
            a.Checkpoint: self._checkpoint,
            a.ReloadPostgres: self._reload,
            a.ApplyParameters: self._apply_parameters,
            a.ClearScheduledRestart: self._clear_scheduled_restart,
            a.ClearSwitchover: self._clear_switchover,
            a.SetSyncStandbys: self._set_sync_standbys,
            a.PublishSync: self._publish_sync,
            a.AppendHistory: self._append_history,
            a.PublishStatus: self._publish_status,
            a.EnsureSlots: self._ensure_slots,
            a.Clone: self._clone,
            a.Rewind: self._rewind,
            a.WipeDataDir: self._wipe,
            a.AdoptDataDir: self._adopt,
        }
        self._adopt_failed: str | None = None

    def run(self, actions: tuple[a.Action, ...], obs: Observation) -> Outcome:
        for done, action in enumerate(actions):
            try:
                ok = self._handlers[type(action)](action, obs)
            except Exception as exc:  # every failure stops the decision here, whatever raised it
                log.warning("%s failed: %s", type(action).__name__, exc)
                return Outcome(f"{type(action).__name__}: {exc}", actions[:done])
            if ok is False:
                log.info("%s refused (compare-and-set lost)", type(action).__name__)
                return Outcome(f"{type(action).__name__}: refused", actions[:done])
        return Outcome(executed=actions)

    # --- leader key -------------------------------------------------------------------------
    def _acquire(self, _: a.AcquireLeader, obs: Observation) -> bool:
        ttl = obs.view.config.ttl
        # A promise the API gave since this cycle's observation binds us as much as one it saw.
        held = self._promises.begin_race(ttl)
        if held is not None:
            log.info("not racing for the leader key: %s", held)
            return False
        if not self._key_on_new_lease(ttl, self._cluster.acquire_leader):
            self._promises.end_race()
            return False
        self._keep_watchdog(obs)  # before any promotion: a required one that fails stops here
        log.info("acquired the leader key")
        return True

    def _renew(self, action: a.RenewLeader, obs: Observation) -> bool:
        config = obs.view.config
        ttl = config.ttl
        sent = self._clock()
        lease = self._lease.lease_id
        if lease is not None:
            try:
                # The key lives exactly as long as this lease: renewing it is one request. That
                # the key still carries our name, this cycle's linearizable read just showed.
                sent = self._store.renew_lease(lease, until=sent + config.retry_timeout)
            except LeaseExpired:
                self._lease.lease_lost()
                return False
            except StoreError as exc:
                if action.failsafe is None:
                    raise
                # etcd went away within this cycle: ask for the promises now rather than after
                # the rest of the cycle's etcd requests have timed out (docs/timing.md).
                self._renew_failsafe(a.RenewFailsafe(action.failsafe), obs)
                raise ActionFailed(f"{exc}; every member promised instead (failsafe mode)") from None
            self._lease.renewed(lease, sent, ttl)  # which keeps the TTL the lease was granted with
            self._watchdog_after_renewal(action, obs)
            return True
        # Adopting a key that carries our name (agent restarted, or lease lost while the key
        # survived): a fresh lease, then re-attach the key only if it is still ours.
        if not self._key_on_new_lease(ttl, self._cluster.confirm_leader):
            return False
        self._watchdog_after_renewal(action, obs)
        log.info("took over the leader key carrying my name with a new lease")
        return True

    def _key_on_new_lease(self, ttl: float, write: Callable[[str, int], bool]) -> bool:
        """Grant a fresh lease and attach the leader key to it with ``write`` (a compare-and-set
        with my name): won, the lease is the one to keep, counted from before the grant was sent
        (safety rule 1); lost, it is revoked at once, leaving nothing behind."""
        sent = self._clock()
        lease = self._store.grant_lease(ttl)
        if not write(self._config.name, lease):
            self._store.revoke(lease)
            return False
        self._lease.renewed(lease, sent, ttl)
        return True

    def _rewrite_leader(self, action: a.RewriteLeader, obs: Observation) -> bool:
        lease = self._lease.lease_id
        if lease is None:
            raise ActionFailed("no leader lease to attach the rewritten leader key to")
        if not self._cluster.rewrite_leader(self._config.name, lease, action.revision):
            return False
        log.warning("rewrote the unreadable leader key with my name, on my lease")
        return True

    def _release(self, _: a.ReleaseLeader, obs: Observation) -> bool:
        self._cluster.release_leader(self._config.name)
        if self._lease.lease_id is not None:
            self._store.revoke(self._lease.lease_id)
        self._lease.forget()
        self._disarm_watchdog()
        return True

    def _watchdog_after_renewal(self, action: a.RenewLeader, obs: Observation) -> None:
        if action.watchdog:
            self._keep_watchdog(obs)
        else:
            self._disarm_watchdog()

    def _keep_watchdog(self, obs: Observation) -> None:
        if self._watchdog is not None:
            self._watchdog.keep(obs.view.config.ttl, obs.view.config.loop_wait)

    def _disarm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.disarm()

    # --- failsafe mode -----------------------------------------------------------------------
    def _renew_failsafe(self, action: a.RenewFailsafe, obs: Observation) -> None:
        ttl = obs.view.config.ttl
        sent = self._clock()
        refused = self._ask_failsafe(action.members, ttl)
        if refused:
            raise ActionFailed(
                "failsafe: not every member promised: "
                + "; ".join(f"{name}: {why}" for name, why in sorted(refused.items()))
            )
        self._lease.failsafe_confirmed(sent, ttl)
        self._keep_watchdog(obs)  # an armed watchdog caps the deadline: keep it with the extension

    def _publish_failsafe(self, action: a.PublishFailsafe, obs: Observation) -> None:
        topology = dict(action.topology) if action.topology is not None else None
        self._cluster.publish_failsafe(topology)
        log.info("failsafe topology: %s", sorted(topology) if topology is not None else "removed")

    def _record_failsafe(self, action: a.RecordFailsafe, obs: Observation) -> None:
        log.warning("failsafe: %s", action.reason)
        local = obs.local
        self._cluster.append_history(
            HistoryEntry(
                timeline=local.timeline or 0,
                switch_lsn=local.write_lsn or Lsn(0),
                reason=action.reason,
                timestamp=action.timestamp,
                new_leader=self._config.name,
                event=FAILSAFE,
            )
        )

    # --- bootstrap --------------------------------------------------------------------------
    def _begin_bootstrap(self, _: a.BeginBootstrap, obs: Observation) -> bool:
        return self._cluster.begin_initialize(self._member_lease())

    def _initdb(self, _: a.RunInitdb, obs: Observation) -> None:
        self._jobs.start(JobKind.INITDB, lambda progress: self._pg.initdb())

    def _finish_bootstrap(self, action: a.FinishBootstrap, obs: Observation) -> None:
        self._pg.create_replication_user()
        self._cluster.write_config(self._config.bootstrap, expected_revision=0)
        self._cluster.finish_initialize(action.system_id)

    def _cancel_bootstrap(self, _: a.CancelBootstrap, obs: Observation) -> None:
        self._cluster.cancel_initialize()

    # --- PostgreSQL life cycle ----------------------------------------------------------------
    def _start_primary(self, _: a.StartPrimary, obs: Observation) -> None:
        self._pg.configure_primary()
        self._apply_cluster_parameters(obs)
        self._pg.start(wait=False)

    def _start_standby(self, action: a.StartStandby, obs: Observation) -> None:
        self._configure_standby(action.upstream, action.slot, obs)
        self._apply_cluster_parameters(obs)
        self._pg.start(wait=False)

    def _apply_cluster_parameters(self, obs: Observation) -> ParamChange:
        """The cluster's parameters from etcd, written at every start and on every live edit."""
        return self._pg.update_parameters(cluster_parameters(obs.view.config))

    def _follow(self, action: a.Follow, obs: Observation) -> None:
        self._configure_standby(action.upstream, action.slot, obs)
        self._pg.reload()

    def _configure_standby(self, upstream: str | None, slot: str | None, obs: Observation) -> None:
        source = self._upstream(upstream, obs) if upstream else None
        self._pg.configure_standby(source, slot if source is not None else None)

    def _promote(self, _: a.Promote, obs: Observation) -> None:
        # The checkpoint that records the new timeline comes in the next cycle (the leader rules
        # ask for it), so the new primary is announced without waiting on it.
        self._pg.promote(checkpoint=False)

    def _demote(self, action: a.Demote, obs: Observation) -> None:
        self._pg.stop(action.mode.value)
        self._pg.configure_standby(None, None)
        self._disarm_watchdog()  # no writes to protect any more

    def _stop(self, action: a.StopPostgres, obs: Observation) -> None:
        self._pg.stop(action.mode.value)

    def _checkpoint(self, _: a.Checkpoint, obs: Observation) -> None:
        # Bounded: a checkpoint that drags on only makes the shutdown checkpoint longer, so the
        # stop that follows goes ahead rather than letting the lease run down.
        try:
            self._pg.checkpoint(timeout=min(5.0, obs.view.config.ttl / 2))
        except Exception as exc:
            log.warning("checkpoint before stopping failed (%s); stopping anyway", exc)

    def _reload(self, _: a.ReloadPostgres, obs: Observation) -> None:
        self._apply_cluster_parameters(obs)
        self._pg.reload()

    def _apply_parameters(self, _: a.ApplyParameters, obs: Observation) -> None:
        change = self._apply_cluster_parameters(obs)
        if change.changed:
            # Read only at start; pending only where the running value differs (an adopted server
            # already runs with them): pending_restart in the status says which really wait.
            waiting = f"; read only at a restart: {', '.join(sorted(change.restart_required))}"
            log.info(
                "cluster parameters applied: %s%s",
                ", ".join(sorted(change.changed)),
                waiting if change.restart_required else "",
            )

    def _clear_scheduled_restart(self, action: a.ClearScheduledRestart, obs: Observation) -> None:
        self._forget_scheduled_restart(action.at)

    def _clear_switchover(self, action: a.ClearSwitchover, obs: Observation) -> None:
        if action.outcome is not None:
            log.warning("switchover abandoned: %s", action.outcome)
        self._cluster.clear_switchover(action.outcome, obs.wall or None)

    def _set_sync_standbys(self, action: a.SetSyncStandbys, obs: Observation) -> None:
        log.info("synchronous_standby_names = '%s'", action.value)
        self._pg.set_synchronous_standby_names(action.value)

    def _publish_sync(self, action: a.PublishSync, obs: Observation) -> None:
        state = action.state
        self._cluster.publish_sync(state)
        log.info("synchronous claim: %s of %s", state.quorum, sorted(state.members))

    # --- what the leader publishes --------------------------------------------------------------
    def _append_history(self, action: a.AppendHistory, obs: Observation) -> None:
        if action.at is not None:
            log.warning("%s: %s", action.event, action.reason)
            timeline, switch = action.at
        else:  # a promotion: its timeline and switch point exist only now it is carried out
            timeline = self._pg.current_timeline()
            entries = self._pg.timeline_history(timeline)
            switch = entries[-1][1] if entries else Lsn(0)
        self._append(
            HistoryEntry(
                timeline=timeline,
                switch_lsn=switch,
                reason=action.reason,
                timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
                new_leader=self._config.name,
                event=action.event,
            )
        )

    def _append(self, entry: HistoryEntry) -> None:
        """Append to the history; a junk history never read valid is left alone (said once), and
        the entry is not lost: the leader rules ask again while its timeline has none."""
        try:
            self._cluster.append_history(entry, self._known_history())
        except HistoryUnreadable as exc:
            if str(exc) != self._history_refused:
                log.error("%s", exc)
            self._history_refused = str(exc)
            return
        self._history_refused = None

    def _publish_status(self, action: a.PublishStatus, obs: Observation) -> None:
        local = obs.local
        if local.write_lsn is None or local.timeline is None:
            return
        status = LeaderStatus(self._config.name, local.timeline, local.write_lsn, members=action.members)
        if obs.view.status != status:  # an idle primary's position does not move: nothing to write
            self._cluster.publish_status(status)

    def _ensure_slots(self, action: a.EnsureSlots, obs: Observation) -> None:
        for name in sorted(action.create):
            self._pg.create_slot(name)
        for name in sorted(action.drop):
            log.info("dropping slot %s: its member is gone or streams from another node", name)
            self._pg.drop_slot(name)
        for name, position in action.advance:
            # The slot of a member streaming from a relay: held at the WAL it would ask us for.
            self._pg.advance_slot(name, position)

    # --- background jobs --------------------------------------------------------------------
    def _clone(self, action: a.Clone, obs: Observation) -> None:
        source = self._upstream(action.source, obs)
        self._jobs.start(JobKind.CLONE, lambda progress: self._pg.clone(source, None, progress))

    def _rewind(self, action: a.Rewind, obs: Observation) -> None:
        source = self._upstream(action.source, obs)
        self._jobs.start(JobKind.REWIND, lambda progress: self._pg.rewind(source, progress=progress))

    def _wipe(self, _: a.WipeDataDir, obs: Observation) -> None:
        # The last line of defence: the decision's guard once more, on a fresh look at the
        # directory (the stop before it, or anyone's hand, may have changed what is there).
        refusal = removal_refusal(self._pg.probe(), obs.view.initialize)
        if refusal is not None:
            raise ActionFailed(f"not removing anything: {refusal}")
        self._pg.wipe()

    def _adopt(self, _: a.AdoptDataDir, obs: Observation) -> None:
        # Only a marker file: when it cannot be written (a read-only parent directory, say) the
        # directory is still ours by its system identifier, so nothing stops; said once.
        try:
            self._pg.adopt()
        except Exception as exc:
            if str(exc) != self._adopt_failed:
                log.warning("cannot mark the data directory as pgwarden's: %s", exc)
            self._adopt_failed = str(exc)
            return
        log.info("data directory of this cluster adopted: pgwarden's marker written beside it")

    # --- lookups ------------------------------------------------------------------------------
    @staticmethod
    def _upstream(name: str, obs: Observation) -> StandbyUpstream:
        member = obs.view.member(name)
        if member is None:
            raise ActionFailed(f"member {name} is not in the cluster view")
        return StandbyUpstream(name=member.name, host=member.host, port=member.port)
