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
