"""Turns an agent snapshot and a request's query string into the inputs of ``ha.health``."""

from __future__ import annotations

from collections.abc import Mapping

from pgwarden.agent.lease import monotonic
from pgwarden.agent.snapshot import Snapshot
from pgwarden.config import parse_byte_size
from pgwarden.ha.health import HealthFacts, Query

# The paths ``ha.health.verdict`` knows (Patroni's, so HAProxy configurations carry over), and
# the two status aliases that always answer 200. Every other GET path answers 503, as Patroni does.
HEALTH_ENDPOINTS: tuple[str, ...] = (
    "",
    "primary",
    "read-write",
    "master",
    "leader",
    "standby-leader",
    "standby_leader",
    "replica",
    "read-only",
    "synchronous",
    "sync",
    "asynchronous",
    "async",
    "read-only-sync",
    "health",
    "liveness",
    "readiness",
)
STATUS_ENDPOINTS: tuple[str, ...] = ("patroni", "status")


def query_of(params: Mapping[str, str]) -> Query:
    """The health query; raises ValueError naming ``lag`` when it is not a size."""
    lag = params.get("lag")
    try:
        max_lag = parse_byte_size(lag) if lag else None
    except ValueError:
        raise ValueError(f"query parameter lag={lag!r} is not a size; write bytes or e.g. 16MB") from None
    return Query(
        max_lag=max_lag,
        replication_state=params.get("replication_state"),
        tags={k[4:]: v for k, v in params.items() if k.startswith("tag_")},
    )


def facts_of(snap: Snapshot, now: float | None = None) -> HealthFacts:
    """``now``: the monotonic clock the snapshot's lease deadline is on (simulations pass theirs)."""
    now = monotonic() if now is None else now
    view, local = snap.view, snap.local
    config = view.config
    leader_position = None
    if view.status is not None and view.leader is not None and view.status.name == view.leader.name:
        leader_position = view.status.lsn
    elif view.leader_member is not None:
        leader_position = view.leader_member.lsn
    mine = local.replayed_lsn or local.received_lsn
    lag = max(0, leader_position - mine) if leader_position is not None and mine is not None else None
    sync = view.sync
    holds = snap.leads_at(now)
    return HealthFacts(
        holds_leader_key=holds,
        local=local,
        tags=snap.config.tags,
        lag=lag,
        sync_standby=sync is not None and snap.config.name in sync.members,
        loop_age=now - snap.loop_at if snap.loop_at else 0.0,
        liveness_limit=config.ttl if holds else 2 * config.ttl,
    )
