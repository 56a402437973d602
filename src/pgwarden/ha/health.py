"""The REST health verdicts (200 or 503) as a pure function of the node's latest facts.

The endpoints and their meaning are Patroni's, so existing HAProxy configurations work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pgwarden.model import LocalState, Tags


@dataclass(frozen=True, slots=True)
class HealthFacts:
    holds_leader_key: bool
    local: LocalState
    tags: Tags = field(default_factory=Tags)
    lag: int | None = None  # bytes behind the leader's last known position; None if unknown
    sync_standby: bool = False  # in the synchronous set in force
    quorum_standby: bool = False  # ... and synchronous_mode is quorum
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


_Check = Callable[[HealthFacts, Query], bool]


@dataclass(frozen=True, slots=True)
class HealthEndpoint:
    """One health check: its path, the other paths that answer the same, what 200 means."""

    path: str
    meaning: str
    check: _Check
    aliases: tuple[str, ...] = ()


def _primary(f: HealthFacts, q: Query) -> bool:
    return _is_primary(f) and _tags_match(f, q)


# The one table of health endpoints: the API's routes (api/facts.py), docs/openapi.json and
# docs/rest-api.md's table derive from it. Paths and meanings are Patroni's, so HAProxy
# configurations carry over; every other GET path answers 503, as Patroni's does.
HEALTH_TABLE: tuple[HealthEndpoint, ...] = (
    HealthEndpoint(
        "primary",
        "this node holds the leader key and PostgreSQL runs read-write",
        _primary,
        ("", "read-write", "master"),
    ),
    HealthEndpoint(
        "leader",
        "this node holds the leader key (primary, or leader of a standby cluster)",
        lambda f, q: f.holds_leader_key and f.local.running,
    ),
    HealthEndpoint(
        "standby-leader",
        "this node leads a standby cluster",
        lambda f, q: f.holds_leader_key and f.local.is_standby,
        ("standby_leader",),
    ),
    HealthEndpoint(
        "replica", "PostgreSQL runs as a streaming standby without the noloadbalance tag", _is_replica
    ),
    HealthEndpoint(
        "read-only",
        "as /replica, or this node is the primary",
        lambda f, q: _is_primary(f) or _is_replica(f, q),
    ),
    HealthEndpoint(
        "synchronous",
        "this node is a synchronous standby",
        lambda f, q: f.sync_standby and _is_replica(f, q),
        ("sync",),
    ),
    HealthEndpoint(
        "asynchronous",
        "this node is an asynchronous standby",
        lambda f, q: not f.sync_standby and _is_replica(f, q),
        ("async",),
    ),
    HealthEndpoint(
        "read-only-sync",
        "this node is the primary or a synchronous standby",
        lambda f, q: _is_primary(f) or (f.sync_standby and _is_replica(f, q)),
    ),
    HealthEndpoint(
        "quorum",
        "this node is a quorum standby (synchronous_mode: quorum, and in the synchronous set)",
        lambda f, q: f.quorum_standby and _is_replica(f, q),
    ),
    HealthEndpoint(
        "read-only-quorum",
        "this node is the primary or a quorum standby",
        lambda f, q: _is_primary(f) or (f.quorum_standby and _is_replica(f, q)),
    ),
    HealthEndpoint(
        "health", "PostgreSQL is up and answers queries", lambda f, q: f.local.running and f.local.probe_ok
    ),
    HealthEndpoint(
        "liveness",
        "the agent's loop ran recently (within ttl on the leader, 2 x ttl elsewhere)",
        lambda f, q: f.loop_age <= f.liveness_limit,
    ),
    HealthEndpoint(
        "readiness",
        "this node leads, or PostgreSQL runs as a standby within ?lag=",
        lambda f, q: _is_primary(f) or (f.local.is_standby and _within_lag(f, q)),
    ),
)
# Every path, aliases included -> its endpoint.
HEALTH_PATHS: Mapping[str, HealthEndpoint] = {path: e for e in HEALTH_TABLE for path in (e.path, *e.aliases)}


def verdict(endpoint: str, f: HealthFacts, q: Query) -> bool:
    """True for 200, False for 503. Unknown endpoints answer 503, as Patroni does."""
    found = HEALTH_PATHS.get(endpoint)
    return found is not None and found.check(f, q)
