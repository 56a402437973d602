"""Properties of ``decide`` over random cluster views: one writer, key before promotion, safe prefixes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from pgwarden.ha.actions import (
    AcquireLeader,
    Action,
    AdoptDataDir,
    Demote,
    Promote,
    ReleaseLeader,
    StartPrimary,
    StopPostgres,
    WipeDataDir,
)
from pgwarden.ha.decide import decide
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Memory, Observation, PeerStatus, Request
from pgwarden.ha.rules.datadir import removal_refusal
from pgwarden.ha.rules.jobs import RETRY_AFTER
from pgwarden.model import (
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
    SyncMode,
    SyncState,
    Tags,
)
from tests.support import builders
from tests.support.builders import OTHER_SYSTEM_ID, SYSTEM_ID

NAMES = ("node1", "node2", "node3", "node4")
NOW = 1000.0
MIB = 2**20
FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

WRITES = (Promote, StartPrimary)
STOPS = (Demote, StopPostgres)

lsns = st.integers(0, 8 * MIB).map(Lsn)
timelines = st.integers(1, 3)
rarely = st.sampled_from([False, False, False, True])
mostly = st.sampled_from([True, True, True, False])


# --- strategies ----------------------------------------------------------------------------------


@st.composite
def sync_claims(
    draw: st.DrawFn, names: list[str], leaders: st.SearchStrategy[str], every_member: bool = False
) -> SyncState:
    """A published claim: no claim (quorum 0), or every commit on all of ``members`` (synchronous
    ``on``); with ``every_member`` False also partial quorums and the empty "nobody" claim."""
    members = draw(st.frozensets(st.sampled_from(names)))
    quorums = [0, len(members)] if every_member else [*range(len(members) + 1), 1]
    return SyncState(draw(leaders), members, draw(st.sampled_from(quorums)))


@st.composite
def tag_sets(draw: st.DrawFn, names: Sequence[str]) -> Tags:
    return Tags(
        nofailover=draw(rarely),
        failover_priority=draw(st.integers(0, 2)),
        clonefrom=draw(rarely),
        replicatefrom=draw(st.none() | st.sampled_from(names)),
    )


@st.composite
def members(draw: st.DrawFn, name: str, names: Sequence[str]) -> Member:
    return Member(
        name=name,
        api_url=f"http://127.0.0.1:80{name[-1]}",
        host="127.0.0.1",
        port=5432,
        role=draw(st.sampled_from(Role)),
        state=draw(st.sampled_from([PgState.RUNNING] * 4 + list(PgState))),
        timeline=draw(st.none() | timelines),
        lsn=draw(st.none() | lsns),
        tags=draw(tag_sets(names)),
        slots=draw(st.none() | st.frozensets(st.sampled_from(names))),  # a relay's, when a standby
    )


configs = st.builds(
    DynamicConfig,
    maximum_lag_on_failover=st.sampled_from([0, 64 * 1024, MIB, 4 * MIB]),
    primary_start_timeout=st.sampled_from([0.0, 10.0, 30.0]),
    member_slots_ttl=st.sampled_from([0.0, 60.0, 1800.0]),
    synchronous_mode=st.sampled_from(SyncMode),
    use_pg_rewind=st.booleans(),
    remove_data_directory_on_diverged_timelines=st.booleans(),
    pause=rarely,
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[HistoryEntry, ...]:
    switches = sorted(draw(st.lists(lsns, min_size=0, max_size=2)))
    return tuple(
        HistoryEntry(timeline=i + 2, switch_lsn=s, reason="failover", timestamp="", new_leader="node1")
        for i, s in enumerate(switches)
    )


@st.composite
def views(draw: st.DrawFn, initialized: bool | None = None) -> ClusterView:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    leader = draw(st.none() | st.sampled_from([*names, "ghost"]))
    initialize = draw(st.sampled_from([SYSTEM_ID] * 5 + [None])) if initialized is None else SYSTEM_ID
    return ClusterView(
        name="demo",
        initialize=initialize if initialized is not False else None,
        config=draw(configs),
        leader=Leader(leader) if leader else None,
        members=tuple(draw(members(n, names)) for n in names),
        status=draw(
            st.none()
            | st.builds(
                LeaderStatus,
                st.sampled_from([*names, "ghost"]),
                timelines,
                lsns,
                members=st.frozensets(st.sampled_from([*NAMES, "ghost"])),
            )
        ),
        sync=draw(st.none() | sync_claims(names, st.sampled_from(names))),
        history=draw(histories()),
        bootstrapping=draw(st.none() | st.sampled_from(names)) if initialize is None else None,
    )


@st.composite
def jobs(draw: st.DrawFn) -> Job | None:
    kind = draw(st.sampled_from(JobKind))
    return draw(
        st.none()
        | st.just(Job(kind, running=True, progress="1%"))
        | st.just(Job(kind, running=False, ok=True))
        | st.just(Job(kind, running=False, ok=False, error="boom"))
    )


@st.composite
def standby_states(draw: st.DrawFn, names: Sequence[str], job: Job | None = None) -> LocalState:
    tl = draw(timelines)
    return LocalState(
        data_dir=DataDir.VALID,
        system_id=SYSTEM_ID,
        control_state=ControlState.IN_ARCHIVE_RECOVERY,
        control_timeline=tl,
        running=True,
        probe_ok=True,
        in_recovery=True,
        timeline=tl,
        received_lsn=draw(st.none() | lsns),
        replayed_lsn=draw(st.none() | lsns),
        configured_upstream=draw(st.none() | st.sampled_from(names)),
        job=job,
    )


@st.composite
def local_states(draw: st.DrawFn, names: Sequence[str], jobs_anywhere: bool = True) -> LocalState:
    """With ``jobs_anywhere=False`` jobs only on a stopped PostgreSQL, as the agent runs them."""
    kind = draw(
        st.sampled_from(["primary", "standby", "stopped", "unprobed", "missing", "incomplete", "foreign"])
    )
    tl = draw(timelines)
    job = draw(jobs()) if jobs_anywhere or kind not in ("primary", "standby", "unprobed") else None
    valid = LocalState(data_dir=DataDir.VALID, system_id=SYSTEM_ID, control_timeline=tl, job=job)
    if kind == "primary":
        return replace(
            valid,
            control_state=ControlState.IN_PRODUCTION,
            running=True,
            probe_ok=True,
            in_recovery=False,
            timeline=tl,
            write_lsn=draw(lsns),
        )
    if kind == "standby":
        return draw(standby_states(names, job))
    if kind == "unprobed":
        states = [
            ControlState.IN_PRODUCTION,
            ControlState.IN_ARCHIVE_RECOVERY,
            ControlState.IN_CRASH_RECOVERY,
        ]
        return replace(valid, control_state=draw(st.sampled_from(states)), running=True)
    if kind in ("stopped", "foreign"):
        system_id = SYSTEM_ID if kind == "stopped" else OTHER_SYSTEM_ID
        return replace(
            valid,
            system_id=system_id,
            control_state=draw(st.sampled_from(ControlState)),
            control_lsn=draw(lsns),
        )
    return LocalState(data_dir=DataDir.MISSING if kind == "missing" else DataDir.INCOMPLETE, job=job)


@st.composite
def owned_local_states(draw: st.DrawFn, names: Sequence[str], jobs_anywhere: bool = True) -> LocalState:
    """A local state in a directory pgwarden's marker names, mostly, or in one it does not."""
    local = draw(local_states(names, jobs_anywhere))
    origin = DataDirOrigin(path="/pg/data", marked=draw(mostly), found="contains 1 entry")
    return replace(local, origin=origin)


