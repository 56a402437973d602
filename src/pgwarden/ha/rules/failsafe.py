"""Failsafe mode: a leader keeps writing through an etcd outage only on every member's promise.

Safety rule 1 says a node writes only while it holds the leader key. etcd unreachable, a leader
cannot renew the key, yet nobody else can take it either as long as no member races for it. So
with ``failsafe_mode`` on, the leader asks every member it knows (the topology it last
published, and the members of its last view) over ``POST /failsafe`` to promise, for ttl
seconds, that it promotes no one and follows no one else; when *all* of them confirm, its write
deadline moves to that round's send time + ttl - margin, the arithmetic of a lease renewal
(docs/timing.md). A member that promised waits its promise out before racing, even with etcd
back and no key in it; only members of the published topology race at all, so a member the
leader could not ask (it joined after the last publication) cannot race either. One member
missing, refusing or silent: no extension, and the leader stops at its deadline as without
failsafe mode. Standbys never promote without etcd: racing is a compare-and-set in etcd.

Junk in the topology key has one safe reading per side: to a member deciding whether to race it
is a topology of nobody (``view.failsafe`` reads {}: none races, as none can tell whether it was
asked); to the leader it is the last valid topology it read (``known_topology``), so it never
believes fewer members must promise, and it republishes its own at once. A leader that read no
valid topology since it started cannot rely on failsafe mode until its republication reads back.

The pure half lives here: who to ask, when to ask, the promise a member may give
(``refuse_promise``), the member's side of the promise, the topology's publication and the
history entry. The agent sends the requests (agent/failsafe.py) and the API answers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

from pgwarden.ha.actions import (
    Action,
    Demote,
    PublishFailsafe,
    RecordFailsafe,
    RenewFailsafe,
    RenewLeader,
    StopMode,
)
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import FailsafeEpisode, Observation, Promise
from pgwarden.ha.reasons import Reason
from pgwarden.model import FAILSAFE, ClusterView, LocalState, StoreKey
from pgwarden.model.deadline import holds


def topology(view: ClusterView) -> dict[str, str]:
    """The topology a leader publishes: every member in its view, with its REST API URL."""
    return {m.name: m.api_url for m in view.members}


def known_topology(view: ClusterView) -> Mapping[str, str] | None:
    """The stored topology as a leader must reckon with it: while the key is unreadable, the last
    valid one this agent read (None if it read none: who may race is then unknown)."""
    if StoreKey.FAILSAFE in view.unreadable:
        return view.failsafe_last_good
    return view.failsafe


def asked(view: ClusterView, me: str) -> tuple[tuple[str, str], ...]:
    """Who must promise: the published topology and every member of the view, but me.

    Whoever may race for the key is in the topology stored in etcd; the leader alone writes it,
    from the members of the view it read that cycle, so the union of the last view's topology and
    its members covers every topology etcd can hold while the leader cannot reach it. With junk
    in the key, the last valid topology I read stands for it: the junk may have replaced members
    outside my view (keys expired, APIs answering), and a restored key would name them again.
    """
    found: dict[str, str] = dict(known_topology(view) or {})
    found.update(topology(view))
    found.pop(me, None)
    return tuple(sorted(found.items()))


def absent_members(view: ClusterView, me: str) -> tuple[tuple[str, str], ...]:
    """Topology members without a key in etcd: the leader asks whether their API still answers."""
    if view.leader is None or view.leader.name != me or not view.config.failsafe_mode:
        return ()
    present = {m.name for m in view.members} | {me}
    return tuple(sorted((n, u) for n, u in (known_topology(view) or {}).items() if n not in present))


def rival(view: ClusterView, name: str) -> bool:
    """Whether a candidate must defer to peer ``name``: one outside the topology cannot race."""
    stored = view.failsafe
    return not view.config.failsafe_mode or stored is None or name in stored


def unavailable(obs: Observation) -> str | None:
    """Why failsafe mode cannot carry this node's writes now (None: it can)."""
    view = obs.view
    if not view.config.failsafe_mode:
        return "failsafe_mode is off"
    if not obs.leader_is_me:
        return "the last view I read does not name me as the leader"
    if StoreKey.FAILSAFE in view.unreadable and view.failsafe_last_good is None:
        # Junk in the key and no valid topology read since I started: members outside my view
        # may be in the real one (their keys expired while their APIs answered).
        return "the failsafe topology in etcd is unreadable and I read no valid one since I started"
    if view.failsafe is None:
        # A member that joined after my last read would not be asked, and without a stored
        # topology nothing would keep it from racing.
        return "no failsafe topology published yet"
    return None


