"""What several rules share; none of it is a rule (none is in ``RULES``).

A rule that needs part of another's outcome calls one of these helpers rather than the other
rule, so ``RULES`` read top to bottom is the whole precedence: a healthy leader's duties (the
leader rules, and a switchover waiting for its candidate to stream), a restart in the current role
(an operator's request, a scheduled restart), and what keeps a node busy.
"""

from __future__ import annotations

from pgwarden.ha import sync
from pgwarden.ha.actions import (
    Action,
    AppendHistory,
    Checkpoint,
    FinishBootstrap,
    PublishStatus,
    RenewLeader,
    StartPrimary,
    StartStandby,
    StopMode,
    StopPostgres,
)
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules import failsafe
from pgwarden.ha.rules.slots import leader_slots, members_seen
from pgwarden.ha.rules.topology import slot_pending, slot_towards, upstream_for
from pgwarden.model import StoreKey


def healthy_primary(obs: Observation, reason: Reason, **detail: object) -> Decision:
    """The steady duties of a leader whose primary serves: renew, publish, sync steps, slots."""
    actions: list[Action] = [failsafe.renewal(obs)]
    seen = members_seen(obs)
    timeline, recorded = obs.local.timeline, obs.local.control_timeline
    if timeline is not None and recorded is not None and recorded < timeline:
        # Just promoted: until a checkpoint, pg_control names the old timeline, and a former
        # primary's pg_rewind (which reads it from here) would find nothing to rewind.
        actions.append(Checkpoint())
    actions.append(PublishStatus(frozenset(seen) | {obs.name}))
    actions.extend(failsafe.publish_topology(obs))
    system_id = obs.local.system_id
    if system_id and (StoreKey.INITIALIZE in obs.view.unreadable or obs.view.initialize != system_id):
        # Junk in the initialize key (or another identifier): this primary's is the cluster's.
        actions.append(FinishBootstrap(system_id))
    actions.extend(sync.step(obs, sync.plan_of(obs)))
    if (
        timeline is not None
        and timeline > 1
        and all(e.timeline != timeline for e in obs.view.history if e.promotion)
    ):
        # The append after our promotion failed (the executor stops at the first failed action):
        # without the fork point, a standby holding WAL past it could never be told to rewind.
        actions.append(AppendHistory("promoted: history entry recorded late"))
    actions.append(leader_slots(obs, seen))
    actions.extend(failsafe.record(obs))
    return act(reason, *actions, **detail)


def busy(obs: Observation) -> str | None:
    """Why no other work can start on this node now: a background job runs, or None."""
    job = obs.local.job
    return f"a {job.kind.value} is running on this node" if job is not None and job.running else None


def restart_plan(obs: Observation) -> Decision | str:
    """Restart the local PostgreSQL in its current role now, or why that cannot be done."""
    local = obs.local
    running = busy(obs)
    if running:
        return running
    if not local.running:
        return "PostgreSQL is not running, so there is nothing to restart"
    if obs.leader_is_me:
        if not obs.holds_lease:
            return "the leader key is being re-attached; try again in a moment"
        # The key stays ours while PostgreSQL restarts (the leader rules wait primary_start_timeout).
        actions: tuple[Action, ...] = (RenewLeader(), StopPostgres(StopMode.FAST), StartPrimary())
        return act(Reason.RESTARTING, *actions, role="primary")
    if local.in_recovery is False:
        return "PostgreSQL runs read-write without the leader key; it is being demoted"
    leader = obs.view.leader
    upstream = upstream_for(obs.view, obs.name, obs.tags.replicatefrom) if leader is not None else None
    if slot_pending(obs, upstream) is not None:
        upstream = local.configured_upstream  # back to where it streams: the relay lacks its slot
    stop_start = (StopPostgres(StopMode.FAST), StartStandby(upstream, slot_towards(obs, upstream)))
    return act(Reason.RESTARTING, *stop_start, role="standby")