@st.composite
def memories(draw: st.DrawFn) -> Memory:
    ago = st.floats(0, 40, allow_nan=False).map(lambda s: NOW - s)
    return Memory(
        unhealthy_primary_since=draw(st.none() | ago),
        member_last_seen=draw(st.dictionaries(st.sampled_from([*NAMES, "node9"]), ago, max_size=3)),
        job_failed_at=draw(st.none() | ago),
        saw_leader=draw(st.booleans()),
        cold_start_since=draw(st.none() | ago),
    )


def leases(is_leader: bool) -> st.SearchStrategy[float | None]:
    """Only the member named in the key can hold a live lease; anyone may carry an expired one."""
    expired = st.floats(0, 5, allow_nan=False).map(lambda s: NOW - s)
    live = st.floats(0.01, 4, allow_nan=False).map(lambda s: NOW + s)
    return st.none() | expired | live if is_leader else st.none() | expired


def peer_of(name: str, local: LocalState, tags: Tags, reachable: bool) -> PeerStatus:
    """What ``name``'s REST API reports, true to its local state."""
    if not reachable:
        return PeerStatus(name=name, reachable=False)
    role = Role.PRIMARY if local.is_primary else Role.REPLICA if local.is_standby else None
    return PeerStatus(
        name=name,
        reachable=True,
        role=role,
        running=local.running,
        in_recovery=local.in_recovery,
        timeline=local.timeline if local.timeline is not None else local.control_timeline,
        lsn=local.lsn,
        tags=tags,
    )