def renewal(obs: Observation) -> RenewLeader:
    """A healthy leader's renewal: in failsafe mode, with the round to fall back on."""
    return RenewLeader(failsafe=asked(obs.view, obs.name) if unavailable(obs) is None else None)


def keep_writing(obs: Observation) -> Decision | None:
    """etcd unreachable, PostgreSQL read-write and the write deadline ahead: ask every member to
    promise (which moves the deadline), or say why failsafe mode cannot help."""
    view = obs.view
    deadline = obs.write_deadline
    remaining = deadline - obs.now if deadline is not None else 0.0
    if not view.config.failsafe_mode:
        return None
    why = unavailable(obs)
    if why is not None:
        return act(Reason.STORE_UNREACHABLE_FAILSAFE_UNAVAILABLE, why=why, remaining=remaining)
    members = asked(view, obs.name)
    names = ", ".join(name for name, _ in members) or "nobody (no other member)"
    return act(Reason.STORE_UNREACHABLE_FAILSAFE, RenewFailsafe(members), members=names, remaining=remaining)


def promise_held(obs: Observation) -> Decision | None:
    """I promised a failsafe leader to promote no one and follow no one else: wait the promise out."""
    leader = obs.promised_to
    if leader is None or leader == obs.name:
        return None
    current = obs.view.leader
    if current is not None and current.name == leader:
        return None  # the leader I promised still leads: follow it as usual
    promise = obs.promise
    remaining = promise.until - obs.now if promise is not None else 0.0
    local = obs.local
    if local.running and local.in_recovery is not True:
        # Defensive: the promise and a primary exclude each other (refuse_promise, and the
        # executor's AcquireLeader refuses while a promise holds), so this is a broken promise.
        return act(Reason.FAILSAFE_PROMISE_DEMOTING, Demote(StopMode.IMMEDIATE), leader=leader)
    return act(Reason.FAILSAFE_PROMISE_HOLDING, leader=leader, remaining=remaining)


def may_not_race(obs: Observation) -> Decision | None:
    """In failsafe mode, a member absent from the published topology never races (no leader asked
    it to promise), nor does any while the topology is unreadable; nor does one whose agent
    started less than ttl ago (it forgot any promise it gave before)."""
    view = obs.view
    stored = view.failsafe
    junk = view.unreadable.get(StoreKey.FAILSAFE)
    if view.config.failsafe_mode and junk is not None:
        # I cannot tell whether I am in the topology, nor whether a failsafe leader asked me.
        return act(Reason.NOT_RACING_FAILSAFE_TOPOLOGY_UNREADABLE, why=junk)
    if view.config.failsafe_mode and stored is not None and obs.name not in stored:
        # Turning failsafe_mode off lifts this: the operator's way out when every member of a
        # stale topology is gone for good.
        return act(Reason.NOT_RACING_OUTSIDE_FAILSAFE_TOPOLOGY, members=", ".join(sorted(stored)) or "nobody")
    age = obs.now - obs.agent_started
    if view.config.failsafe_mode and age < view.config.ttl:
        return act(Reason.NOT_RACING_FAILSAFE_RESTARTED, age=age, ttl=view.config.ttl)
    return None


