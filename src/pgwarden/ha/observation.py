"""The input of ``decide``: every fact it may use, gathered beforehand by the agent's observer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from pgwarden.model import ClusterView, LocalState, Lsn, ReinitializeOptions, RestartConditions, Role, Tags
from pgwarden.model.deadline import holds

if TYPE_CHECKING:
    from pgwarden.ha.sync import SyncPlan


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
    # Its agent's loop fails with internal errors: it cannot race or promote, so it is no rival.
    loop_failing: bool = False


@dataclass(frozen=True, slots=True)
class Promise:
    """What this member promised a leader that writes without etcd (``POST /failsafe``): to promote
    no one and follow no one else until ``until`` (monotonic seconds, this member's clock)."""

    leader: str
    until: float


@dataclass(frozen=True, slots=True)
class FailsafeEpisode:
    """An etcd outage this leader went through with failsafe_mode on, kept until history records it."""

    began: float  # epoch seconds of the first cycle that could not read etcd
    relied: bool = False  # PostgreSQL wrote past the etcd lease on the members' promises
    stopped: bool = False  # PostgreSQL did not run as primary at some cycle of the outage
    ended: float | None = None  # epoch seconds of the first cycle that read etcd again
    members: tuple[str, ...] = ()  # who was asked to promise, last time


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
    # The etcd outage this leader rode out in failsafe mode, until its history entry is written.
    failsafe: FailsafeEpisode | None = None
    # When this agent made its first decision: a slot whose member it never saw may belong to one
    # that was there before it started (slots.keeps_unseen_slots).
    first_decision_at: float | None = None
    # The name the leader key held when it was last readable: tells its holder an unreadable key
    # (junk written over it) is its own to rewrite.
    leader_seen: str | None = None
    # (postmaster start time, highest timeline this standby was seen receiving): rules/timeline.py.
    standby_timeline: tuple[float, int] | None = None


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
    # What the pending restart and reinitialize requests ask beyond their kind (Patroni's bodies),
    # and the conditions of the restart scheduled on this node, checked when it falls due.
    restart_conditions: RestartConditions = field(default_factory=RestartConditions)
    reinitialize_options: ReinitializeOptions = field(default_factory=ReinitializeOptions)
    scheduled_restart_conditions: RestartConditions = field(default_factory=RestartConditions)
    # False only when watchdog.mode is required and the device cannot be used: this node must
    # neither take nor keep the leader key (Patroni's semantics).
    watchdog_ready: bool = True
    # Until when every member asked over POST /failsafe promised this leader not to promote or
    # follow anyone else: last confirmed round *sent* + ttl - margin, as the lease (safety rule 1).
    failsafe_deadline: float | None = None
    promise: Promise | None = None  # the promise this member gave a failsafe leader, if any
    # Monotonic time this agent process started: a promise given before a restart is forgotten
    # with the process, so a member keeps it by not racing for ttl after its start.
    agent_started: float = float("-inf")
    # Worked out from the facts above, once per cycle, by ``decide`` before the rules (ha/sync.py).
    sync_plan: SyncPlan | None = None

    @property
    def holds_lease(self) -> bool:
        """The etcd lease of the leader key is certainly still ours."""
        return holds(self.lease_deadline, self.now)

    @property
    def holds_failsafe(self) -> bool:
        """Every member asked last promised us, and those promises certainly still hold."""
        return holds(self.failsafe_deadline, self.now)

    @property
    def may_write(self) -> bool:
        """Safety rule 1 with failsafe_mode: PostgreSQL may run read-write while either holds."""
        return self.holds_lease or self.holds_failsafe

    @property
    def write_deadline(self) -> float | None:
        """The later of the two deadlines: what the lease guard (and the fence) enforce."""
        known = [d for d in (self.lease_deadline, self.failsafe_deadline) if d is not None]
        return max(known, default=None)

    @property
    def promised_to(self) -> str | None:
        """The leader this member promised, while the promise holds."""
        promise = self.promise
        return promise.leader if promise is not None and holds(promise.until, self.now) else None

    @property
    def leader_is_me(self) -> bool:
        return self.view.leader is not None and self.view.leader.name == self.name
