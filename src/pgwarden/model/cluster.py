"""Frozen values describing the cluster as stored in etcd: members, leader, config, sync set, history."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pgwarden.model.lsn import Lsn
from pgwarden.model.parameters import ParameterError

MAX_SLOT_NAME = 63  # PostgreSQL's NAMEDATALEN - 1
_NOT_IN_SLOT_NAMES = re.compile(r"[^a-z0-9_]")


def slot_name(member: str) -> str:
    """The physical replication slot kept for a member: lowercase, every character other than
    [a-z0-9_] replaced by '_', at most 63 characters (Patroni's mapping, so slots survive a move).

    It is not injective (``Node-1``, ``node_1`` and ``node.1`` share ``node_1``): the rule
    ``slot_name_taken`` keeps a newcomer whose slot name is taken out of the cluster.
    """
    name = _NOT_IN_SLOT_NAMES.sub("_", member.lower())[:MAX_SLOT_NAME]
    if not name:
        raise ValueError("a member name is needed to name its slot")
    return name


class StoreKey(StrEnum):
    """The cluster's keys in etcd, relative to its prefix (layout and leases: ``pgwarden.dcs.keys``).

    Member records live under ``members/<name>``; ``member_key`` names one.
    """

    INITIALIZE = "initialize"
    CONFIG = "config"
    LEADER = "leader"
    STATUS = "status"
    SYNC = "sync"
    HISTORY = "history"
    SWITCHOVER = "switchover"
    SWITCHOVER_OUTCOME = "switchover_outcome"
    FAILSAFE = "failsafe"


MEMBERS = "members/"


def member_key(name: str) -> str:
    """The key of ``name``'s member record, relative to the cluster's prefix."""
    return MEMBERS + name


class Role(StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"
    STANDBY_LEADER = "standby_leader"
    UNINITIALIZED = "uninitialized"


class PgState(StrEnum):
    """What a member's PostgreSQL is doing, as shown in the API (Patroni's vocabulary)."""

    RUNNING = "running"
    STARTING = "starting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CRASHED = "crashed"
    CREATING_REPLICA = "creating replica"
    REWINDING = "rewinding"
    INITIALIZING = "initializing new cluster"
    RESTARTING = "restarting"
    PROMOTING = "promoting"
    UNKNOWN = "unknown"


class SyncMode(StrEnum):
    OFF = "off"
    ON = "on"
    QUORUM = "quorum"


class SyncFallback(StrEnum):
    """What the primary does when no synchronous standby is available."""

    BLOCK = "block"  # writes wait: RPO 0 always
    DEGRADE = "degrade"  # fall back to asynchronous after synchronous_fallback_after seconds


@dataclass(frozen=True, slots=True)
class Tags:
    """Per-member tags from the node config; custom tags are free-form strings."""

    nofailover: bool = False
    noloadbalance: bool = False
    nosync: bool = False
    failover_priority: int = 1
    sync_priority: int = 1
    clonefrom: bool = False
    replicatefrom: str | None = None
    custom: Mapping[str, str] = field(default_factory=dict)


# The longest reason code, reason and progress a member record carries (shown, never acted on).
MAX_REASON_CODE = 100
MAX_REASON = 500
MAX_PROGRESS = 100


@dataclass(frozen=True, slots=True)
class Member:
    """What one agent publishes about itself under ``members/<name>``, on its own lease."""

    name: str
    api_url: str
    host: str
    port: int
    role: Role = Role.UNINITIALIZED
    state: PgState = PgState.STOPPED
    timeline: int | None = None
    lsn: Lsn | None = None  # primary: current WAL write position; standby: furthest received/replayed
    tags: Tags = field(default_factory=Tags)
    pending_restart: bool = False
    version: str = ""
    # What waits for a restart: parameter name -> (running value, configured value).
    pending_restart_reason: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    scheduled_restart: float | None = None  # epoch seconds of a restart scheduled on this member
    # When the member key was created (its etcd create_revision; 0 when not read from etcd): of two
    # newcomers sharing a slot name, the one registered first may join. Bookkeeping of the store,
    # never published, and no part of what the member says about itself (not compared).
    registered: int = field(default=0, compare=False)
    config_errors: tuple[ParameterError, ...] = ()  # settings its PostgreSQL refuses
    # Set while this member's HA loop fails with internal errors (how many in a row, the last one),
    # so `pgwarden list` shows a crash loop; None while its cycles complete.
    loop_error: str | None = None
    # The agent's last decision (ha/reasons.py): its code and sentence, so that whoever reads the
    # cluster from etcd (list, the web view) sees why each member does what it does.
    # Each kept to its length below by whoever writes the record (agent/member_record.py), so a
    # record read back from etcd equals the one written and an idle member rewrites nothing.
    reason_code: str = ""
    reason: str = ""
    progress: str = ""  # a running clone's or rewind's progress, as its tool last reported it
    # A standby's two positions and whether its WAL receiver streams (Patroni's /cluster shows
    # them); None from agents older than these fields.
    receive_lsn: Lsn | None = None
    replay_lsn: Lsn | None = None
    streaming: bool | None = None
    # A standby's physical replication slots by name (a relay's: one per member cascading from
    # it), so a member retagged to stream from it switches once its slot is there rather than be
    # refused; None on a primary, when not listed this cycle, or from agents older than the field.
    slots: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Leader:
    """The leader key: who may run PostgreSQL read-write (safety rule 1).

    A key that is present but whose value is no member name (junk written by hand, non-UTF-8,
    empty) is still a held key: ``readable`` is False and ``name`` is "", which names no member.
    Reading it as "no leader" would make its holder believe it lost the key and demote.
    """

    name: str
    revision: int = 0  # etcd mod_revision of the key: change detection, and the compare of a rewrite
    readable: bool = True


@dataclass(frozen=True, slots=True)
class LeaderStatus:
    """The leader's last published WAL position, used to bound failover lag (safety rule 3), and
    the membership it saw: itself and every member present within ``member_slots_ttl`` (empty
    when written by an agent older than the field). It outlives every lease, so after a full
    stop it still names the last leader and the members a cold start waits for."""

    name: str
    timeline: int
    lsn: Lsn
    slots: Mapping[str, Lsn] = field(default_factory=dict)
    members: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SyncState:
    """The published synchronous set; only its members may promote in synchronous mode (rule 4)."""

    leader: str | None
    members: frozenset[str] = frozenset()
    quorum: int = 0  # how many of ``members`` must acknowledge a commit (ANY k); 0 = async
    degraded_since: float | None = None  # epoch seconds when the primary fell back to async


# The claim that nobody is known to hold every acknowledged commit, so nobody may promote on it
# (rule 4): what a new leader stands by until it has claimed anew, and what an unreadable sync
# key reads as.
NO_CLAIM_HOLDER = SyncState(leader=None, members=frozenset(), quorum=1)


PROMOTION = "promotion"
SYNC_DEGRADED = "sync degraded"
SYNC_RESTORED = "sync restored"
FAILSAFE = "failsafe"  # the leader kept writing through an etcd outage on its members' promises


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One promotion (``timeline`` began at ``switch_lsn``, where the previous one ended), or
    another event worth keeping beside them: synchronous replication degraded or restored, an
    etcd outage ridden out in failsafe mode."""

    timeline: int
    switch_lsn: Lsn
    reason: str
    timestamp: str  # ISO 8601, UTC
    new_leader: str
    event: str = PROMOTION

    @property
    def promotion(self) -> bool:
        return self.event == PROMOTION


