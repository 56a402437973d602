"""Synchronous replication (safety rule 4): whom PostgreSQL waits for, and what etcd may claim.

Two things change, never at once:
- PostgreSQL's ``synchronous_standby_names`` (the *spec*: wait for ``k`` of ``names``), which
  decides what every commit acknowledged from then on is guaranteed to be on;
- the *claim* published in etcd (``SyncState``: ``members``, ``quorum`` q), which says "every
  commit ever acknowledged is on at least q of members"; failover trusts it: only a member of
  the set may promote, and only as the most advanced of at least ``|members| - q + 1`` of them,
  a group every commit quorum intersects.

A claim must hold for commits acknowledged under the old spec and the new one, so it is weakened
(or widened) before the spec changes, and strengthened only after the spec is in force and the
standbys it names have caught up with everything acknowledged before. An empty claim with q >= 1
means "nobody is known to hold every commit": nobody promotes. ``q = 0`` is no claim at all
(asynchronous, or degraded after ``synchronous_fallback_after``).

Everything here is pure: ``decide`` works out one ``SyncPlan`` per cycle, before the rules; a
healthy leader takes one step per cycle from it. Safety rule 4 lives here whole: the leader's
side (``step``), the candidate's (``may_promote``, ``outside_set``; the set in force is
``ClusterView.sync_set``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pgwarden.ha.actions import Action, AppendHistory, PublishSync, SetSyncStandbys
from pgwarden.ha.observation import Observation
from pgwarden.model import (
    NO_CLAIM_HOLDER,
    SYNC_DEGRADED,
    SYNC_RESTORED,
    ClusterView,
    Lsn,
    PgState,
    Role,
    SyncFallback,
    SyncMode,
    SyncState,
)

ANY_STANDBY = "*"
NOBODY = NO_CLAIM_HOLDER  # restrictive: nobody may promote


@dataclass(frozen=True, slots=True)
class SyncSpec:
    """``synchronous_standby_names`` as wait-for-``k``-of-``names``; k = 0 is asynchronous."""

    names: frozenset[str] = frozenset()
    k: int = 0
    first: bool = False  # FIRST k (priority) rather than ANY k (quorum); same guarantee here

    def render(self, order: tuple[str, ...] = ()) -> str:
        if self.k == 0 or not self.names:
            return ""
        if ANY_STANDBY in self.names:
            return f"ANY {self.k} (*)"
        ranked = [n for n in order if n in self.names] + sorted(self.names - set(order))
        quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in ranked)
        return f"{'FIRST' if self.first else 'ANY'} {self.k} ({quoted})"

    def same_guarantee(self, other: SyncSpec) -> bool:
        return self.names == other.names and self.k == other.k


_SPEC = re.compile(r"^\s*(FIRST|ANY)?\s*(\d+)?\s*\((.*)\)\s*$", re.IGNORECASE)


def parse_spec(text: str | None) -> SyncSpec | None:
    """Read ``synchronous_standby_names``; None when unknown. Unusual forms count as "any standby"."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return SyncSpec()
    match = _SPEC.match(text)
    if match is None:
        # A bare list "a, b" means FIRST 1 (a, b); a lone "*" any standby.
        return SyncSpec(_names(text), 1, first=True)
    kind, count, inner = match.groups()
    return SyncSpec(_names(inner), int(count or 1), first=(kind or "FIRST").upper() == "FIRST")


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip().strip('"') for n in text.split(",") if n.strip())


def guarantee(spec: SyncSpec, members: frozenset[str]) -> int:
    """On how many of ``members`` every commit acknowledged under ``spec`` is, at least."""
    if spec.k == 0 or ANY_STANDBY in spec.names:
        return 0
    return max(0, spec.k - len(spec.names - members))


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """Synchronous replication as one cycle sees it, worked out once: ``decide`` computes it before
    the rules run (``plan``), the leader's rule takes its steps from it, the memory its timers."""

    current: SyncSpec | None  # synchronous_standby_names in force, parsed; None when not known
    claim: SyncState  # the claim this leader stands by (``published``)
    short_since: float | None  # since when too few standbys stream (``short_since``)
    order: tuple[str, ...]  # standbys that may be synchronous, in the order they get places
    target: SyncSpec  # the spec PostgreSQL should run with now (``desired``)
    applied: tuple[str, Lsn] | None  # when the target was first seen in force, and where


