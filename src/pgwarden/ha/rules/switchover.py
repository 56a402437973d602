"""Planned switchover (safety rule 5): the leader's half, and which intent the others must respect.

The leader checkpoints while writes still run, stops cleanly (the shutdown checkpoint is the last
WAL record, and a fast shutdown lets the WAL senders ship it), then waits until the candidate has
*replayed* past that checkpoint before it releases the key. Only then may the candidate take the
key and promote: every write the old primary acknowledged is in the candidate's WAL. Anything
unexpected on the way (the candidate stops, the deadline passes) abandons the switchover and the
old primary starts again as it was, still holding the key.
"""

from __future__ import annotations

from pgwarden.ha.actions import (
    Action,
    Checkpoint,
    ClearSwitchover,
    ReleaseLeader,
    RenewLeader,
    StartPrimary,
    StopMode,
    StopPostgres,
)
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.duties import healthy_primary
from pgwarden.ha.rules.standing import Standing
from pgwarden.ha.sync import outside_set
from pgwarden.model import (
    ClusterView,
    ControlState,
    Member,
    PgState,
    Role,
    StoreKey,
    SwitchoverIntent,
)


def active_intent(obs: Observation) -> SwitchoverIntent | None:
    """The switchover intent members must respect now: present, naming a candidate, not expired."""
    intent = obs.view.switchover
    if intent is None or intent.candidate is None or not intent.active(obs.wall):
        return None
    return intent


def intent_kind(intent: SwitchoverIntent) -> str:
    return "failover" if intent.failover else "switchover"


def switchover(obs: Observation) -> Decision | None:
    """I lead and an intent is due: stop cleanly, wait for the candidate, hand over the key."""
    intent = obs.view.switchover
    if not obs.leader_is_me or not obs.holds_lease:
        return None
    junk = obs.view.unreadable.get(StoreKey.SWITCHOVER)
    if junk is not None:
        # An intent nobody can read is no intent, but its key would refuse the next real one.
        return _abandon(obs, f"its value in etcd is unreadable ({junk})")
    if intent is None:
        return None
    if not intent.active(obs.wall):
        return _abandon(obs, "its deadline passed before it completed")
    if intent.leader is not None and intent.leader != obs.name:
        return _abandon(obs, f"it names {intent.leader} as the leader, but I am")
    if not intent.due(obs.wall):
        return None
    candidate = intent.candidate
    if candidate is None or candidate == obs.name:
        return _abandon(obs, "it names no other member as candidate")
    local = obs.local
    unfit = unfit_candidate(obs.view.member(candidate), local.timeline or local.control_timeline)
    peer = obs.peers.get(candidate)
    if unfit is None and peer is not None and peer.replay_paused:
        unfit = f"candidate {candidate} has its WAL replay paused (pg_wal_replay_resume() first)"
    if local.is_primary:
        if unfit:
            return _abandon(obs, unfit)
        if candidate not in local.replication:
            # Stopping now would leave the candidate nothing to catch up from (its WAL receiver
            # reconnects only every few seconds after a restart): wait for it, until the deadline.
            return healthy_primary(obs, Reason.SWITCHOVER_WAITING_FOR_STREAMING, candidate=candidate)
        return act(
            Reason.SWITCHOVER_STOPPING,
            RenewLeader(),
            Checkpoint(),
            StopPostgres(StopMode.FAST),
            candidate=candidate,
        )
    if local.running:
        return None  # starting, or not answering: the leader rules deal with that first
    if local.control_state is not ControlState.SHUT_DOWN or local.control_lsn is None:
        return _abandon(obs, "PostgreSQL stopped without a clean shutdown checkpoint")
    checkpoint = local.control_lsn
    replayed = peer.replayed if peer is not None and peer.reachable else None
    if replayed is not None and replayed > checkpoint and peer is not None and peer.in_recovery:
        # Replay ends past the checkpoint's first byte only once the whole record is replayed:
        # the candidate holds all the WAL this primary ever wrote.
        handover = ReleaseLeader()
        return act(Reason.SWITCHOVER_HANDING_OVER, handover, candidate=candidate, checkpoint=checkpoint)
    if unfit:
        return _abandon(obs, unfit)
    return act(
        Reason.SWITCHOVER_WAITING_FOR_CANDIDATE,
        RenewLeader(),
        candidate=candidate,
        checkpoint=checkpoint,
        replayed=replayed if replayed is not None else "unknown",
    )


def unfit_candidate(member: Member | None, timeline: int | None) -> str | None:
    """Why ``member`` cannot take over from a primary on ``timeline``, or None when it can."""
    if member is None:
        return "the candidate is not a member of the cluster"
    if member.role is not Role.REPLICA or member.state is not PgState.RUNNING:
        return f"candidate {member.name} is not a running standby ({member.role.value}, {member.state.value})"
    if member.tags.nofailover:
        return f"candidate {member.name} is tagged nofailover"
    if timeline is not None and member.timeline is not None and member.timeline != timeline:
        return f"candidate {member.name} is on timeline {member.timeline}, the primary on {timeline}"
    return None


def _abandon(obs: Observation, why: str) -> Decision:
    """Drop the intent, saying why; a primary stopped for it starts again as primary."""
    restart: tuple[Action, ...] = () if obs.local.running else (StartPrimary(),)
    return act(Reason.SWITCHOVER_ABANDONED, RenewLeader(), ClearSwitchover(why), *restart, why=why)


def choose_candidate(view: ClusterView, candidate: str | None, failover: bool = False) -> str:
    """The member a switchover (or manual failover) would hand over to, or ``Refused`` saying why.

    The REST API asks this before writing an intent, so an operator hears at once (412) what the
    leader would otherwise find out only after stopping the primary.
    """
    leader = view.leader_member
    if leader is None and not failover:
        raise Refused("the cluster has no leader to switch over from; use a failover")
    if candidate is None and view.config.pause:
        raise Refused("the cluster is paused: name the candidate explicitly")
    timeline = leader.timeline if leader is not None else None
    limit = view.config.maximum_lag_on_failover

    def refusal(member: Member | None) -> str | None:
        if member is not None and view.leader is not None and member.name == view.leader.name:
            return f"{member.name} is already the leader"
        unfit = unfit_candidate(member, timeline)
        if unfit or member is None:
            return unfit
        lag = view.lag(member.name, member.lsn, member.timeline, failover=True)
        if lag is not None and lag > limit:
            return f"candidate {member.name} lags {lag} bytes behind (maximum_lag_on_failover {limit})"
        # An empty claim (nobody known to hold every commit) is the candidate's own rule to keep.
        outside = outside_set(view, member.name) if view.sync_set else None
        return f"candidate {member.name} is {outside}" if outside else None

    if candidate is not None:
        why = refusal(view.member(candidate))
        if why is not None:
            known = ", ".join(m.name for m in view.members)
            raise Refused(why + (f" (members: {known})" if view.member(candidate) is None else ""))
        return candidate
    fit = [m for m in view.members if refusal(m) is None]
    if not fit:
        raise Refused("no healthy standby qualifies (running, same timeline, within maximum_lag_on_failover)")
    return max(fit, key=lambda m: Standing.of(m.lsn, m.tags.failover_priority, m.name)).name


class Refused(Exception):
    """A switchover or failover that cannot be safe; the message says why."""
