"""The REST health verdicts (200 or 503) as a pure function of the node's latest facts.

The endpoints and their meaning are Patroni's, so existing HAProxy configurations work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pgwarden.model import LocalState, Tags


@dataclass(frozen=True, slots=True)
class HealthFacts:
    holds_leader_key: bool
    local: LocalState
    tags: Tags = field(default_factory=Tags)
    lag: int | None = None  # bytes behind the leader's last known position; None if unknown
    sync_standby: bool = False
    loop_age: float = 0.0  # seconds since the agent's loop last finished
    liveness_limit: float = 10.0


@dataclass(frozen=True, slots=True)
class Query:
    max_lag: int | None = None
    replication_state: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def _is_primary(f: HealthFacts) -> bool:
    return f.holds_leader_key and f.local.is_primary


def _within_lag(f: HealthFacts, q: Query) -> bool:
    return q.max_lag is None or (f.lag is not None and f.lag <= q.max_lag)


def _tags_match(f: HealthFacts, q: Query) -> bool:
    mine = {**{k: str(v) for k, v in f.tags.custom.items()}}
    mine.update(
        nofailover=str(f.tags.nofailover).lower(),
        noloadbalance=str(f.tags.noloadbalance).lower(),
        nosync=str(f.tags.nosync).lower(),
        failover_priority=str(f.tags.failover_priority),
    )
    return all(mine.get(k, "").lower() == v.lower() for k, v in q.tags.items())


def _is_replica(f: HealthFacts, q: Query) -> bool:
    if not f.local.is_standby or f.tags.noloadbalance:
        return False
    if q.replication_state == "streaming" and not f.local.streaming_from:
        return False
    return _within_lag(f, q) and _tags_match(f, q)


def verdict(endpoint: str, f: HealthFacts, q: Query) -> bool:
    """True for 200, False for 503. Unknown endpoints answer 503, as Patroni does."""
    match endpoint:
        case "primary" | "read-write" | "master" | "":
            return _is_primary(f) and _tags_match(f, q)
        case "leader":
            return f.holds_leader_key and f.local.running
        case "standby-leader" | "standby_leader":
            return f.holds_leader_key and f.local.is_standby
        case "replica":
            return _is_replica(f, q)
        case "read-only":
            return _is_primary(f) or _is_replica(f, q)
        case "synchronous" | "sync":
            return f.sync_standby and _is_replica(f, q)
        case "asynchronous" | "async":
            return not f.sync_standby and _is_replica(f, q)
        case "read-only-sync":
            return _is_primary(f) or (f.sync_standby and _is_replica(f, q))
        case "health":
            return f.local.running and f.local.probe_ok
        case "liveness":
            return f.loop_age <= f.liveness_limit
        case "readiness":
            return _is_primary(f) or (f.local.is_standby and _within_lag(f, q))
        case _:
            return False