@dataclass(frozen=True)
class Cluster:
    view: ClusterView
    observations: tuple[Observation, ...]  # one per member, all of the same view


@st.composite
def clusters(draw: st.DrawFn, realistic: bool = True, initialized: bool | None = None) -> Cluster:
    """One view and every member's observation of it, each with its own local state, lease and memory.

    ``realistic`` keeps to states the agent can reach: jobs run on a stopped PostgreSQL, and a job
    failure seen while PostgreSQL runs is older than the backoff (it failed before PostgreSQL started).
    """
    view = draw(views(initialized))
    names = [m.name for m in view.members]
    local = {n: draw(owned_local_states(names, jobs_anywhere=not realistic)) for n in names}
    observations = []
    for m in view.members:
        memory = draw(memories())
        mine = local[m.name]
        if realistic and mine.running and mine.job is not None and mine.job.ok is False:
            memory = replace(memory, job_failed_at=NOW - 10 * RETRY_AFTER)
        is_leader = view.leader is not None and view.leader.name == m.name
        peers = {
            o.name: peer_of(o.name, local[o.name], o.tags, draw(mostly)) for o in view.members if o is not m
        }
        observations.append(
            Observation(
                name=m.name,
                tags=m.tags,
                view=view,
                store_ok=draw(mostly),
                local=mine,
                now=NOW,
                lease_deadline=draw(leases(is_leader)),
                peers=peers,
                memory=memory,
            )
        )
    return Cluster(view, tuple(observations))


# --- helpers -------------------------------------------------------------------------------------


def _first(actions: Sequence[Action], kinds: type | tuple[type, ...]) -> int | None:
    return next((i for i, a in enumerate(actions) if isinstance(a, kinds)), None)


def _carried_out(obs: Observation, actions: Sequence[Action]) -> tuple[Action, ...]:
    """The actions the executor gets through: it stops at an AcquireLeader that finds the key taken."""
    if obs.view.leader is None:
        return tuple(actions)
    stop = _first(actions, AcquireLeader)
    return tuple(actions if stop is None else actions[:stop])


def _runs_read_write(local: LocalState) -> bool:
    """Running and not known to be in recovery: an unprobed PostgreSQL may be a primary."""
    return local.running and local.in_recovery is not True


def _key_is_mine_or_taken_before(obs: Observation, prefix: Sequence[Action], index: int) -> bool:
    mine = obs.view.leader is not None and obs.view.leader.name == obs.name
    return mine or _first(prefix[:index], AcquireLeader) is not None


# --- properties ----------------------------------------------------------------------------------


def _assert_one_writer(cluster: Cluster) -> None:
    """Safety rule 1: whoever writes after its decision holds the key or races for it by CAS.

    Writing means: the carried-out actions start a primary (Promote, StartPrimary), or a probed
    primary keeps running with no Demote/StopPostgres. In a paused cluster a primary without the
    key is the operator's and left alone; decide never *starts* one there either.
    """
    view = cluster.view
    by_key, racers = [], []
    for obs in cluster.observations:
        done = _carried_out(obs, decide(obs).actions)
        starts = _first(done, WRITES) is not None
        keeps = obs.local.is_primary and _first(done, STOPS) is None
        if not starts and not (keeps and not view.config.pause):
            continue
        if view.leader is None and _first(done, AcquireLeader) is not None:
            racers.append(obs.name)  # the CAS lets at most one of them through
            continue
        assert view.leader is not None and view.leader.name == obs.name, (obs.name, done, obs.local)
        by_key.append(obs.name)
    assert len(by_key) + min(len(racers), 1) <= 1, (by_key, racers)


