"""Who may join the cluster: a member whose replication slot name another member already has stays out.

Slot names fold case, '-', '.' and everything past 63 characters (``model.slot_name``), so two
members can share one: the leader would keep a single slot for both, and each standby would take
the other's WAL position. The member that holds the leader key, or else registered first, keeps
the slot; the other one takes no action at all (no clone, no start, no race, no request carried
out) and says why, until it is renamed or the first one leaves.
"""

from __future__ import annotations

from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import slot_name


def slot_name_taken(obs: Observation) -> Decision | None:
    """My slot name belongs to a member that leads or registered first: stay out (no clone, slot or race)."""
    if obs.leader_is_me or obs.view.bootstrapping == obs.name:
        return None  # the member writing (or creating) the cluster keeps its place; the other yields
    local = obs.local
    if local.running and local.in_recovery is not True:
        return None  # a possible writer: the safety and leadership rules deal with it, never a wait
    rival = obs.view.slot_rival(obs.name)
    if rival is None:
        return None
    slot = slot_name(obs.name)
    why = f"member {rival.name} already has the replication slot name {slot}; rename {obs.name}"
    decision = act(Reason.SLOT_NAME_TAKEN, name=obs.name, slot=slot, rival=rival.name)
    refused = dict.fromkeys(obs.requests, why)  # an operator's request waits for nothing: answered now
    return Decision(decision.actions, decision.reason, decision.detail, answers=refused)
