"""Builders for ``decide`` inputs, so each test spells out only what its situation needs.

Defaults describe a healthy three-node cluster on timeline 1 led by node1, seen by node2:
override only what makes the case. LSNs are written as PostgreSQL prints them ("0/3000000").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pgwarden.ha.observation import Memory, Observation, PeerStatus, Promise, Request
from pgwarden.model import (
    NO_CLAIM_HOLDER,
    ClusterView,
    ControlState,
    DataDir,
    DataDirOrigin,
    DynamicConfig,
    HistoryEntry,
    Job,
    JobKind,
    Leader,
    LeaderStatus,
    LocalState,
    Lsn,
    Member,
    PgState,
    Role,
    SwitchoverIntent,
    SyncMode,
    SyncState,
    Tags,
)

SYSTEM_ID = "7300000000000000001"
OTHER_SYSTEM_ID = "7399999999999999999"
NOW = 100.0
# The agent started long before: past every member_slots_ttl (a just-started agent keeps unseen slots).
STARTED = NOW - 100_000.0
WALL = 1_800_000_000.0  # epoch seconds of the observation, for switchover schedules and deadlines

LsnLike = str | int | Lsn
DATA_DIR = "/var/lib/postgresql/15/main"
# pgwarden made the data directory (its marker names it): the usual case, so the default.
MARKED = DataDirOrigin(path=DATA_DIR, marked=True, marker=f"marker {DATA_DIR}.pgwarden")
UNMARKED = DataDirOrigin(path=DATA_DIR, marked=False, marker=f"no marker {DATA_DIR}.pgwarden")


def as_lsn(value: LsnLike) -> Lsn:
    if isinstance(value, Lsn):
        return value
    return Lsn(value) if isinstance(value, int) else Lsn.parse(value)


def _maybe_lsn(value: LsnLike | None) -> Lsn | None:
    return None if value is None else as_lsn(value)


def tags(**changes: Any) -> Tags:
    return replace(Tags(), **changes)


def config(**changes: Any) -> DynamicConfig:
    return replace(DynamicConfig(), **changes)


# --- what etcd holds ---------------------------------------------------------------------------


def member(
    name: str,
    role: Role = Role.REPLICA,
    *,
    state: PgState = PgState.RUNNING,
    lsn: LsnLike | None = "0/3000000",
    timeline: int | None = 1,
    **tag_changes: Any,
) -> Member:
    number = int(name[-1]) if name[-1].isdigit() else 0
    return Member(
        name=name,
        api_url=api_url(name),
        host="127.0.0.1",
        port=5432 + number,
        role=role,
        state=state,
        timeline=timeline,
        lsn=_maybe_lsn(lsn),
        tags=tags(**tag_changes),
    )


def primary_member(
    name: str = "node1",
    *,
    state: PgState = PgState.RUNNING,
    lsn: LsnLike | None = "0/3000000",
    timeline: int = 1,
) -> Member:
    return member(name, Role.PRIMARY, state=state, lsn=lsn, timeline=timeline)


def status(
    name: str = "node1", lsn: LsnLike = "0/3000000", timeline: int = 1, members: Iterable[str] = ()
) -> LeaderStatus:
    return LeaderStatus(name=name, timeline=timeline, lsn=as_lsn(lsn), members=frozenset(members))


def fork(timeline: int, switch_lsn: LsnLike, new_leader: str = "node1") -> HistoryEntry:
    """The promotion that began ``timeline`` at ``switch_lsn``."""
    return HistoryEntry(
        timeline=timeline,
        switch_lsn=as_lsn(switch_lsn),
        reason="failover",
        timestamp="2024-01-01T00:00:00Z",
        new_leader=new_leader,
    )


def sync_set(*members: str, leader: str | None = "node1", quorum: int = 1) -> SyncState:
    return SyncState(leader=leader, members=frozenset(members), quorum=quorum)


def intent(
    candidate: str | None = "node2",
    leader: str | None = "node1",
    *,
    scheduled_at: float | None = None,
    deadline: float | None = WALL + 30,
    failover: bool = False,
) -> SwitchoverIntent:
    return SwitchoverIntent(
        leader=leader, candidate=candidate, scheduled_at=scheduled_at, failover=failover, deadline=deadline
    )


def default_members() -> tuple[Member, ...]:
    return (primary_member("node1"), member("node2"), member("node3"))


def view(
    leader: str | None = "node1",
    members: Iterable[Member] | None = None,
    config: DynamicConfig | None = None,
    status: LeaderStatus | None = None,
    history: Iterable[HistoryEntry] = (),
    sync: SyncState | None = None,
    initialize: str | None = SYSTEM_ID,
    bootstrapping: str | None = None,
    switchover: SwitchoverIntent | None = None,
) -> ClusterView:
    return ClusterView(
        name="demo",
        initialize=initialize,
        config=config or DynamicConfig(),
        leader=Leader(leader, revision=7) if leader else None,
        members=default_members() if members is None else tuple(members),
        status=status,
        sync=sync,
        history=tuple(history),
        bootstrapping=bootstrapping,
        switchover=switchover,
    )


def with_junk(base: ClusterView, **why: str) -> ClusterView:
    """``base`` with the named keys unreadable, read as ClusterStore reads them: a junk leader key
    is still held, a junk sync claim is nobody's (each ``key=why``)."""
    changes: dict[str, Any] = {"unreadable": {**base.unreadable, **why}}
    if "leader" in why:
        changes["leader"] = Leader("", revision=9, readable=False)
    if "sync" in why:
        changes["sync"] = NO_CLAIM_HOLDER
    if "initialize" in why:
        changes["initialize"] = None
    if "switchover" in why:
        changes["switchover"] = None
    if "failsafe" in why:
        changes["failsafe"] = {}
    return replace(base, **changes)


