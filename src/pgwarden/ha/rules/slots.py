"""Which members the leader keeps a physical replication slot for (safety rule 7)."""

from __future__ import annotations

from collections.abc import Mapping

from pgwarden.ha.observation import Observation


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
