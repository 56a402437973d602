"""Who streams from whom: the upstream a member follows and the slot it streams through there.

Every agent works these out from the same view, so a member's own choice of upstream and its
upstream's choice of which slots to keep (rules/slots.py) agree."""

from __future__ import annotations

from pgwarden.ha.observation import Observation
from pgwarden.model import ClusterView, Member, PgState, Role, slot_name


def serving(member: Member | None) -> bool:
    """The member's PostgreSQL runs (as its record says)."""
    return member is not None and member.state is PgState.RUNNING


def upstream_for(view: ClusterView, name: str, replicatefrom: str | None) -> str | None:
    """The member to stream from: the ``replicatefrom`` member while it runs, else the leader."""
    if replicatefrom and replicatefrom != name:
        upstream = view.member(replicatefrom)
        if serving(upstream) and upstream is not None and upstream.role is Role.REPLICA:
            return replicatefrom
    return view.leader.name if view.leader else None


def slot_towards(obs: Observation, upstream: str | None) -> str | None:
    """The replication slot this member streams through from ``upstream``: its own slot there,
    which the leader keeps for every member and a relay for the members cascading from it
    (rules/slots.py)."""
    return slot_name(obs.name) if upstream is not None else None


def slot_pending(obs: Observation, upstream: str | None) -> str | None:
    """Why this standby keeps streaming from its current upstream rather than switch to the relay
    ``upstream`` now, or None to switch. A walreceiver sent to a relay that has not created this
    member's slot yet is refused, and retries only every ``wal_retrieval_retry_interval`` (5 s):
    the relay creates the slot once it sees this member's ``replicatefrom`` name it (rules/slots.py)
    and lists it in its member record, and the switch happens in the cycle that shows it. Only
    while this standby streams from an upstream that still serves (the leader, or a running
    standby); a relay whose record lists no slots (an older agent) is taken at its word."""
    view, local = obs.view, obs.local
    current = local.configured_upstream
    if upstream is None or current is None or current == upstream or not local.streaming_from:
        return None
    leader = view.leader.name if view.leader is not None else None
    if upstream == leader:
        return None  # the leader keeps a slot for every member (rules/slots.py)
    relay = view.member(upstream)
    slot = slot_towards(obs, upstream)
    if relay is None or relay.slots is None or slot in relay.slots:
        return None
    serving_now = view.member(current)
    still = current == leader or (
        serving(serving_now) and serving_now is not None and serving_now.role is Role.REPLICA
    )
    return f"{upstream} has no replication slot {slot} yet" if still else None