def _healthy_view() -> ClusterView:
    return view()


def uninitialized_view(bootstrapping: str | None = None, leader: str | None = None) -> ClusterView:
    members = [
        member(n, Role.UNINITIALIZED, state=PgState.STOPPED, lsn=None, timeline=None)
        for n in ("node1", "node2", "node3")
    ]
    return view(leader=leader, members=members, initialize=None, bootstrapping=bootstrapping)


def failsafe_view(
    topology: Iterable[str] | None = ("node1", "node2", "node3"), **changes: Any
) -> ClusterView:
    """``view(**changes)`` with failsafe_mode on and ``topology`` published (None: not yet)."""
    changes.setdefault("config", config(failsafe_mode=True))
    base = view(**changes)
    stored = None if topology is None else {name: api_url(name) for name in topology}
    return replace(base, failsafe=stored)


def api_url(name: str) -> str:
    """The REST API URL ``member(name)`` publishes."""
    number = int(name[-1]) if name[-1].isdigit() else 0
    return f"http://127.0.0.1:{8008 + number}"


def sync_config(**changes: Any) -> DynamicConfig:
    return config(synchronous_mode=SyncMode.ON, **changes)


# --- the local PostgreSQL ----------------------------------------------------------------------


def job(
    kind: JobKind,
    *,
    running: bool = False,
    ok: bool | None = None,
    error: str | None = None,
    progress: str = "",
) -> Job:
    return Job(kind=kind, running=running, ok=ok, error=error, progress=progress)


def failed(kind: JobKind, error: str = "boom") -> Job:
    return job(kind, ok=False, error=error)


def primary_local(lsn: LsnLike = "0/3000000", timeline: int = 1, system_id: str = SYSTEM_ID) -> LocalState:
    return LocalState(
        data_dir=DataDir.VALID,
        origin=MARKED,
        system_id=system_id,
        control_state=ControlState.IN_PRODUCTION,
        control_timeline=timeline,
        running=True,
        probe_ok=True,
        in_recovery=False,
        timeline=timeline,
        write_lsn=as_lsn(lsn),
    )


def standby_local(
    received: LsnLike | None = "0/3000000",
    replayed: LsnLike | None = None,
    upstream: str | None = "node1",
    timeline: int = 1,
    system_id: str = SYSTEM_ID,
    job: Job | None = None,
) -> LocalState:
    return LocalState(
        data_dir=DataDir.VALID,
        origin=MARKED,
        system_id=system_id,
        control_state=ControlState.IN_ARCHIVE_RECOVERY,
        control_timeline=timeline,
        running=True,
        probe_ok=True,
        in_recovery=True,
        timeline=timeline,
        received_lsn=_maybe_lsn(received),
        replayed_lsn=_maybe_lsn(replayed),
        configured_upstream=upstream,
        job=job,
    )