def refuse_promise(
    me: str,
    leader: str,
    seconds: float,
    view: ClusterView,
    local: LocalState,
    held: Promise | None,
    racing: bool,
    now: float,
) -> str | None:
    """Why this member may not promise ``leader`` for ``seconds`` now (None: it may), from its last
    view and state.

    ``held`` is the promise it gave last (if any), ``racing`` whether it is racing for the key
    right now. A promise only restricts the member that gives it; refusing stops the asker.
    A promise longer than ttl is refused: a restarted agent keeps the promises it forgot by not
    racing for ttl (``may_not_race``).
    """
    if leader == me:
        return "a member does not answer its own failsafe request"
    if not view.config.failsafe_mode:
        return "failsafe_mode is off in the cluster config this member last read"
    if seconds > view.config.ttl:
        return f"a promise of {seconds:g}s is longer than ttl ({view.config.ttl:g}s)"
    if local.running and local.in_recovery is not True:
        return "this member runs PostgreSQL read-write"
    if view.leader is not None and view.leader.name != leader:
        return f"this member sees {view.leader.name} as the leader"
    if held is not None and holds(held.until, now) and held.leader != leader:
        return f"this member promised {held.leader} for {held.until - now:.1f}s more"
    if racing:
        return "this member is racing for the leader key"
    return None


def publish_topology(obs: Observation) -> tuple[Action, ...]:
    """The leader keeps the stored topology equal to its members (removed when the mode is off).

    A member whose key expired (cut off from etcd) stays while its REST API answers the leader
    (``absent_members``, asked by the observer): dropping it would bar it from racing, and with
    every other member outside the topology a dead leader could never be replaced.
    """
    view = obs.view
    if not view.config.failsafe_mode:
        return (PublishFailsafe(None),) if view.failsafe is not None else ()
    wanted = topology(view)
    for name, url in (known_topology(view) or {}).items():
        peer = obs.peers.get(name)
        if name not in wanted and peer is not None and peer.reachable:
            wanted[name] = url
    if obs.name not in wanted or dict(view.failsafe or {}) == wanted:
        return ()  # my own member record is not back yet: publish with it, next cycle
    return (PublishFailsafe(tuple(sorted(wanted.items()))),)


def record(obs: Observation) -> tuple[Action, ...]:
    """The leader, etcd back, records the outage it rode out in failsafe mode (once)."""
    episode = obs.memory.failsafe
    if episode is None or not episode.relied or not obs.store_ok or _recorded(obs.view, episode):
        return ()
    ended = episode.ended if episode.ended is not None else obs.wall
    names = ", ".join(episode.members) or "no other member"
    reason = f"etcd unreachable for {ended - episode.began:.0f}s: kept writing on the promises of {names}"
    if episode.stopped:
        reason += "; stopped writing when not every member confirmed"
    return (RecordFailsafe(_iso(episode.began), reason),)


def remember(obs: Observation) -> FailsafeEpisode | None:
    """The episode as this cycle leaves it: begun, relied on, ended, or forgotten once recorded."""
    episode, local = obs.memory.failsafe, obs.local
    if not obs.store_ok:
        if not obs.leader_is_me or not obs.view.config.failsafe_mode:
            return episode
        episode = replace(episode, ended=None) if episode is not None else FailsafeEpisode(began=obs.wall)
        relied = obs.holds_failsafe and not obs.holds_lease and local.is_primary
        members = tuple(name for name, _ in asked(obs.view, obs.name))
        return replace(
            episode,
            relied=episode.relied or relied,
            stopped=episode.stopped or not local.is_primary,
            members=members,
        )
    if episode is None or not episode.relied or _recorded(obs.view, episode):
        return None
    if obs.view.leader is not None and not obs.leader_is_me:
        return None  # another member leads now: the history is not mine to write
    return episode if episode.ended is not None else replace(episode, ended=obs.wall)


def _recorded(view: ClusterView, episode: FailsafeEpisode) -> bool:
    stamp = _iso(episode.began)
    return any(e.event == FAILSAFE and e.timestamp == stamp for e in view.history)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