@dataclass(frozen=True, slots=True)
class SwitchoverIntent:
    """An operator's request for a planned switchover (or a forced failover when ``leader`` is None)."""

    leader: str | None
    candidate: str | None
    scheduled_at: float | None = None  # epoch seconds; None = now
    failover: bool = False  # POST /failover: promote the candidate even without a healthy leader
    # Epoch seconds after which the intent is void: members race normally again and the leader
    # drops it, so a candidate that never takes over cannot leave the cluster leaderless.
    deadline: float | None = None

    def active(self, wall: float) -> bool:
        return self.deadline is None or wall < self.deadline

    def due(self, wall: float) -> bool:
        return self.scheduled_at is None or wall >= self.scheduled_at


@dataclass(frozen=True, slots=True)
class DynamicConfig:
    """The cluster-wide config kept in etcd and edited live (``edit-config``, ``PATCH /config``)."""

    ttl: float = 4.0
    loop_wait: float = 1.0
    retry_timeout: float = 1.5
    maximum_lag_on_failover: int = 1024 * 1024
    primary_start_timeout: float = 10.0
    member_slots_ttl: float = 1800.0
    max_slot_wal_keep_size: str = "4GB"
    synchronous_mode: SyncMode = SyncMode.OFF
    synchronous_node_count: int = 1
    synchronous_fallback: SyncFallback = SyncFallback.DEGRADE
    synchronous_fallback_after: float = 5.0
    # After a full stop, how long members other than the last leader wait for it and for a
    # majority of the last membership before racing anyway (ha/rules/cold_start.py).
    cold_start_timeout: float = 30.0
    use_pg_rewind: bool = True
    remove_data_directory_on_diverged_timelines: bool = False
    parameters: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    pause: bool = False
    # While etcd cannot be read, the leader keeps writing only while every member of the last
    # published topology promises over the REST API not to promote or follow anyone else.
    failsafe_mode: bool = False

    @property
    def max_slot_wal_keep_bytes(self) -> int | None:
        """``max_slot_wal_keep_size`` in bytes, as PostgreSQL reads it (a bare number is
        megabytes; units are 1024-based); None for -1, no limit."""
        return pg_size_bytes(self.max_slot_wal_keep_size)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """Everything one range read of the cluster prefix returns, decoded."""

    name: str
    initialize: str | None = None  # the PostgreSQL system identifier, once bootstrapped
    config: DynamicConfig = field(default_factory=DynamicConfig)
    leader: Leader | None = None
    members: tuple[Member, ...] = ()
    status: LeaderStatus | None = None
    sync: SyncState | None = None
    history: tuple[HistoryEntry, ...] = ()
    switchover: SwitchoverIntent | None = None
    revision: int = 0
    bootstrapping: str | None = None  # member racing to initdb, while ``initialize`` is pending
    # mod_revision of the config key (0: absent), for compare-and-set edits of what was read here
    config_revision: int = 0
    # The failsafe topology the leader last published (member name -> REST API URL), or None:
    # with failsafe_mode on, only its members may race for the key.
    failsafe: Mapping[str, str] | None = None
    # Members whose record names an address outside this node's member_networks, left out of
    # ``members`` (model/trust.py): member name -> why. Never stored; not what etcd holds.
    untrusted: Mapping[str, str] = field(default_factory=dict, compare=False)
    # While the stored topology is unreadable (``failsafe`` then reads {}, a topology of nobody:
    # no member may race), the last valid one this agent read (None: it read none). The observer
    # keeps it (`pgwarden.agent.last_good`) so that a leader still asks its members to promise
    # and keeps them in the topology it republishes (``ha.rules.failsafe.known_topology``).
    failsafe_last_good: Mapping[str, str] | None = None
    # Keys present in etcd whose value could not be read (relative key -> why): each is read as
    # the safe reading documented in docs/faults.md ("bad input"), never as absent by accident.
    unreadable: Mapping[str, str] = field(default_factory=dict)
    # Keys of the stored config this version does not know (a newer agent wrote them): ignored.
    config_ignored: tuple[str, ...] = ()
    history_folded: int = 0  # promotions and events older than ``history``, dropped to bound the key

    @property
    def initialized(self) -> bool:
        """The cluster was bootstrapped: its system identifier is known, or stored but unreadable."""
        return self.initialize is not None or StoreKey.INITIALIZE in self.unreadable

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    @property
    def sync_set(self) -> frozenset[str] | None:
        """The synchronous set in force: the members the published claim says hold every commit,
        the only ones that may promote (safety rule 4); None when no claim is in force
        (synchronous_mode off, no claim, or a claim of quorum 0: asynchronous, or degraded)."""
        claim = self.sync
        if self.config.synchronous_mode is SyncMode.OFF or claim is None or claim.quorum <= 0:
            return None
        return claim.members

    def in_sync_set(self, name: str) -> bool:
        """``name`` is in the synchronous set in force (``sync_set``)."""
        members = self.sync_set
        return members is not None and name in members

    @property
    def last_leader(self) -> str | None:
        """Who led last, by the newest record: the leader's status, or a later promotion in the
        history (a new leader that died before it published its status)."""
        promotions = [e for e in self.history if e.promotion]
        newest = max(promotions, key=lambda e: e.timeline, default=None)
        if newest is not None and (self.status is None or newest.timeline > self.status.timeline):
            return newest.new_leader
        return self.status.name if self.status is not None else None

    @property
    def leader_member(self) -> Member | None:
        return self.member(self.leader.name) if self.leader else None

    # --- where the leader is, and how far a member is behind it: the one home of both facts ---

    @property
    def leader_position(self) -> Lsn | None:
        """The furthest WAL position the leader (the holder of the leader key) is known to have
        reached; None without a leader or a published position.

        The leader publishes its position twice: in the status key while it acts and in its member
        key after, from a fresher probe. Its WAL certainly reached both, so the furthest is the
        closest known bound (taking the status first would understate every standby's lag by up to
        one cycle's writes). The status counts only when it names the leader and is not from an
        older timeline than the leader's member key: one left from an earlier term of the same
        name says nothing of this one.
        """
        if self.leader is None:
            return None
        leader = self.leader_member
        positions = [leader.lsn] if leader is not None and leader.lsn is not None else []
        status = self.status
        if status is not None and status.name == self.leader.name:
            older = leader is not None and leader.timeline is not None and status.timeline < leader.timeline
            if not older:
                positions.append(status.lsn)
        return max(positions, default=None)

    def lag(self, name: str, lsn: Lsn | None, timeline: int | None, failover: bool = False) -> int | None:
        """How many bytes member ``name``, at ``lsn`` on ``timeline``, is behind the leader's
        position; 0 for the leader itself and for a member at or past it (a published position
        trails the leader's WAL by a moment). None when unknown: either position unknown, or the
        reference is from an older timeline than the member's (a leader that died before
        publishing its new timeline's position: a bound from the old one would stall a failover
        for ever, so there is none).

        ``failover``: without a leader, reckon from the last leader's status (what a failover
        candidate must not lag behind, safety rule 3), unless ``name`` wrote it itself.
        """
        if self.leader is not None and name == self.leader.name:
            return 0
        reference = self._position_reference(name, failover)
        if reference is None or lsn is None:
            return None
        ref_timeline, position = reference
        if ref_timeline is not None and timeline is not None and ref_timeline < timeline:
            return None
        return max(0, position - lsn)

    def _position_reference(self, name: str, failover: bool) -> tuple[int | None, Lsn] | None:
        """The (timeline, position) the lag of member ``name`` is measured from, or None."""
        if self.leader is not None:
            position = self.leader_position
            if position is None:
                return None
            leader = self.leader_member
            timeline = leader.timeline if leader is not None else None
            if timeline is None and self.status is not None and self.status.name == self.leader.name:
                timeline = self.status.timeline
            return timeline, position
        if failover and self.status is not None and self.status.name != name:
            return self.status.timeline, self.status.lsn
        return None

    def slot_rival(self, name: str) -> Member | None:
        """Another member that keeps the slot name ``name`` would take, ranked first by: holding
        the leader key, having joined (it has data: primary or replica), registering first (a
        name not registered yet comes last). None when ``name`` itself ranks first."""
        leader = self.leader.name if self.leader is not None else None

        def rank(m: Member) -> tuple[bool, bool, float, str]:
            return (m.name != leader, m.role is Role.UNINITIALIZED, m.registered, m.name)

        me = self.member(name)
        mine = rank(me) if me is not None else (name != leader, True, float("inf"), name)
        slot = slot_name(name)
        rivals = [m for m in self.members if m.name != name and slot_name(m.name) == slot]
        best = min(rivals, key=rank, default=None)
        return best if best is not None and rank(best) < mine else None


_PG_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def pg_size_bytes(text: str, default_unit: str = "MB") -> int | None:
    """A PostgreSQL size setting (``4GB``, ``512``, ``-1``) in bytes; None for -1 or a text that
    is not one (the config parser has refused those before they get here)."""
    value = text.strip()
    digits = value.rstrip("BkMGT").strip()
    unit = value[len(digits) :].strip() or default_unit
    if not digits.isdigit() or unit not in _PG_UNITS:
        return None
    return int(digits) * _PG_UNITS[unit]
