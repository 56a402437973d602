"""The input of ``decide``: every fact it may use, gathered beforehand by the agent's observer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pgwarden.model import ClusterView, LocalState, Lsn, Role, Tags


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """What a peer's REST API said about itself this cycle; ``reachable=False`` when it did not answer."""

    name: str
    reachable: bool
    role: Role | None = None
    running: bool = False
    in_recovery: bool | None = None
    timeline: int | None = None
    lsn: Lsn | None = None
    tags: Tags = field(default_factory=Tags)
    replayed: Lsn | None = None  # a standby's replay position: what a promotion would keep for sure
    replay_paused: bool = False


class Request(StrEnum):
    """An operator's request for this node, made through its REST API, answered by a decision."""

    RESTART = "restart"
    RELOAD = "reload"
    REINITIALIZE = "reinitialize"


@dataclass(frozen=True, slots=True)
class Memory:
    """The little state ``decide`` carries between calls; it leaves in the Decision and comes back in."""

    # When this leader first saw its PostgreSQL not serving as primary (crash, stuck probe, start).
    unhealthy_primary_since: float | None = None
    # Last time each member was seen in the view, so slots of briefly absent members survive.
    member_last_seen: Mapping[str, float] = field(default_factory=dict)
    # When the local PostgreSQL was first seen running yet not answering the probe.
    probe_failing_since: float | None = None
    # When the last background job (clone, rewind, initdb) failed: retries back off from it.
    job_failed_at: float | None = None
    # Since when fewer standbys stream than synchronous mode wants (synchronous_fallback_after).
    sync_short_since: float | None = None
    # The synchronous spec in force and the primary's position when it was first seen in force:
    # a standby past that position holds every commit acknowledged before it.
    sync_applied: tuple[str, Lsn] | None = None
    # Has this agent seen a leader key since it started? Until it has, a leaderless cluster is a
    # cold start (every agent stopped), and since when it has been waiting for it to fill up.
    saw_leader: bool = False
    cold_start_since: float | None = None
    # When this agent made its first decision: a slot whose member it never saw may belong to one
    # that was there before it started (slots.keeps_unseen_slots).
    first_decision_at: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    name: str
    tags: Tags
    view: ClusterView  # the last view read; stale when ``store_ok`` is False
    store_ok: bool  # did this cycle's read of etcd succeed
    local: LocalState
    now: float  # monotonic seconds
    # Until when this node may act as leader: last renewal *sent* + ttl - margin (safety rule 1);
    # None when this agent holds no leader lease.
    lease_deadline: float | None = None
    peers: Mapping[str, PeerStatus] = field(default_factory=dict)
    memory: Memory = field(default_factory=Memory)
    wall: float = 0.0  # epoch seconds, only for comparing with scheduled times stored in etcd
    requests: frozenset[Request] = frozenset()  # operator requests waiting for this node

    @property
    def holds_lease(self) -> bool:
        return self.lease_deadline is not None and self.now < self.lease_deadline

    @property
    def leader_is_me(self) -> bool:
        return self.view.leader is not None and self.view.leader.name == self.name
