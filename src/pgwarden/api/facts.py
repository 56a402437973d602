"""Turns an agent snapshot and a request's query string into the inputs of ``ha.health``."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from pgwarden.agent.lease import monotonic
from pgwarden.agent.snapshot import Snapshot
from pgwarden.config import parse_byte_size
from pgwarden.ha.health import HEALTH_PATHS, HealthFacts, Query
from pgwarden.model import SyncMode

# The paths ``ha.health.verdict`` knows (its one table, aliases included), and the two status
# aliases that always answer 200. Every other GET path answers 503, as Patroni does.
HEALTH_ENDPOINTS: tuple[str, ...] = tuple(HEALTH_PATHS)
STATUS_ENDPOINTS: tuple[str, ...] = ("patroni", "status")


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """The endpoint (``"replica"``) and query parameters of a request target (``"/replica/?lag=1MB"``)."""
    # Not urlsplit: it would read "//primary" as a host name. Slashes around a path don't count.
    path, _, query = target.partition("#")[0].partition("?")
    return path.strip("/"), dict(parse_qsl(query))


def endpoint_of(target: str) -> str:
    """``split_target(target)[0]`` without parsing the query (the event loop's hot path)."""
    return target.partition("#")[0].partition("?")[0].strip("/")


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
    return facts_at(snap, snap.leads_at(now), loop_age(snap, now))


def loop_age(snap: Snapshot, now: float) -> float:
    """Seconds since the agent's loop last finished (0 before the first cycle)."""
    return now - snap.loop_at if snap.loop_at else 0.0


def liveness_limit(snap: Snapshot, leads: bool) -> float:
    """How old the last cycle may be for ``/liveness``: ttl on a leader, 2 x ttl elsewhere."""
    ttl = snap.view.config.ttl
    return ttl if leads else 2 * ttl


def clock_facts(snap: Snapshot, now: float) -> tuple[bool, bool]:
    """The two facts of a snapshot that change with time alone: does it still lead (the lease
    deadline), and is its loop alive. Health answers rendered once per snapshot pick by these."""
    leads = snap.leads_at(now)
    return leads, loop_age(snap, now) <= liveness_limit(snap, leads)


def facts_at(snap: Snapshot, leads: bool, age: float) -> HealthFacts:
    """The health facts of ``snap`` when its lease is (``leads``) or is not still good and its
    loop last finished ``age`` seconds ago."""
    view, local = snap.view, snap.local
    lag = view.lag(snap.config.name, local.replayed_lsn or local.received_lsn, local.timeline)
    sync = view.in_sync_set(snap.config.name)
    return HealthFacts(
        holds_leader_key=leads,
        local=local,
        tags=snap.config.tags,
        lag=lag,
        sync_standby=sync,
        quorum_standby=sync and view.config.synchronous_mode is SyncMode.QUORUM,
        loop_age=age,
        liveness_limit=liveness_limit(snap, leads),
    )
