"""Rules for the member whose name is in the leader key: renew, promote, restart, or let go."""

from __future__ import annotations

from pgwarden.ha.actions import (
    AppendHistory,
    Demote,
    Promote,
    ReleaseLeader,
    RenewLeader,
    RewriteLeader,
    StartPrimary,
    StopMode,
)
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.duties import healthy_primary
from pgwarden.ha.rules.following import silent_primary
from pgwarden.ha.rules.parameters import with_parameters
from pgwarden.model import StoreKey


def lease_expired(obs: Observation) -> Decision | None:
    """Safety rule 1: past the lease deadline, stop writes before etcd can hand the key away.

    The next cycle re-attaches the key to a new lease if it still carries our name, so a loop
    that was merely slow costs a restart, never a second writer. Promises given to a failsafe
    leader hold off every rival as the lease does, so they count as long as they last.
    """
    if not obs.leader_is_me or obs.lease_deadline is None or obs.may_write:
        return None
    if obs.local.running and not obs.local.in_recovery and not obs.view.config.pause:
        return act(Reason.LEADER_LEASE_EXPIRED_DEMOTING, Demote(StopMode.IMMEDIATE))
    return None


def watchdog_required(obs: Observation) -> Decision | None:
    """watchdog.mode is required and the device cannot be used: hand the key back (a fast stop
    first when PostgreSQL runs writable), whatever else this leader would do."""
    if obs.watchdog_ready or not obs.leader_is_me:
        return None
    if obs.local.running and not obs.local.in_recovery:
        return act(Reason.WATCHDOG_REQUIRED_RELEASING, Demote(StopMode.FAST), ReleaseLeader())
    return act(Reason.WATCHDOG_REQUIRED_RELEASING, ReleaseLeader())


def leader_key_unreadable(obs: Observation) -> Decision | None:
    """The leader key holds junk: its holder rewrites it; for everyone else someone else holds it.

    Never "no leader": a standby's create would fail anyway, but a holder reading it so would stop
    renewing and demote. The holder is the member with a valid leader lease whose name the key
    held when last readable: nobody can have created or taken the key since (safety rule 2), so
    the junk was written over its own value.
    """
    leader = obs.view.leader
    if leader is None or leader.readable:
        return None
    why = obs.view.unreadable.get(StoreKey.LEADER, "not a member name")
    if obs.holds_lease and obs.memory.leader_seen == obs.name:
        return act(Reason.LEADER_KEY_REWRITING, RenewLeader(), RewriteLeader(leader.revision), why=why)
    if obs.local.is_primary or silent_primary(obs):
        # Not provably mine (an agent restarted since it last read the key cannot tell): as for a
        # key naming another member, a writer without the key stops (safety rule 1).
        return act(Reason.LEADER_KEY_UNREADABLE_DEMOTING, Demote(StopMode.IMMEDIATE), why=why)
    return act(Reason.LEADER_KEY_UNREADABLE_WAITING, why=why)


def leader_is_me(obs: Observation) -> Decision | None:
    """I hold the leader key: renew it; promote, restart, or release it after primary_start_timeout."""
    if not obs.leader_is_me:
        return None
    local, config = obs.local, obs.view.config
    renew = RenewLeader()
    if not obs.holds_lease and local.is_primary:
        return healthy_primary(obs, Reason.LEADER_ADOPTING)
    if config.pause:
        # As Patroni: no watchdog while paused, so that an operator may stop or restart things.
        return with_parameters(obs, act(Reason.LEADER_PAUSED, RenewLeader(watchdog=False)))
    if local.is_primary:
        return with_parameters(obs, healthy_primary(obs, Reason.LEADER_HEALTHY))
    if local.is_standby:
        # The key is ours (a promotion interrupted, or an agent restarted mid-way): finish it.
        return act(Reason.LEADER_PROMOTING, renew, Promote(), AppendHistory("promoted: held the leader key"))
    since = obs.memory.unhealthy_primary_since
    down = 0.0 if since is None else obs.now - since
    if down >= config.primary_start_timeout:
        return act(
            Reason.PRIMARY_START_TIMEOUT_RELEASING,
            Demote(StopMode.IMMEDIATE),
            ReleaseLeader(),
            down=down,
            timeout=config.primary_start_timeout,
        )
    if not local.running:
        return act(Reason.PRIMARY_STARTING, renew, StartPrimary(), down=down)
    return act(Reason.PRIMARY_WAITING, renew, down=down)
