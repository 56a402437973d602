"""Which physical replication slots each node keeps, and where they stand (safety rule 7).

Every member streams through a slot on its upstream (``following.upstream_for``): the leader's
for a member that streams from the leader, a relay's for one that cascades (``replicatefrom``).

- The leader keeps a slot for every other member present, or absent for less than
  ``member_slots_ttl``, whichever node it streams from: when a relay dies its members fall back
  to the leader, and find their WAL there. A slot nobody streams through never moves by itself,
  so the leader advances the slot of a member that streams from a relay to the position that
  member reports replayed (Patroni 4 does the same): it then holds only the WAL that member
  would ask for if it came back to the leader now, not everything written since it left.
- A relay (a running standby that members name in ``replicatefrom``) keeps a slot for each
  member streaming from it, and drops the inactive slots of members that stream elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping

from pgwarden.ha.actions import EnsureSlots
from pgwarden.ha.observation import Observation
from pgwarden.ha.rules.topology import upstream_for
from pgwarden.model import Lsn, Member, slot_name


def members_seen(obs: Observation) -> Mapping[str, float]:
    """Update when each member was last in the view; forget those gone past member_slots_ttl."""
    if not obs.store_ok:
        return obs.memory.member_last_seen
    ttl = obs.view.config.member_slots_ttl
    seen = {n: t for n, t in obs.memory.member_last_seen.items() if obs.now - t <= ttl}
    seen.update({m.name: obs.now for m in obs.view.members})
    return seen


def keeps_unseen_slots(obs: Observation) -> bool:
    """A member absent for less than member_slots_ttl keeps its slot, and an agent that started
    less than member_slots_ttl ago cannot tell how long a member it never saw has been absent: the
    leader's agent restarted while a standby's was down, or a cluster moved from Patroni whose
    standbys are not moved yet. Their slots are kept until then; a member gone longer frees them."""
    started = obs.memory.first_decision_at
    return started is None or obs.now - started < obs.view.config.member_slots_ttl


def slot_members(obs: Observation, seen: Mapping[str, float]) -> frozenset[str]:
    """Every other member present, or absent for less than member_slots_ttl, keeps its slot, so a
    standby that restarts finds its WAL still there; a member gone longer frees its WAL."""
    return frozenset(name for name in seen if name != obs.name)


def upstream_of(obs: Observation, member: Member) -> str | None:
    """The node ``member`` streams from, as that member's own agent decides it on this view."""
    return upstream_for(obs.view, member.name, member.tags.replicatefrom)


def reported_position(member: Member) -> Lsn | None:
    """The furthest WAL ``member`` says it holds and has replayed: a walreceiver coming back
    asks for WAL from there on, so a slot moved up to it still holds all that member needs."""
    known = [lsn for lsn in (member.replay_lsn, member.receive_lsn) if lsn is not None]
    return min(known) if known else member.lsn


def advances(obs: Observation) -> tuple[tuple[str, Lsn], ...]:
    """On the leader: the slots of members streaming from a relay, each to be moved up to the
    position its member reports (only forward, only on this timeline, never past our own WAL)."""
    local = obs.local
    if local.slots is None or local.write_lsn is None or local.timeline is None:
        return ()
    moves: list[tuple[str, Lsn]] = []
    for member in obs.view.members:
        if member.name == obs.name or upstream_of(obs, member) == obs.name:
            continue
        slot = local.slots.get(slot_name(member.name))
        position = reported_position(member)
        if (
            slot is not None
            and not slot.active
            and slot.restart_lsn is not None
            and position is not None
            and member.timeline == local.timeline  # a position on another timeline is not ours
            and slot.restart_lsn < position <= local.write_lsn
        ):
            moves.append((slot_name(member.name), position))
    return tuple(sorted(moves))


def reconcile(
    obs: Observation, members: frozenset[str], keep_others: bool, keep: frozenset[str] = frozenset()
) -> EnsureSlots:
    """The slots to create (one per member in ``members``), to drop (every other slot, unless
    ``keep_others``, or named in ``keep``) and to advance (rules above); a slot streaming to
    someone right now is left alone, whoever it belongs to. Slots not observed this cycle: every
    wanted one is created (creating is idempotent), none dropped or advanced."""
    wanted = frozenset(slot_name(name) for name in members)
    slots = obs.local.slots
    if slots is None:
        return EnsureSlots(create=wanted)
    drop = frozenset(n for n, slot in slots.items() if n not in wanted and n not in keep and not slot.active)
    return EnsureSlots(
        create=wanted - slots.keys(),
        drop=frozenset() if keep_others else drop,
        advance=advances(obs) if obs.leader_is_me else (),
    )


def leader_slots(obs: Observation, seen: Mapping[str, float]) -> EnsureSlots:
    """The leader's slots: one per member present or seen within member_slots_ttl."""
    return reconcile(obs, slot_members(obs, seen), keep_others=keeps_unseen_slots(obs))


def relay_slots(obs: Observation, seen: Mapping[str, float]) -> tuple[EnsureSlots, ...]:
    """A running standby's slots: one per member that streams from it. A member absent from the
    view (for less than member_slots_ttl) keeps its slot here, as its tags are unknown: it may
    come back to this relay and find its WAL. Nothing to do: no action, so a standby's steady
    decision stays what it was."""
    downstream = frozenset(
        m.name for m in obs.view.members if m.name != obs.name and upstream_of(obs, m) == obs.name
    )
    present = {m.name for m in obs.view.members}
    absent = frozenset(slot_name(n) for n in seen if n not in present and n != obs.name)
    ensure = reconcile(obs, downstream, keep_others=keeps_unseen_slots(obs), keep=absent)
    return (ensure,) if ensure.create or ensure.drop else ()