@FAST
@given(clusters(initialized=True))
def test_never_two_members_entitled_to_write(cluster: Cluster) -> None:
    _assert_one_writer(cluster)


_UNINITIALIZED = ClusterView(name="demo", members=(Member("node1", "", "127.0.0.1", 5432, Role.PRIMARY),))
_PRIMARY = LocalState(
    data_dir=DataDir.VALID,
    system_id=SYSTEM_ID,
    control_state=ControlState.IN_PRODUCTION,
    running=True,
    probe_ok=True,
    in_recovery=False,
    timeline=1,
    write_lsn=Lsn(0x3000000),
)


@FAST
@example(Cluster(_UNINITIALIZED, (Observation("node1", Tags(), _UNINITIALIZED, True, _PRIMARY, NOW),)))
@given(clusters(initialized=False))
def test_never_two_members_entitled_to_write_before_the_cluster_is_initialized(cluster: Cluster) -> None:
    _assert_one_writer(cluster)


@FAST
@given(clusters(realistic=False))
def test_promotes_only_with_the_key_held_or_acquired_first(cluster: Cluster) -> None:
    for obs in cluster.observations:
        actions = decide(obs).actions
        for i, action in enumerate(actions):
            if isinstance(action, WRITES):
                assert _key_is_mine_or_taken_before(obs, actions, i), (obs.name, actions)


@st.composite
def lagging_standbys(draw: st.DrawFn) -> Observation:
    """A running standby whose leader published a position beyond maximum_lag_on_failover from it."""
    view = draw(views(initialized=True))
    names = [m.name for m in view.members]
    name = draw(st.sampled_from(names))
    local = draw(standby_states(names, draw(jobs())))
    assert local.timeline is not None
    mine = local.lsn.value if local.lsn else 0
    behind = view.config.maximum_lag_on_failover + draw(st.integers(1, MIB))
    publisher = draw(st.sampled_from([n for n in [*names, "ghost"] if n != name]))
    status = LeaderStatus(
        publisher, draw(st.integers(local.timeline, local.timeline + 1)), Lsn(mine + behind)
    )
    me = view.member(name)
    assert me is not None
    peers = draw(st.lists(st.builds(PeerStatus, st.sampled_from(NAMES), st.booleans(), lsn=st.none() | lsns)))
    return Observation(
        name=name,
        tags=me.tags,
        view=replace(view, status=status),
        store_ok=draw(st.booleans()),
        local=local,
        now=NOW,
        lease_deadline=draw(leases(view.leader is not None and view.leader.name == name)),
        peers={p.name: p for p in peers},
        memory=draw(memories()),
    )


@FAST
@given(lagging_standbys())
def test_standby_beyond_the_lag_limit_never_races(obs: Observation) -> None:
    """Safety rule 3, also when the published position is on a timeline this standby has not reached."""
    assert _first(decide(obs).actions, AcquireLeader) is None


@FAST
@given(clusters(realistic=False))
def test_every_prefix_of_a_decision_is_safe(cluster: Cluster) -> None:
    for obs in cluster.observations:
        actions = decide(obs).actions
        for k in range(len(actions) + 1):
            prefix = actions[:k]
            for i, action in enumerate(prefix):
                if isinstance(action, WRITES):
                    assert _key_is_mine_or_taken_before(obs, prefix, i), (obs.name, prefix)
                if isinstance(action, ReleaseLeader) and _runs_read_write(obs.local):
                    assert _first(prefix[:i], STOPS) is not None, (obs.name, prefix)
                if isinstance(action, Demote):
                    assert _first(prefix[:i], Promote) is None, (obs.name, prefix)