def stopped_local(
    control_state: ControlState = ControlState.SHUT_DOWN_IN_RECOVERY,
    timeline: int = 1,
    checkpoint: LsnLike | None = "0/2000000",
    system_id: str = SYSTEM_ID,
    job: Job | None = None,
) -> LocalState:
    return LocalState(
        data_dir=DataDir.VALID,
        origin=MARKED,
        system_id=system_id,
        control_state=control_state,
        control_timeline=timeline,
        control_lsn=_maybe_lsn(checkpoint),
        job=job,
    )


def unprobed_local(control_state: ControlState = ControlState.IN_PRODUCTION, timeline: int = 1) -> LocalState:
    """The postmaster is alive but the SQL probe did not answer: starting, hung, or out of connections."""
    return LocalState(
        data_dir=DataDir.VALID,
        origin=MARKED,
        system_id=SYSTEM_ID,
        control_state=control_state,
        control_timeline=timeline,
        running=True,
        probe_ok=False,
    )


def empty_local(job: Job | None = None) -> LocalState:
    return LocalState(data_dir=DataDir.MISSING, origin=MARKED, job=job)


def incomplete_local(job: Job | None = None, origin: DataDirOrigin = MARKED) -> LocalState:
    """Files without a usable pg_control: by default an interrupted clone of pgwarden's."""
    return LocalState(data_dir=DataDir.INCOMPLETE, origin=origin, job=job)


def unmarked(local: LocalState, found: str = "", hint: str = "") -> LocalState:
    """``local`` in a directory pgwarden's marker does not name (made by hand, or by an older pgwarden)."""
    return replace(local, origin=replace(UNMARKED, found=found, hint=hint))


# --- the observation ---------------------------------------------------------------------------


def peer(
    name: str,
    *,
    role: Role = Role.REPLICA,
    lsn: LsnLike | None = "0/3000000",
    timeline: int | None = 1,
    reachable: bool = True,
    running: bool = True,
    in_recovery: bool | None = None,
    replayed: LsnLike | None = None,
    **tag_changes: Any,
) -> PeerStatus:
    if in_recovery is None and running:
        in_recovery = role is not Role.PRIMARY
    return PeerStatus(
        name=name,
        reachable=reachable,
        role=role,
        running=running,
        in_recovery=in_recovery,
        timeline=timeline,
        lsn=_maybe_lsn(lsn),
        tags=tags(**tag_changes),
        replayed=_maybe_lsn(replayed),
    )


def unreachable(name: str) -> PeerStatus:
    return PeerStatus(name=name, reachable=False)


def observation(
    name: str = "node2",
    view: ClusterView | None = None,
    local: LocalState | None = None,
    peers: Iterable[PeerStatus] = (),
    now: float = NOW,
    lease_deadline: float | None = None,
    memory: Memory | None = None,
    store_ok: bool = True,
    tags: Tags | None = None,
    wall: float = WALL,
    requests: Iterable[Request] = (),
    watchdog_ready: bool = True,
    failsafe_deadline: float | None = None,
    promise: Promise | None = None,
    agent_started: float = float("-inf"),
    **tag_changes: Any,
) -> Observation:
    the_view = view if view is not None else _healthy_view()
    if tags is None:
        mine = the_view.member(name)
        tags = replace(mine.tags if mine else Tags(), **tag_changes)
    return Observation(
        name=name,
        tags=tags,
        view=the_view,
        store_ok=store_ok,
        local=local if local is not None else standby_local(),
        now=now,
        lease_deadline=lease_deadline,
        peers={p.name: p for p in peers},
        memory=memory or Memory(first_decision_at=STARTED),
        wall=wall,
        requests=frozenset(requests),
        watchdog_ready=watchdog_ready,
        failsafe_deadline=failsafe_deadline,
        promise=promise,
        agent_started=agent_started,
    )


def memory(
    unhealthy_primary_since: float | None = None,
    member_last_seen: Mapping[str, float] | None = None,
    job_failed_at: float | None = None,
    saw_leader: bool = False,
    cold_start_since: float | None = None,
    first_decision_at: float | None = None,
) -> Memory:
    return Memory(
        first_decision_at=STARTED if first_decision_at is None else first_decision_at,
        unhealthy_primary_since=unhealthy_primary_since,
        member_last_seen=dict(member_last_seen or {}),
        job_failed_at=job_failed_at,
        saw_leader=saw_leader,
        cold_start_since=cold_start_since,
    )
