"""Which members the leader keeps a physical replication slot for (safety rule 7)."""

from __future__ import annotations

from collections.abc import Mapping

from pgwarden.ha.actions import EnsureSlots
from pgwarden.ha.observation import Observation
from pgwarden.model import slot_name


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


def reconcile(obs: Observation, members: frozenset[str], keep_others: bool) -> EnsureSlots:
    """The slots to create (one per member in ``members``) and to drop (every other slot, unless
    ``keep_others``); a slot streaming to someone right now is left alone, whoever it belongs to.
    Slots not observed this cycle: every wanted one is created (creating is idempotent), none dropped."""
    wanted = frozenset(slot_name(name) for name in members)
    slots = obs.local.slots
    if slots is None:
        return EnsureSlots(create=wanted)
    drop = frozenset(n for n, active in slots.items() if n not in wanted and not active)
    return EnsureSlots(create=wanted - slots.keys(), drop=frozenset() if keep_others else drop)