@st.composite
def removal_situations(draw: st.DrawFn) -> Observation:
    """A member whose data directory may be anything, marked or not, in a cluster with a running
    leader to clone from, diverged or not, with or without operator requests pending."""
    diverged = builders.view(
        members=(
            builders.primary_member("node1", timeline=2, lsn="0/3200000"),
            builders.member("node2", state=PgState.STOPPED, timeline=1),
        ),
        history=[builders.fork(2, "0/3000000")],
    )
    view = draw(st.sampled_from([builders.view(), diverged]))
    config = replace(view.config, remove_data_directory_on_diverged_timelines=draw(st.booleans()))
    view = replace(view, config=config)
    local = draw(st.sampled_from([
        builders.standby_local(),
        builders.stopped_local(ControlState.IN_PRODUCTION),
        builders.stopped_local(system_id=OTHER_SYSTEM_ID),
        builders.incomplete_local(),
        builders.incomplete_local(job=builders.failed(JobKind.CLONE)),
        builders.empty_local(),
        builders.stopped_local(ControlState.IN_PRODUCTION, job=builders.failed(JobKind.REWIND)),
    ]))  # fmt: skip
    origin = replace(local.origin, marked=draw(st.booleans()))
    requests = draw(st.sampled_from([(), (), (Request.REINITIALIZE,), tuple(Request)]))
    return builders.observation(view=view, local=replace(local, origin=origin), requests=requests)


@FAST
@given(removal_situations() | clusters(realistic=False).flatmap(lambda c: st.sampled_from(c.observations)))
def test_only_what_pgwarden_made_or_this_clusters_data_is_ever_emptied_or_adopted(obs: Observation) -> None:
    actions = decide(obs).actions
    local, cluster_id = obs.local, obs.view.initialize
    wipe = _first(actions, WipeDataDir)
    if wipe is not None:
        assert removal_refusal(local, cluster_id) is None, (actions, local)
        assert not local.running or _first(actions[:wipe], STOPS) is not None, actions
    if _first(actions, AdoptDataDir) is not None:
        assert local.data_dir is DataDir.VALID and local.system_id == cluster_id, local
        assert actions[-1] == AdoptDataDir() and wipe is None, actions


def _strictly_rendered(decision: Decision) -> str:
    return decision.reason.value.format(**decision.detail)


@FAST
@given(clusters(realistic=False))
def test_decide_is_total_deterministic_and_explains_itself(cluster: Cluster) -> None:
    for obs in cluster.observations:
        decision = decide(obs)
        assert decide(obs) == decision
        assert _strictly_rendered(decision) == decision.message
        assert "{" not in decision.message


