"""Who may join the cluster: a newcomer whose replication slot name another member has stays out.

Slot names fold case, '-', '.' and everything past 63 characters (``model.slot_name``), so two
members can share one: the leader would keep a single slot for both, and each standby would take
the other's WAL position. A member that has no data yet (it would clone, or bootstrap) does not
join while the name is taken: by a member in etcd that leads, has data, or registered first, or
by one seen within member_slots_ttl (the leader still keeps its slot). It takes no action at all
(no clone, no start, no race, no request carried out) and says why, with both names.

A member that has data has joined before and is never turned away, whatever registers later: an
agent restart re-registers its member key, and seniority must not change hands with it.
"""

from __future__ import annotations

from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import DataDir, slot_name


def slot_name_taken(obs: Observation) -> Decision | None:
    """A newcomer whose slot name a member has (or had lately) stays out: no clone, slot or race."""
    if obs.local.data_dir is DataDir.VALID or obs.leader_is_me or obs.view.bootstrapping == obs.name:
        return None  # joined before (or creating the cluster): it keeps its place
    rival = obs.view.slot_rival(obs.name)
    holder = rival.name if rival is not None else _recently_seen_rival(obs)
    if holder is None:
        return None
    slot = slot_name(obs.name)
    why = f"member {holder} already has the replication slot name {slot}; rename {obs.name}"
    decision = act(Reason.SLOT_NAME_TAKEN, name=obs.name, slot=slot, rival=holder)
    refused = dict.fromkeys(obs.requests, why)  # an operator's request waits for nothing: answered now
    return Decision(decision.actions, decision.reason, decision.detail, answers=refused)


def _recently_seen_rival(obs: Observation) -> str | None:
    """A member with my slot name, gone from etcd for less than member_slots_ttl: the leader keeps
    its slot (and WAL) for its return, so the name is not free yet (rules.slots)."""
    slot, ttl = slot_name(obs.name), obs.view.config.member_slots_ttl
    present = {m.name for m in obs.view.members}
    gone = (
        name
        for name, seen in sorted(obs.memory.member_last_seen.items())
        if name != obs.name and name not in present and obs.now - seen <= ttl
    )
    return next((name for name in gone if slot_name(name) == slot), None)
