"""Properties of ``decide`` in failsafe mode, over random cluster views, deadlines and promises.

The interleavings (outages, member losses, restarts, promises given between an observation and
its actions) are the simulation's (tests/sim/test_failsafe.py); here each cycle's decision alone:
a promise binds, only the topology races (nobody while it is unreadable), the leader asks
everyone who could race (with junk in the key: every member of the last valid topology it read
too), and a writer past every deadline stops. Together they make "never two writers": a second
writer must race (a compare-and-set in etcd), and every member that can race has promised not to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pgwarden.ha.actions import (
    AcquireLeader,
    Action,
    Demote,
    Follow,
    RenewFailsafe,
    RenewLeader,
    StartStandby,
    StopPostgres,
)
from pgwarden.ha.decide import decide
from pgwarden.ha.observation import Observation, Promise
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.failsafe import refuse_promise
from pgwarden.model import ClusterView, ControlState, Leader, LocalState, StoreKey
from tests.unit.test_decide_properties import (
    FAST,
    NAMES,
    NOW,
    WRITES,
    clusters,
    local_states,
    standby_states,
    views,
)

URL = "http://127.0.0.1:8008"
FAST = settings(FAST, max_examples=100)  # seven properties over the same large strategy


@st.composite
def failsafe_observations(
    draw: st.DrawFn,
    promised: bool = False,
    outside: bool = False,
    restarted: bool = False,
    writer_without_etcd: bool = False,
    leading: bool = False,
    junk: bool = False,
) -> Observation:
    """One member's observation of a cluster in failsafe mode: a topology (maybe stale, maybe
    absent, maybe junk: then read as the observer reads it, nobody, with the drawn one as the
    last valid), deadlines, a promise, etcd reachable or not, an agent started recently or not.
    The flags draw the states a property is about directly (rather than filtering for them)."""
    cluster = draw(clusters(initialized=True))
    obs = draw(st.sampled_from(cluster.observations))
    view = obs.view
    names = [m.name for m in view.members]
    others = [n for n in [*NAMES, "ghost"] if n != obs.name]
    stored = draw(st.none() | st.frozensets(st.sampled_from([*NAMES, "node9"])))
    if outside:
        stored = frozenset(stored or ()) - {obs.name}
    if leading:  # mostly a failsafe leader that may ask; sometimes one that may not
        stored = draw(st.sampled_from([frozenset(stored or ()) | {obs.name}] * 3 + [stored]))
    mode = (
        True if promised or outside or restarted or junk else draw(st.sampled_from([True, True, True, False]))
    )
    if leading:  # the leader of its last view, writing, etcd unreachable, its deadline ahead
        view = replace(view, leader=Leader(obs.name))
    view = replace(
        view,
        config=replace(
            view.config,
            failsafe_mode=mode,
            pause=False if writer_without_etcd or leading or junk else view.config.pause,
        ),
        failsafe=None if stored is None else dict.fromkeys(stored, URL),
    )
    if junk or draw(st.sampled_from([False, False, False, True])):
        view = junk_in_failsafe(view)
    if junk:  # mostly leaderless: when members would race
        view = replace(view, leader=draw(st.sampled_from([None, None, view.leader])))
    local = obs.local
    if (promised or outside or restarted or junk) and _read_write(local):
        # A promise is given only while not writing, and nobody starts a primary without the key
        # (a primary whose own key vanished takes it back: no second writer, and not a race).
        local = draw(standby_states(names))
    if writer_without_etcd or leading:
        local = replace(
            draw(standby_states(names)), in_recovery=False, control_state=ControlState.IN_PRODUCTION
        )
    if promised:
        view = replace(view, leader=draw(st.none() | st.sampled_from(others).map(Leader)))
        promise: Promise | None = Promise(draw(st.sampled_from(others)), NOW + draw(st.floats(0.01, 4)))
    else:
        promise = draw(
            st.none() | st.builds(Promise, st.sampled_from([*NAMES, "ghost"]), st.floats(NOW - 5, NOW + 5))
        )
    started = (
        NOW - draw(st.floats(0, 3.99)) if restarted else draw(st.sampled_from([float("-inf"), NOW - 10]))
    )
    failsafe = draw(st.none() | st.floats(NOW - 5, NOW + 4))
    lease = obs.lease_deadline
    if writer_without_etcd:
        failsafe = draw(st.none() | st.floats(NOW - 5, NOW))
        lease = draw(st.none() | st.floats(NOW - 5, NOW))
    if leading:
        lease = draw(st.none() | st.floats(NOW - 2, NOW + 3))
        failsafe = NOW + draw(st.floats(0.01, 3)) if lease is None or lease <= NOW else failsafe
    return replace(
        obs,
        view=view,
        local=local,
        store_ok=False if writer_without_etcd or leading else (junk or obs.store_ok),
        lease_deadline=lease,
        failsafe_deadline=failsafe,
        promise=promise,
        agent_started=started,
    )


def junk_in_failsafe(view: ClusterView) -> ClusterView:
    """``view`` as the observer reads it once junk replaced its topology: a topology of nobody,
    the one it held before kept as the last valid one."""
    unreadable = {**view.unreadable, StoreKey.FAILSAFE: "junk"}
    return replace(view, failsafe={}, failsafe_last_good=view.failsafe, unreadable=unreadable)


def _could_race(view: ClusterView, me: str) -> set[str]:
    """Whoever may race while the leader cannot reach etcd: the topology it knows, its members."""
    junk = StoreKey.FAILSAFE in view.unreadable
    known = view.failsafe_last_good if junk else view.failsafe
    assert known is not None, "failsafe mode relied on without a topology"
    return (set(known) | {m.name for m in view.members}) - {me}


def _first(actions: Sequence[Action], kinds: type | tuple[type, ...]) -> int | None:
    return next((i for i, a in enumerate(actions) if isinstance(a, kinds)), None)


def _read_write(local: LocalState) -> bool:
    return local.running and local.in_recovery is not True


@FAST
@given(failsafe_observations(promised=True))
def test_a_member_that_promised_neither_races_nor_promotes_nor_follows_another_leader(
    obs: Observation,
) -> None:
    promised = obs.promised_to
    assert promised is not None and promised != obs.name and not obs.leader_is_me
    actions = decide(obs).actions
    assert _first(actions, (AcquireLeader, *WRITES)) is None, actions
    leader = obs.view.leader
    if leader is None or leader.name != promised:
        for action in actions:
            if isinstance(action, Follow | StartStandby):
                assert action.upstream is None, actions


@FAST
@given(failsafe_observations(outside=True))
def test_only_members_of_the_published_topology_race(obs: Observation) -> None:
    assert _first(decide(obs).actions, AcquireLeader) is None


@FAST
@given(failsafe_observations(junk=True))
def test_nobody_races_while_the_topology_is_unreadable_in_failsafe_mode(obs: Observation) -> None:
    assert _first(decide(obs).actions, AcquireLeader) is None


@FAST
@given(failsafe_observations(restarted=True))
def test_a_restarted_agent_does_not_race_within_ttl_in_failsafe_mode(obs: Observation) -> None:
    """It may have promised before it restarted: its promise outlives its memory of it."""
    assert _first(decide(obs).actions, AcquireLeader) is None


@FAST
@given(st.one_of(failsafe_observations(), failsafe_observations(leading=True)))
def test_a_failsafe_leader_asks_every_member_that_could_race(obs: Observation) -> None:
    actions = decide(obs).actions
    view = obs.view
    for action in actions:
        if isinstance(action, RenewLeader) and action.failsafe is not None:  # the fallback round
            assert obs.leader_is_me and view.config.failsafe_mode and view.failsafe is not None
            assert {name for name, _ in action.failsafe} == _could_race(view, obs.name)
    index = _first(actions, RenewFailsafe)
    if index is None:
        return
    asked = actions[index]
    assert isinstance(asked, RenewFailsafe)
    view = obs.view
    assert not obs.store_ok and obs.leader_is_me and obs.may_write
    assert view.config.failsafe_mode and view.failsafe is not None
    assert {name for name, _ in asked.members} == _could_race(view, obs.name)
    assert _first(actions, (Demote, StopPostgres)) is None


@FAST
@given(failsafe_observations(writer_without_etcd=True))
def test_without_etcd_a_writer_past_its_lease_and_its_promises_stops(obs: Observation) -> None:
    assert not obs.may_write
    assert _first(decide(obs).actions, Demote) == 0


@st.composite
def promised_clusters(draw: st.DrawFn) -> tuple[Observation, ...]:
    """A leader writing on promises through an etcd outage, its key maybe expired meanwhile, and
    what every member that promised sees: etcd back or not, the key gone or still the leader's.
    The protocol's invariants hold: every member of the topology and of the leader's last view
    promised it (and was not writing then); members outside the topology did not."""
    base = draw(views(initialized=True))
    names = [m.name for m in base.members]
    assume(len(names) >= 2)
    leader = draw(st.sampled_from(names))
    topology = set(draw(st.lists(st.sampled_from(names), unique=True))) | {leader}
    config = replace(base.config, failsafe_mode=True, pause=False)
    stale = replace(base, config=config, leader=Leader(leader), failsafe=dict.fromkeys(topology, URL))
    observations = []
    for name in names:
        local = draw(local_states(names, jobs_anywhere=False))
        me = base.member(name)
        assert me is not None
        if name == leader:
            observations.append(
                Observation(
                    name=name,
                    tags=me.tags,
                    view=stale,
                    store_ok=False,
                    local=local,
                    now=NOW,
                    lease_deadline=draw(st.none() | st.just(NOW - 1)),
                    failsafe_deadline=NOW + 2,
                )
            )
            continue
        # Every member the leader asked gave its promise (while not writing: refuse_promise).
        assume(not _read_write(local))
        back = draw(st.booleans())
        seen = replace(stale, leader=draw(st.sampled_from([None, Leader(leader)]))) if back else stale
        seen = junk_in_failsafe(seen) if back and draw(st.booleans()) else seen
        promise = Promise(leader, NOW + draw(st.floats(1.0, 4.0)))
        assert refuse_promise(name, leader, 3.0, stale, local, None, False, NOW) is None
        observations.append(
            Observation(
                name=name, tags=me.tags, view=seen, store_ok=back, local=local, now=NOW, promise=promise
            )
        )
    return tuple(observations)


@FAST
@given(promised_clusters())
def test_while_the_promises_hold_nobody_but_the_failsafe_leader_may_write(
    members: tuple[Observation, ...],
) -> None:
    writers = []
    for obs in members:
        actions = decide(obs).actions
        starts = _first(actions, (AcquireLeader, *WRITES)) is not None
        keeps = _read_write(obs.local) and _first(actions, (Demote, StopPostgres)) is None
        if starts or keeps:
            writers.append(obs.name)
    assert len(writers) <= 1, writers
    leader = next(o for o in members if o.failsafe_deadline is not None)
    assert writers in ([], [leader.name]), writers


def test_the_junk_strategy_reaches_members_that_would_race() -> None:
    """Guard against a vacuous property: junk in the topology is what stops many of them."""
    stopped: list[int] = []

    @FAST
    @given(failsafe_observations(junk=True))
    def collect(obs: Observation) -> None:
        if decide(obs).reason is Reason.NOT_RACING_FAILSAFE_TOPOLOGY_UNREADABLE:
            stopped.append(1)

    collect()
    assert len(stopped) > 8


def test_the_leading_strategy_draws_failsafe_rounds() -> None:
    """Guard against a vacuous property: the leader's strategy does reach failsafe rounds."""
    rounds: list[int] = []

    @FAST
    @given(failsafe_observations(leading=True))
    def collect(obs: Observation) -> None:
        actions = decide(obs).actions
        if _first(actions, RenewFailsafe) is not None:
            rounds.append(1)

    collect()
    assert len(rounds) > 40
