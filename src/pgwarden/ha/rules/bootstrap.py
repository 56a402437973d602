"""Creating a new cluster: race for the initialize key; the winner runs initdb and becomes leader."""

from __future__ import annotations

from pgwarden.ha.actions import (
    AcquireLeader,
    BeginBootstrap,
    CancelBootstrap,
    FinishBootstrap,
    RenewLeader,
    RunInitdb,
    StartPrimary,
)
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import ControlState, DataDir, JobKind, LocalState

_STANDBY_STATES = (ControlState.IN_ARCHIVE_RECOVERY, ControlState.SHUT_DOWN_IN_RECOVERY)


def _standby_data(local: LocalState) -> bool:
    """A data directory that runs, or last ran, as a standby."""
    if local.data_dir is not DataDir.VALID:
        return False
    return (
        local.in_recovery is True
        if local.running and local.probe_ok
        else local.control_state in _STANDBY_STATES
    )


def bootstrap(obs: Observation) -> Decision | None:
    """No cluster yet: race for the initialize key; the winner runs initdb, takes the key, starts."""
    view, local = obs.view, obs.local
    if view.initialized:
        return None
    if local.is_primary and local.system_id:
        # A primary already serving while etcd knows no cluster (etcd wiped, or the bootstrapper
        # died after starting): it must not write without the key, and no second cluster may be
        # initialised beside it. It takes the key and publishes its own system identifier.
        if view.leader is None:
            return act(Reason.BOOTSTRAP_ADOPTING_PRIMARY, AcquireLeader(), FinishBootstrap(local.system_id))
        if obs.leader_is_me:
            return act(Reason.BOOTSTRAP_FINISHING, RenewLeader(), FinishBootstrap(local.system_id))
    if _standby_data(local):
        # A standby's data (a node moved from Patroni before its primary, or etcd wiped) is a copy
        # of a primary that may be running, further ahead, elsewhere: starting it read-write as a
        # new cluster could fork the data. It waits until that primary publishes the cluster.
        return act(Reason.BOOTSTRAP_STANDBY_WAITING)
    if view.bootstrapping is not None and view.bootstrapping != obs.name:
        return act(Reason.BOOTSTRAP_BY_OTHER, member=view.bootstrapping)
    if view.bootstrapping is None:
        if obs.tags.nofailover:
            return act(Reason.NOT_BOOTSTRAPPING_NOFAILOVER)
        if local.data_dir is DataDir.INCOMPLETE:
            return act(Reason.NOT_BOOTSTRAPPING_DATA_INCOMPLETE)
        return act(Reason.BOOTSTRAP_RACING, BeginBootstrap())
    # This member won the race.
    job = local.job
    if local.data_dir is not DataDir.VALID:
        if job is not None and job.kind is JobKind.INITDB and job.ok is False:
            return act(Reason.BOOTSTRAP_INITDB_FAILED, CancelBootstrap(), error=job.error or "?")
        return act(Reason.BOOTSTRAP_INITDB, RunInitdb())
    if not obs.leader_is_me:
        # Nobody can hold the key of a cluster that is not initialized, so this cannot lose;
        # the key comes first all the same: PostgreSQL never runs read-write without it.
        return act(Reason.BOOTSTRAP_STARTING, AcquireLeader(), StartPrimary())
    if local.is_primary and local.system_id:
        return act(Reason.BOOTSTRAP_FINISHING, RenewLeader(), FinishBootstrap(local.system_id))
    if not local.running:
        return act(Reason.BOOTSTRAP_STARTING, RenewLeader(), StartPrimary())
    return act(Reason.BOOTSTRAP_WAITING_FOR_START, RenewLeader())
