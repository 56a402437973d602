"""Who races for the leader key when nobody holds it: the best candidate only (safety rule 3)."""

from __future__ import annotations

from pgwarden.ha import sync
from pgwarden.ha.actions import (
    AcquireLeader,
    AppendHistory,
    ClearSwitchover,
    Demote,
    Promote,
    StartStandby,
    StopMode,
)
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation, PeerStatus
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules import cold_start
from pgwarden.ha.rules.failsafe import may_not_race, rival
from pgwarden.ha.rules.standing import Standing
from pgwarden.ha.rules.switchover import active_intent, intent_kind
from pgwarden.model import ZERO, ClusterView, DataDir, Lsn, SwitchoverIntent


def no_leader(obs: Observation) -> Decision | None:
    """Nobody holds the key: only the best candidate races for it (lag, sync set, peers compared;
    after a full stop, the last leader first: rules/cold_start.py)."""
    view, local = obs.view, obs.local
    if view.leader is not None:
        return None
    intent = active_intent(obs)
    chosen = intent is not None and intent.candidate == obs.name
    if view.config.pause and not chosen:
        # A switchover to a named candidate is an operator's act, so it goes on in maintenance.
        return act(Reason.NO_LEADER_PAUSED)
    if local.is_primary:
        newest = _newer_timeline(obs.view, local.timeline)
        if newest is not None:
            # A standby was promoted after this primary last held the key (its agent was frozen
            # or down) and has since gone too: taking the key back would rewind away every write
            # acknowledged on that newer timeline.
            return act(
                Reason.NO_LEADER_SUPERSEDED_PRIMARY_DEMOTING,
                Demote(StopMode.IMMEDIATE),
                newest=newest,
                mine=local.timeline,
            )
        if not obs.watchdog_ready:
            return act(Reason.NOT_RACING_WATCHDOG, Demote(StopMode.FAST))
        # Our own key vanished (expired while this agent was down, or deleted by hand) and no
        # one took it: this primary holds the newest WAL, so it takes the key back. If another
        # member wins instead, the rogue-primary rule demotes us on the next cycle.
        return act(Reason.NO_LEADER_PRIMARY_REACQUIRING, AcquireLeader())
    if obs.tags.nofailover:
        return act(Reason.NOT_RACING_NOFAILOVER)
    if not obs.watchdog_ready:
        return act(Reason.NOT_RACING_WATCHDOG)
    if not local.running and local.data_dir is DataDir.VALID:
        return act(Reason.NO_LEADER_STARTING_READ_ONLY, StartStandby(None))
    if not local.is_standby:
        return act(Reason.NOT_RACING_NOT_RUNNING)
    if intent is not None and not chosen:
        return act(Reason.NOT_RACING_SWITCHOVER, kind=intent_kind(intent), candidate=intent.candidate)
    refused = may_not_race(obs)
    if refused is not None:
        return refused
    if chosen:
        return _race(obs, intent)
    waiting = cold_start.wait(obs)
    if isinstance(waiting, Decision):
        return waiting
    decision = _race(obs, None)
    return cold_start.gave_up(decision, waiting) if waiting is not None else decision


def _race(obs: Observation, intent: SwitchoverIntent | None) -> Decision:
    """Race unless a reason says not to; the operator's chosen candidate defers to no better peer."""
    view, local = obs.view, obs.local
    config = view.config
    my_lsn = local.lsn
    status = view.status
    # The last leader's published position bounds our lag unless it is our own or from an older
    # timeline than ours (ClusterView.lag says why); then candidates just compare each other. A
    # standby that has not even reached the leader's timeline is at least that far behind, and
    # one that knows no position of its own is behind by all of it.
    lag = view.lag(obs.name, my_lsn or ZERO, local.timeline, failover=True)
    if lag is not None and status is not None and lag > config.maximum_lag_on_failover:
        return act(
            Reason.NOT_RACING_LAG,
            lag=lag,
            leader_lsn=str(status.lsn),
            limit=config.maximum_lag_on_failover,
        )
    newest = _newer_timeline(view, local.timeline)
    if newest is not None:
        # The cluster went on to a newer timeline without us: our WAL may have forked from it (a
        # former primary's last writes), and PostgreSQL, lacking that timeline's history file,
        # would give our promotion the same number: two different timelines N in one cluster.
        return act(Reason.NOT_RACING_BEHIND_TIMELINE, newest=newest, mine=local.timeline)
    forbidden = sync.may_promote(obs)
    if forbidden is not None:
        return act(Reason.NOT_RACING_NOT_SYNC, why=forbidden)
    # Outside the sync set a peer may not promote, so it is no rival even with more WAL: deferring
    # to it would leave no one racing.
    mine = Standing.of(my_lsn, obs.tags.failover_priority, obs.name)
    candidates = 1
    for peer in sorted(obs.peers.values(), key=lambda p: p.name):
        if peer.name == obs.name or not peer.reachable:
            continue
        if peer.running and peer.in_recovery is False:
            return act(Reason.NOT_RACING_PRIMARY_ALIVE, peer=peer.name)
        if intent is not None:
            continue
        # A peer behind the cluster's newest timeline does not race (above), nor one outside the
        # failsafe topology, so neither is a rival.
        if not _eligible(peer, view) or _newer_timeline(view, peer.timeline) is not None:
            continue
        if not rival(view, peer.name):
            continue
        candidates += 1
        theirs = Standing.of(peer.lsn, peer.tags.failover_priority, peer.name)
        if theirs > mine:
            return act(Reason.NOT_RACING_PEER_BETTER, peer=peer.name, why=_why_better(peer, my_lsn))
    if intent is not None:
        kind = intent_kind(intent)
        previous = intent.leader or (status.name if status is not None else "the old primary")
        return act(
            Reason.SWITCHOVER_TAKING_OVER,
            AcquireLeader(),
            Promote(),
            AppendHistory(f"{kind} from {previous}"),
            ClearSwitchover(),
            kind=kind,
        )
    return act(
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        AcquireLeader(),
        Promote(),
        AppendHistory("failover: no leader"),
        candidates=candidates,
    )


def _newer_timeline(view: ClusterView, timeline: int | None) -> int | None:
    """The newest timeline the store records (history, leader status), if newer than ``timeline``."""
    known = [e.timeline for e in view.history] + ([view.status.timeline] if view.status else [])
    newest = max(known, default=None)
    return newest if timeline is not None and newest is not None and newest > timeline else None


def _eligible(peer: PeerStatus, view: ClusterView) -> bool:
    in_sync = sync.outside_set(view, peer.name) is None
    # A peer whose agent crash-loops would never race: deferring to it would leave no one racing.
    fit = not peer.tags.nofailover and not peer.loop_failing
    return peer.running and peer.in_recovery is True and fit and in_sync


def _why_better(peer: PeerStatus, my_lsn: Lsn | None) -> str:
    if peer.lsn is not None and (my_lsn is None or peer.lsn > my_lsn):
        return f"WAL {peer.lsn} ahead of my {my_lsn}"
    return "same WAL position, higher failover_priority or name first"