def plan(obs: Observation) -> SyncPlan:
    """This cycle's synchronous replication facts and target; see ``step``."""
    current = parse_spec(obs.local.sync_standby_names)
    claim = published(obs)
    short = short_since(obs, current)
    order = _ranked(obs, current, eligible(obs, current))
    target = desired(obs, current, claim, short, order)
    mine = obs.local.is_primary and obs.leader_is_me
    return SyncPlan(current, claim, short, order, target, applied(obs, current, target) if mine else None)


def plan_of(obs: Observation) -> SyncPlan:
    """The cycle's plan ``decide`` worked out; worked out here for a rule called on its own."""
    return obs.sync_plan if obs.sync_plan is not None else plan(obs)


def eligible(obs: Observation, current: SyncSpec | None, sticky: bool = True) -> tuple[str, ...]:
    """Standbys that may be synchronous, best first (those that may fail over before ``nofailover``
    ones, then sync_priority, then name): those streaming, and (``sticky``) those already in the
    spec while their member record says they run, so a standby that reconnects for a moment does
    not churn the spec (and the claim) every cycle. A ``nofailover`` standby holding the only
    synchronous place would leave no member entitled to take over in ``block`` mode: it gets a
    place only when no other standby can have it (Patroni prefers them the same way)."""
    streaming = obs.local.replication
    listed = current.names if current is not None and sticky else frozenset()
    candidates = [
        m
        for m in obs.view.members
        if m.name != obs.name
        and not m.tags.nosync
        and (
            m.name in streaming
            or (m.name in listed and m.role is Role.REPLICA and m.state is PgState.RUNNING)
        )
    ]
    candidates.sort(key=lambda m: (m.tags.nofailover, -m.tags.sync_priority, m.name))
    return tuple(m.name for m in candidates)


def quorum_voters(view: ClusterView, order: Sequence[str], k: int) -> list[str]:
    """Quorum mode: the standbys of ``order`` listed in ``ANY k (...)``: every one that may fail
    over, and ``nofailover`` ones (in order) only while fewer than ``k`` are listed (Patroni 4's
    rule). A commit acknowledged by nofailover standbys alone would leave every member that may
    promote behind it: the claim still counts it (so nobody loses it), but then nobody may take
    over. Listed only to reach ``k``, they make the list exactly ``k`` long, so every commit is on
    every listed standby that may fail over."""
    nofailover = {m.name for m in view.members if m.tags.nofailover}
    voters = [n for n in order if n not in nofailover]
    return voters + [n for n in order if n in nofailover][: max(0, k - len(voters))]


def _ranked(obs: Observation, current: SyncSpec | None, order: tuple[str, ...]) -> tuple[str, ...]:
    """``order`` with the standbys the spec in force already names, and that stream, first: a
    healthy synchronous standby keeps its place when a higher-ranked one comes back (a former
    primary rejoining, say); rank decides only who gets a free place, as in Patroni. Otherwise
    the claim would move, and churn, after every failover."""
    names = current.names if current is not None else frozenset()
    nofailover = {m.name for m in obs.view.members if m.tags.nofailover}

    def rank(name: str) -> tuple[bool, bool]:
        # May fail over first (a place held by a nofailover standby is given up to one that may
        # fail over); then the places already held; ``order`` decides the rest (a stable sort).
        return name in nofailover, not (name in names and name in obs.local.replication)

    return tuple(sorted(order, key=rank))


def published(obs: Observation) -> SyncState:
    """The claim this leader stands by: its own, or NOBODY (a new leader owes every claim afresh)."""
    sync = obs.view.sync
    if obs.view.config.synchronous_mode is SyncMode.OFF:
        return sync if sync is not None else SyncState(leader=obs.name)
    if sync is None or sync.leader != obs.name:
        return NOBODY
    return sync


