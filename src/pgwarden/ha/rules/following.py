"""Rules for a member while another holds the leader key: clone, rewind, start and follow."""

from __future__ import annotations

from pgwarden.ha.actions import (
    Checkpoint,
    Clone,
    Demote,
    Follow,
    Rewind,
    StartStandby,
    StopMode,
    StopPostgres,
    WipeDataDir,
)
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.parameters import with_parameters
from pgwarden.ha.rules.slots import members_seen, relay_slots
from pgwarden.ha.rules.timeline import divergence, local_timeline
from pgwarden.ha.rules.topology import serving, slot_pending, slot_towards, upstream_for
from pgwarden.model import ClusterView, ControlState, DataDir, JobKind, Role


def clone_source(view: ClusterView, name: str) -> str | None:
    """A running member tagged ``clonefrom`` spares the primary the base backup; else the leader."""
    for member in view.members:
        if member.name != name and member.tags.clonefrom and serving(member):
            return member.name
    leader = view.leader_member
    return leader.name if serving(leader) and leader is not None else None


def rogue_primary(obs: Observation) -> Decision | None:
    """Another holds the key, yet this PostgreSQL accepts writes: stop it before anything else."""
    leader = obs.view.leader
    if leader is None or obs.leader_is_me:
        return None
    if obs.local.is_primary or silent_primary(obs):
        return act(Reason.ROGUE_PRIMARY_DEMOTING, Demote(StopMode.IMMEDIATE), leader=leader.name)
    return None


def silent_primary(obs: Observation) -> bool:
    """Running, not answering the probe for a whole ttl, and pg_control says it ran as a primary:
    it may be taking writes (out of connections, say). A standby starting from a fresh clone also
    shows "in production" for a moment, which is why one silent cycle is not enough."""
    local, since = obs.local, obs.memory.probe_failing_since
    return (
        local.running
        and not local.probe_ok
        and local.control_state is ControlState.IN_PRODUCTION
        and since is not None
        and obs.now - since >= obs.view.config.ttl
    )


def someone_else_leads(obs: Observation) -> Decision | None:
    """Another member leads: clone, rewind a forked timeline, start as standby, follow the right upstream."""
    view, local = obs.view, obs.local
    if view.leader is None or obs.leader_is_me:
        return None
    leader = view.leader.name
    if local.data_dir is not DataDir.VALID:
        return _clone(obs)
    leader_member = view.leader_member
    # The leader's timeline counts once it announces itself as a running primary: between taking
    # the key and promoting, its record still shows the old one, and a member already streaming
    # the new timeline would read as "newer than the leader" and be rewound for nothing.
    announced = serving(leader_member) and leader_member is not None and leader_member.role is Role.PRIMARY
    if not announced and not local.running:
        return act(Reason.WAITING_FOR_LEADER, leader=leader)
    leader_tl = leader_member.timeline if announced and leader_member is not None else None
    why = divergence(local, leader_tl, view.history)
    if why is not None:
        then = _rewind(obs, leader, leader_tl, why)
        if local.running and then.actions:
            # Rewind in the same decision: once stopped, a standby's pg_control no longer shows
            # how far its WAL went, so the next cycle would start it again as if nothing forked.
            return act(
                Reason.STOPPING_DIVERGED_STANDBY,
                StopPostgres(StopMode.FAST),
                *then.actions,
                timeline=local_timeline(local),
                why=why,
            )
        return then
    wanted = upstream_for(view, obs.name, obs.tags.replicatefrom)
    if view.config.pause:
        return with_parameters(obs, act(Reason.FOLLOWER_PAUSED, leader=leader))
    if not local.running:
        return act(
            Reason.STARTING_AS_STANDBY, StartStandby(wanted, slot_towards(obs, wanted)), upstream=wanted
        )
    if not local.probe_ok:
        return act(Reason.STANDBY_WAITING_FOR_POSTGRES)
    waiting = slot_pending(obs, wanted)
    if local.configured_upstream != wanted and waiting is None:
        return act(
            Reason.FOLLOWING_NEW_UPSTREAM,
            Follow(wanted, slot_towards(obs, wanted)),
            upstream=wanted,
            previous=local.configured_upstream,
        )
    upstream = local.configured_upstream  # ``wanted``, unless its slot is pending there
    recorded = local.control_timeline
    if (
        local.streaming_from
        and recorded is not None
        and local.timeline is not None
        and recorded < local.timeline
    ):
        # pg_control still names the old timeline (no restartpoint since the switch): after a
        # restart this standby would read as diverged. A restartpoint records the new one.
        return act(
            Reason.STANDBY_RECORDING_TIMELINE, Checkpoint(), upstream=upstream, timeline=local.timeline
        )
    # A relay keeps the slots of the members cascading from it (rules/slots.py).
    slots = relay_slots(obs, members_seen(obs))
    if waiting is not None:
        steady = act(
            Reason.STANDBY_WAITING_FOR_RELAY_SLOT, *slots, upstream=upstream, target=wanted, why=waiting
        )
    elif obs.tags.replicatefrom not in (None, "", obs.name, upstream):
        steady = act(
            Reason.STANDBY_REPLICATEFROM_UNAVAILABLE, *slots, upstream=upstream, relay=obs.tags.replicatefrom
        )
    else:
        steady = act(Reason.STANDBY_HEALTHY, *slots, upstream=upstream)
    return with_parameters(obs, steady)


def _clone(obs: Observation) -> Decision:
    source = clone_source(obs.view, obs.name)
    if source is None:
        leader = obs.view.leader.name if obs.view.leader else "the leader"
        return act(Reason.CLONE_SOURCE_NOT_READY, source=leader)
    if obs.local.data_dir is DataDir.INCOMPLETE:
        # No pg_control means no database to lose: the leftovers of an interrupted clone.
        return act(Reason.INCOMPLETE_DATA_RECLONING, WipeDataDir(), Clone(source), source=source)
    return act(Reason.CLONING, Clone(source), source=source)


def _rewind(obs: Observation, leader: str, leader_tl: int | None, why: str) -> Decision:
    config, job = obs.view.config, obs.local.job
    rewind_failed = job is not None and job.kind is JobKind.REWIND and job.ok is False
    if config.use_pg_rewind and not rewind_failed:
        return act(
            Reason.REWINDING,
            Rewind(leader),
            timeline=local_timeline(obs.local),
            leader_timeline=leader_tl,
            source=leader,
        )
    unusable = "pg_rewind failed" if rewind_failed else "use_pg_rewind is off"
    if rewind_failed and config.use_pg_rewind and not config.remove_data_directory_on_diverged_timelines:
        # Most failures pass (the source briefly unreachable, the leader changing): job_backoff
        # spaces the attempts, and the reason shows the error until an operator steps in.
        error = job.error if job is not None and job.error else "?"
        return act(Reason.REWIND_RETRYING, Rewind(leader), error=error, source=leader)
    if config.remove_data_directory_on_diverged_timelines:
        return act(
            Reason.REWIND_DISABLED_RECLONING, WipeDataDir(), Clone(leader), why=unusable, source=leader
        )
    return act(Reason.REWIND_IMPOSSIBLE_WAITING, why=f"{unusable}; {why}")