@st.composite
def leaderless_standbys(draw: st.DrawFn) -> tuple[Observation, ...]:
    """Every member a healthy standby on one timeline, all reachable, nobody holding the key."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=4, unique=True))
    positions = {n: Lsn(draw(st.integers(3 * MIB, 4 * MIB))) for n in names}
    tags = {n: Tags(nofailover=draw(rarely), failover_priority=draw(st.integers(0, 2))) for n in names}
    sync_mode = draw(st.sampled_from(SyncMode))
    view = ClusterView(
        name="demo",
        initialize=SYSTEM_ID,
        config=DynamicConfig(synchronous_mode=sync_mode, maximum_lag_on_failover=4 * MIB),
        members=tuple(Member(n, "", "127.0.0.1", 5432, Role.REPLICA, tags=tags[n]) for n in names),
        status=draw(st.none() | st.just(LeaderStatus("gone", 1, min(positions.values())))),
        sync=draw(st.none() | sync_claims(names, st.just("gone"), every_member=True)),
    )
    local = {
        n: LocalState(
            data_dir=DataDir.VALID,
            system_id=SYSTEM_ID,
            control_state=ControlState.IN_ARCHIVE_RECOVERY,
            running=True,
            probe_ok=True,
            in_recovery=True,
            timeline=1,
            received_lsn=positions[n],
        )
        for n in names
    }
    return tuple(
        Observation(
            name=n,
            tags=tags[n],
            view=view,
            store_ok=True,
            local=local[n],
            now=NOW,
            peers={o: peer_of(o, local[o], tags[o], True) for o in names if o != n},
        )
        for n in names
    )


@FAST
@given(leaderless_standbys())
def test_exactly_the_best_qualified_standby_races_when_all_see_each_other(
    members: tuple[Observation, ...],
) -> None:
    """Liveness of rule 3: no stall, no duel. Qualified: not nofailover, in the sync set if in force."""
    view = members[0].view
    sync = view.sync
    in_force = view.config.synchronous_mode is not SyncMode.OFF and sync is not None and sync.quorum > 0
    qualified = [
        o
        for o in members
        if not o.tags.nofailover and (not in_force or (sync is not None and o.name in sync.members))
    ]
    assume(qualified)
    best = min(qualified, key=lambda o: (-(o.local.lsn or Lsn(0)).value, -o.tags.failover_priority, o.name))
    racers = [o.name for o in members if _first(decide(o).actions, AcquireLeader) is not None]
    assert racers == [best.name]


# --- cold start: every agent stopped, then started again -----------------------------------------


@dataclass(frozen=True)
class ColdStart:
    members: tuple[Observation, ...]  # the members that are up, as they decide
    last_leader: str  # named by the status, one of the published membership
    membership: frozenset[str]


@st.composite
def cold_starts(draw: st.DrawFn, waited: float = 0.0) -> ColdStart:
    """Some members of the last published membership up as healthy standbys, reachable to each
    other, none having seen a leader since it started (``waited`` seconds ago); the rest down."""
    membership = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=4, unique=True))
    up = draw(st.lists(st.sampled_from(membership), min_size=1, max_size=len(membership), unique=True))
    last = draw(st.sampled_from(membership))
    positions = {n: Lsn(draw(st.integers(3 * MIB, 4 * MIB))) for n in up}
    tags = {n: Tags(nofailover=draw(rarely), failover_priority=draw(st.integers(0, 2))) for n in up}
    view = ClusterView(
        name="demo",
        initialize=SYSTEM_ID,
        config=DynamicConfig(maximum_lag_on_failover=4 * MIB),
        members=tuple(Member(n, "", "127.0.0.1", 5432, Role.REPLICA, tags=tags[n]) for n in up),
        status=LeaderStatus(last, 1, Lsn(3 * MIB), members=frozenset(membership)),
    )
    local = {
        n: LocalState(
            data_dir=DataDir.VALID,
            system_id=SYSTEM_ID,
            control_state=ControlState.IN_ARCHIVE_RECOVERY,
            running=True,
            probe_ok=True,
            in_recovery=True,
            timeline=1,
            received_lsn=positions[n],
        )
        for n in up
    }
    down = {o: PeerStatus(o, reachable=False) for o in membership if o not in up}
    observations = tuple(
        Observation(
            name=n,
            tags=tags[n],
            view=view,
            store_ok=True,
            local=local[n],
            now=NOW,
            peers={**down, **{o: peer_of(o, local[o], tags[o], True) for o in up if o != n}},
            memory=Memory(cold_start_since=NOW - waited),
        )
        for n in up
    )
    return ColdStart(observations, last, frozenset(membership))


def _racers(members: Sequence[Observation]) -> list[str]:
    return [o.name for o in members if _first(decide(o).actions, AcquireLeader) is not None]


def _best(members: Sequence[Observation]) -> str | None:
    qualified = [o for o in members if not o.tags.nofailover]
    if not qualified:
        return None
    best = min(qualified, key=lambda o: (-(o.local.lsn or Lsn(0)).value, -o.tags.failover_priority, o.name))
    return best.name


@FAST
@given(cold_starts())
def test_on_a_cold_start_only_the_last_leader_races_until_it_and_a_majority_answer(cold: ColdStart) -> None:
    """The head start: while the last leader or a majority of the membership is missing, no other
    member races; once both answered, exactly the best of those up races (liveness, no duel)."""
    up = {o.name for o in cold.members}
    complete = cold.last_leader in up and len(up) >= len(cold.membership) // 2 + 1
    racers = _racers(cold.members)
    if complete:
        best = _best(cold.members)
        assert racers == ([best] if best is not None else []), (racers, best)
    else:
        assert set(racers) <= {cold.last_leader}, racers


@FAST
@given(cold_starts(waited=DynamicConfig().cold_start_timeout))
def test_on_a_cold_start_the_best_of_those_up_races_once_the_wait_timed_out(cold: ColdStart) -> None:
    """Liveness of the bounded wait: after cold_start_timeout, exactly the best member up races,
    whoever is missing."""
    best = _best(cold.members)
    assert _racers(cold.members) == ([best] if best is not None else [])