def short_since(obs: Observation, current: SyncSpec | None) -> float | None:
    """Since when fewer standbys stream than synchronous_node_count (for the degrade timer)."""
    config = obs.view.config
    if config.synchronous_mode is SyncMode.OFF or not obs.local.is_primary:
        return None
    wanted = config.synchronous_node_count if config.synchronous_mode is SyncMode.ON else 1
    # Streaming only, not sticky: a standby cut off from the primary still publishes "running"
    # in etcd, and must not hold the degrade timer back.
    if len(eligible(obs, current, sticky=False)) >= wanted:
        return None
    return obs.memory.sync_short_since if obs.memory.sync_short_since is not None else obs.now


def desired(
    obs: Observation, current: SyncSpec | None, claim: SyncState, short: float | None, order: tuple[str, ...]
) -> SyncSpec:
    """The spec PostgreSQL should run with now."""
    config = obs.view.config
    mode, k = config.synchronous_mode, config.synchronous_node_count
    if mode is SyncMode.OFF:
        return SyncSpec()
    timed_out = short is not None and obs.now - short >= config.synchronous_fallback_after
    # Past the fallback window only standbys that really stream count (see ``eligible``).
    streaming = set(eligible(obs, current, sticky=False))
    chosen = [n for n in order if not timed_out or n in streaming]
    # FIRST k lists k standbys; ANY k every one that may fail over (``quorum_voters``).
    chosen = chosen[:k] if mode is SyncMode.ON else quorum_voters(obs.view, chosen, k)
    degrade = config.synchronous_fallback is SyncFallback.DEGRADE and timed_out
    wanted = k if mode is SyncMode.ON else 1
    if len(chosen) < wanted and not degrade:
        # Writes wait for the standbys that left rather than go on without enough copies.
        names = current.names if current is not None else frozenset()
        keep = sorted((claim.members | names) - set(chosen) - {ANY_STANDBY})
        chosen += keep[: wanted - len(chosen)]
        if not chosen:
            return SyncSpec(frozenset({ANY_STANDBY}), k if mode is SyncMode.ON else 1)
        return SyncSpec(
            frozenset(chosen), min(wanted, len(chosen)) if mode is SyncMode.ON else 1, mode is SyncMode.ON
        )
    if not chosen:
        return SyncSpec()  # degraded: asynchronous until a standby streams again
    count = min(k, len(chosen))
    return SyncSpec(frozenset(chosen), count, first=mode is SyncMode.ON)


def applied(obs: Observation, current: SyncSpec | None, spec: SyncSpec) -> tuple[str, Lsn] | None:
    """When the desired spec was first seen in force: the primary's position then (see ``step``)."""
    if current is None or not current.same_guarantee(spec) or obs.local.write_lsn is None:
        return None
    key = spec.render()
    previous = obs.memory.sync_applied
    if previous is not None and previous[0] == key:
        return previous
    return key, obs.local.write_lsn


def step(obs: Observation, plan: SyncPlan) -> tuple[Action, ...]:
    """The next safe step towards the desired spec and the strongest claim it supports; a claim
    that degrades or is restored goes into the history too, after it is published."""
    actions = _step(obs, plan)
    before = obs.view.sync
    was_degraded = before is not None and before.degraded_since is not None
    for action in actions:
        if not isinstance(action, PublishSync):
            continue
        state = action.state
        if state.degraded_since is not None and not was_degraded:
            after = obs.view.config.synchronous_fallback_after
            why = f"no synchronous standby for {after:g}s: asynchronous"
            return (*actions, _event(obs, SYNC_DEGRADED, why))
        if was_degraded and state.quorum > 0:
            return (*actions, _event(obs, SYNC_RESTORED, f"synchronous again with {sorted(state.members)}"))
    return actions


def _event(obs: Observation, event: str, reason: str) -> AppendHistory:
    """Degraded windows go into the history beside the promotions, so `pgwarden history` shows them."""
    local = obs.local
    return AppendHistory(reason, event=event, at=(local.timeline or 0, local.write_lsn or Lsn(0)))


def _step(obs: Observation, plan: SyncPlan) -> tuple[Action, ...]:
    current = plan.current
    if current is None or not obs.local.is_primary:
        return ()
    config = obs.view.config
    claim, target = plan.claim, plan.target
    if config.synchronous_mode is SyncMode.OFF:
        if claim.quorum > 0 or claim.members:
            return (PublishSync(SyncState(leader=obs.name)),)
        return () if current.k == 0 else (SetSyncStandbys(SyncSpec().render()),)
    members, q = claim.members, claim.quorum
    if members and q > guarantee(current, members):
        # The spec in force no longer backs the claim (changed by hand, or a restart): retract.
        return (PublishSync(_nobody(obs)),)
    if not current.same_guarantee(target):
        return _towards(obs, claim, target, plan.order)
    return _strengthen(obs, claim, target, obs.memory.sync_applied)


def _towards(
    obs: Observation, claim: SyncState, target: SyncSpec, order: tuple[str, ...]
) -> tuple[Action, ...]:
    """Change the spec, after making the claim hold under it too."""
    change = SetSyncStandbys(target.render(order))
    if target.k == 0:
        if claim.quorum == 0:
            return (change,)
        # Degrading: the claim goes first (publish, then let PostgreSQL stop waiting).
        return (PublishSync(SyncState(leader=obs.name, degraded_since=obs.wall)),)
    members = claim.members
    if not members:
        return (change,)  # claiming nobody holds everything is true under any spec
    widened = members | (target.names - {ANY_STANDBY})
    q = min(claim.quorum, guarantee(target, widened))
    if q == claim.quorum and widened == members:
        return (change,)
    if q <= 0:
        return (PublishSync(_nobody(obs)),)
    return (PublishSync(SyncState(leader=obs.name, members=widened, quorum=q)),)


def _strengthen(
    obs: Observation, claim: SyncState, target: SyncSpec, since: tuple[str, Lsn] | None
) -> tuple[Action, ...]:
    """The spec is in force: claim it fully once its standbys hold what was acknowledged before."""
    if target.k == 0:
        return ()
    full = SyncState(leader=obs.name, members=target.names, quorum=target.k)
    if ANY_STANDBY in target.names or (claim.members == full.members and claim.quorum == full.quorum):
        return ()
    if since is None or since[0] != target.render():
        return ()  # the next cycle knows where the spec took effect
    caught_up = {
        n for n in target.names if (pos := obs.local.replication.get(n)) is not None and pos >= since[1]
    }
    kept = claim.quorum - len(claim.members - target.names) if claim.members else 0
    if max(kept, len(caught_up)) >= target.k:
        return (PublishSync(full),)
    return ()


def _nobody(obs: Observation) -> SyncState:
    return SyncState(leader=obs.name, members=frozenset(), quorum=1)


def outside_set(view: ClusterView, name: str) -> str | None:
    """Why the claim in force forbids ``name`` to promote: it is not in the synchronous set."""
    members = view.sync_set
    if members is None or name in members:
        return None
    return f"not in the synchronous set {sorted(members)}"


def may_promote(obs: Observation) -> str | None:
    """Why the published claim forbids this member to promote, or None (rule 4, candidate side)."""
    sync, members = obs.view.sync, obs.view.sync_set
    if sync is None or members is None:
        return None
    outside = outside_set(obs.view, obs.name)
    if outside is not None:
        return outside
    needed = len(members) - sync.quorum + 1
    seen = {obs.name} | {
        p.name for p in obs.peers.values() if p.reachable and p.name in members and p.running
    }
    if len(seen) < needed:
        return f"only {len(seen)} of the {needed} synchronous members every commit quorum overlaps answer"
    if sync.quorum >= len(members):
        return None  # every member holds every commit: the usual comparison of peers decides
    mine = obs.local.lsn
    for peer in obs.peers.values():
        if (
            peer.name in seen
            and peer.name != obs.name
            and peer.lsn is not None
            and (mine is None or peer.lsn > mine)
        ):
            return f"synchronous member {peer.name} holds more WAL ({peer.lsn} > {mine})"
    return None
