"""The synchronous-replication resolver: the steps a leader takes, and that no step makes a false claim.

A claim (members M, quorum q) published in etcd lets a member of M promote when it is the most
advanced of |M| - q + 1 members. It is safe only while every acknowledged commit is on at least
q of M. The properties replay random sequences of steps, interrupted anywhere, against a model
of which standbys hold which commits, and check that claim after every single step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pgwarden.ha import sync
from pgwarden.ha.actions import AcquireLeader, Action, AppendHistory, PublishSync, SetSyncStandbys
from pgwarden.ha.decide import decide
from pgwarden.ha.observation import Memory, Observation
from pgwarden.model import SYNC_DEGRADED, SYNC_RESTORED, Lsn, PgState, SyncFallback, SyncMode, SyncState
from tests.support.builders import (
    config,
    member,
    observation,
    peer,
    primary_local,
    primary_member,
    standby_local,
    unreachable,
    view,
)

NAMES = ("node2", "node3", "node4")


def leader_obs(
    mode: SyncMode = SyncMode.ON,
    k: int = 1,
    streaming: dict[str, str] | None = None,
    spec: str = "",
    claim: SyncState | None = None,
    fallback: SyncFallback = SyncFallback.BLOCK,
    memory: Memory | None = None,
    now: float = 100.0,
    lsn: str = "0/3000000",
    **tags: dict[str, object],
) -> Observation:
    members = [primary_member()] + [member(n, **tags.get(n, {})) for n in NAMES]
    cfg = config(
        synchronous_mode=mode,
        synchronous_node_count=k,
        synchronous_fallback=fallback,
        synchronous_fallback_after=5.0,
    )
    local = replace(
        primary_local(lsn),
        sync_standby_names=spec,
        replication={n: Lsn.parse(p) for n, p in (streaming or {}).items()},
    )
    return observation(
        "node1",
        view=view(members=members, config=cfg, sync=claim),
        local=local,
        lease_deadline=now + 3,
        memory=memory,
        now=now,
    )


ALL_CAUGHT_UP = {n: "0/3000000" for n in NAMES}


def step(obs: Observation, memory: Memory | None = None) -> tuple[Action, ...]:
    """The leader's step, as ``decide`` takes it: from the cycle's plan, with ``memory`` the last."""
    obs = obs if memory is None else replace(obs, memory=memory)
    return sync.step(obs, sync.plan(obs))


def remember(obs: Observation) -> tuple[float | None, tuple[str, Lsn] | None]:
    """What the plan hands to the next cycle's memory: the degrade timer, when the spec took effect."""
    plan = sync.plan(obs)
    return plan.short_since, plan.applied


def current(obs: Observation) -> sync.SyncSpec | None:
    return sync.parse_spec(obs.local.sync_standby_names)


def claim(*members: str, quorum: int | None = None, leader: str = "node1") -> SyncState:
    return SyncState(
        leader=leader, members=frozenset(members), quorum=len(members) if quorum is None else quorum
    )


def test_spec_round_trip() -> None:
    spec = sync.SyncSpec(frozenset({"node3", "node2"}), 1, first=True)
    assert spec.render(("node3", "node2")) == 'FIRST 1 ("node3", "node2")'
    assert sync.parse_spec(spec.render()) == spec
    assert sync.parse_spec("") == sync.SyncSpec()
    assert sync.parse_spec("ANY 2 (a, b, c)") == sync.SyncSpec(frozenset("abc"), 2)
    assert sync.parse_spec("a, b") == sync.SyncSpec(frozenset("ab"), 1, first=True)
    assert sync.parse_spec(None) is None


@pytest.mark.parametrize(
    ("spec", "members", "expected"),
    [
        ("FIRST 1 (node2)", {"node2"}, 1),
        ("ANY 1 (node2, node3)", {"node2", "node3"}, 1),
        ("ANY 1 (node2, node3)", {"node2"}, 0),
        ("ANY 2 (node2, node3, node4)", {"node2", "node3"}, 1),
        ("ANY 1 (*)", {"node2"}, 0),
        ("", {"node2"}, 0),
    ],
)
def test_guarantee_counts_copies_among_members(spec: str, members: set[str], expected: int) -> None:
    parsed = sync.parse_spec(spec)
    assert parsed is not None
    assert sync.guarantee(parsed, frozenset(members)) == expected


def test_new_leader_first_sets_the_spec_and_claims_nobody_meanwhile() -> None:
    obs = leader_obs(streaming=ALL_CAUGHT_UP, claim=claim("node1", leader="old"))
    assert sync.published(obs) == sync.NOBODY
    assert step(obs) == (SetSyncStandbys('FIRST 1 ("node2")'),)


def test_spec_in_force_is_claimed_only_once_the_standby_caught_up_with_it() -> None:
    spec = 'FIRST 1 ("node2")'
    first = leader_obs(streaming={"node2": "0/2000000"}, spec=spec, lsn="0/3000000")
    short, applied = remember(first)
    assert applied == (spec, Lsn.parse("0/3000000"))
    memory = Memory(sync_short_since=short, sync_applied=applied)
    behind = leader_obs(streaming={"node2": "0/2FFFFFF"}, spec=spec, lsn="0/3100000", memory=memory)
    assert step(behind, memory) == ()
    caught = leader_obs(streaming={"node2": "0/3000000"}, spec=spec, lsn="0/3100000", memory=memory)
    assert step(caught, memory) == (PublishSync(claim("node2")),)


def test_replacing_a_departed_sync_standby_widens_the_claim_before_changing_postgres() -> None:
    # node2 was the synchronous standby and left; node3 streams.
    gone = {"state": PgState.STOPPED}
    obs = leader_obs(
        streaming={"node3": "0/3000000"}, spec='FIRST 1 ("node2")', claim=claim("node2"), node2=gone
    )
    assert step(obs) == (PublishSync(claim("node2", "node3", quorum=1)),)
    widened = leader_obs(
        streaming={"node3": "0/3000000"},
        spec='FIRST 1 ("node2")',
        claim=claim("node2", "node3", quorum=1),
        node2=gone,
    )
    assert step(widened) == (SetSyncStandbys('FIRST 1 ("node3")'),)


def test_block_mode_keeps_waiting_for_the_standby_that_left() -> None:
    obs = leader_obs(streaming={}, spec='FIRST 1 ("node2")', claim=claim("node2"), now=1000.0)
    assert sync.plan(replace(obs, memory=Memory(sync_short_since=0.0))).target == sync.SyncSpec(
        frozenset({"node2"}), 1, first=True
    )
    assert step(obs, Memory(sync_short_since=0.0)) == ()


def test_block_mode_with_no_standby_ever_waits_for_any() -> None:
    obs = leader_obs(streaming={}, spec="")
    assert step(obs) == (SetSyncStandbys("ANY 1 (*)"),)


def test_degrade_waits_for_the_timer_then_publishes_before_going_asynchronous() -> None:
    base = {
        "streaming": {},
        "spec": 'FIRST 1 ("node2")',
        "claim": claim("node2"),
        "fallback": SyncFallback.DEGRADE,
        "node2": {"state": PgState.STOPPED},
    }
    early = leader_obs(**base, now=103.0)  # type: ignore[arg-type]
    assert step(early, Memory(sync_short_since=100.0)) == ()
    late = leader_obs(**base, now=106.0)  # type: ignore[arg-type]
    publish, recorded = step(late, Memory(sync_short_since=100.0))
    assert isinstance(publish, PublishSync) and publish.state.quorum == 0 and publish.state.degraded_since
    # The degraded window goes into the history, once the claim says so (the rule emits it).
    assert recorded == AppendHistory(
        "no synchronous standby for 5s: asynchronous", event=SYNC_DEGRADED, at=(1, Lsn.parse("0/3000000"))
    )
    degraded = leader_obs(
        streaming={},
        spec='FIRST 1 ("node2")',
        claim=SyncState("node1", degraded_since=1.0),
        fallback=SyncFallback.DEGRADE,
        now=106.0,
        node2={"state": PgState.STOPPED},
    )
    assert step(degraded, Memory(sync_short_since=100.0)) == (SetSyncStandbys(""),)


def test_degraded_cluster_becomes_synchronous_again_when_a_standby_returns() -> None:
    obs = leader_obs(
        streaming={"node3": "0/3000000"},
        spec="",
        claim=SyncState("node1", degraded_since=1.0),
        fallback=SyncFallback.DEGRADE,
    )
    assert step(obs) == (SetSyncStandbys('FIRST 1 ("node3")'),)


def test_quorum_mode_waits_for_any_k_of_every_streaming_standby() -> None:
    obs = leader_obs(mode=SyncMode.QUORUM, k=1, streaming=ALL_CAUGHT_UP, spec="")
    assert step(obs) == (SetSyncStandbys('ANY 1 ("node2", "node3", "node4")'),)


def test_nosync_standbys_are_never_synchronous_and_sync_priority_ranks_the_rest() -> None:
    obs = leader_obs(
        streaming=ALL_CAUGHT_UP,
        node2={"nosync": True},
        node4={"sync_priority": 5},
    )
    assert sync.eligible(obs, current(obs)) == ("node4", "node3")


def test_nofailover_standbys_rank_last_whatever_their_sync_priority() -> None:
    obs = leader_obs(streaming=ALL_CAUGHT_UP, node4={"sync_priority": 5, "nofailover": True})
    assert sync.eligible(obs, current(obs)) == ("node2", "node3", "node4")
    assert sync.plan(obs).target.names == frozenset({"node2"})


def test_a_nofailover_synchronous_standby_gives_its_place_to_one_that_may_fail_over() -> None:
    # node4 got the place while the others were still cloning: with synchronous_mode block and
    # node4 unable to promote, losing the primary would leave nobody entitled to take over.
    obs = leader_obs(
        streaming=ALL_CAUGHT_UP, spec='FIRST 1 ("node4")', claim=claim("node4"), node4={"nofailover": True}
    )
    assert sync.plan(obs).order[0] == "node2"
    assert sync.plan(obs).target.names == frozenset({"node2"})
    only = leader_obs(
        streaming={"node4": "0/3000000"},
        spec='FIRST 1 ("node4")',
        claim=claim("node4"),
        node4={"nofailover": True},
    )
    assert sync.plan(only).target.names == frozenset({"node4"})  # nobody else streams: it keeps it


def test_a_synchronous_standby_keeps_its_place_when_a_higher_ranked_one_returns() -> None:
    obs = leader_obs(streaming=ALL_CAUGHT_UP, spec='FIRST 1 ("node3")', claim=claim("node3"))
    assert sync.plan(obs).target.names == frozenset({"node3"})


def test_a_claim_the_running_spec_does_not_back_is_retracted() -> None:
    obs = leader_obs(streaming=ALL_CAUGHT_UP, spec="", claim=claim("node2"))
    assert step(obs) == (PublishSync(SyncState("node1", frozenset(), 1)),)


def test_off_retracts_the_claim_before_postgres_stops_waiting() -> None:
    obs = leader_obs(
        mode=SyncMode.OFF, streaming=ALL_CAUGHT_UP, spec='FIRST 1 ("node2")', claim=claim("node2")
    )
    assert step(obs) == (PublishSync(SyncState("node1")),)
    cleared = leader_obs(
        mode=SyncMode.OFF, streaming=ALL_CAUGHT_UP, spec='FIRST 1 ("node2")', claim=SyncState("node1")
    )
    assert step(cleared) == (SetSyncStandbys(""),)


# --- quorum mode and nofailover standbys ----------------------------------------------------------


def test_quorum_mode_leaves_a_nofailover_standby_out_when_enough_others_may_fail_over() -> None:
    """A commit acknowledged by node4 alone would leave node2 and node3 behind it, and node4 cannot
    promote: the primary's loss would leave nobody entitled to take over (Patroni 4 lists it only
    to reach synchronous_node_count)."""
    obs = leader_obs(mode=SyncMode.QUORUM, k=1, streaming=ALL_CAUGHT_UP, node4={"nofailover": True})
    assert step(obs) == (SetSyncStandbys('ANY 1 ("node2", "node3")'),)
    two = leader_obs(mode=SyncMode.QUORUM, k=2, streaming=ALL_CAUGHT_UP, node4={"nofailover": True})
    assert sync.plan(two).target == sync.SyncSpec(frozenset({"node2", "node3"}), 2)


def test_quorum_mode_lists_nofailover_standbys_only_to_reach_k() -> None:
    """Two copies wanted, one standby may fail over: the best-ranked nofailover standby (node4, by
    sync_priority) makes up the count, and the list is exactly k long, so every commit is on node2.
    With three wanted and node2, node3 free to fail over, node4 makes up the third."""
    obs = leader_obs(
        mode=SyncMode.QUORUM,
        k=2,
        streaming=ALL_CAUGHT_UP,
        node3={"nofailover": True},
        node4={"nofailover": True, "sync_priority": 5},
    )
    assert sync.plan(obs).target == sync.SyncSpec(frozenset({"node2", "node4"}), 2)
    wide = leader_obs(mode=SyncMode.QUORUM, k=3, streaming=ALL_CAUGHT_UP, node4={"nofailover": True})
    assert step(wide) == (SetSyncStandbys('ANY 3 ("node2", "node3", "node4")'),)


def test_quorum_mode_with_only_a_nofailover_standby_streaming_waits_for_it() -> None:
    """Nobody else streams: node4 acknowledges (writes go on); nobody may promote meanwhile."""
    obs = leader_obs(
        mode=SyncMode.QUORUM,
        k=1,
        streaming={"node4": "0/3000000"},
        node2={"state": PgState.STOPPED},
        node3={"state": PgState.STOPPED},
        node4={"nofailover": True},
    )
    assert step(obs) == (SetSyncStandbys('ANY 1 ("node4")'),)


def test_quorum_mode_drops_a_nofailover_standby_from_the_list_before_the_claim() -> None:
    """ANY 1 (node2, node3, node4) claimed in full: the spec leaves node4 out first (the claim
    {node2, node3, node4} q=1 holds under both), and the claim follows once node2 or node3 holds
    everything acknowledged before: until then a commit may be on node4 alone."""
    old = 'ANY 1 ("node2", "node3", "node4")'
    obs = leader_obs(
        mode=SyncMode.QUORUM,
        streaming=ALL_CAUGHT_UP,
        spec=old,
        claim=claim(*NAMES, quorum=1),
        node4={"nofailover": True},
    )
    new = 'ANY 1 ("node2", "node3")'
    assert step(obs) == (SetSyncStandbys(new),)
    memory = Memory(sync_applied=(new, Lsn.parse("0/3000000")))
    behind = leader_obs(
        mode=SyncMode.QUORUM,
        streaming={"node2": "0/2000000", "node3": "0/2000000", "node4": "0/3000000"},
        spec=new,
        claim=claim(*NAMES, quorum=1),
        memory=memory,
        node4={"nofailover": True},
    )
    assert step(behind, memory) == ()
    everyone = {n: Lsn.parse("0/3000000") for n in NAMES}
    caught = replace(behind, local=replace(behind.local, replication=everyone))
    assert step(caught, memory) == (PublishSync(claim("node2", "node3", quorum=1)),)


# --- properties: a model of commits and copies, against every step ----------------------------------


@dataclass
class World:
    """Which standby holds which commit, under the spec PostgreSQL runs with, and the claim in etcd."""

    mode: SyncMode
    k: int
    fallback: SyncFallback
    spec: str = ""
    claim: SyncState | None = None
    position: int = 0x3000000
    flushed: dict[str, int] = field(default_factory=dict)  # every standby -> how far its WAL goes
    streaming: set[str] = field(default_factory=set)
    acknowledged: list[int] = field(default_factory=list)  # commit positions
    memory: Memory = field(default_factory=Memory)
    now: float = 100.0
    nofailover: frozenset[str] = frozenset()

    def observe(self) -> Observation:
        obs = leader_obs(
            mode=self.mode,
            k=self.k,
            streaming={n: str(Lsn(self.flushed[n])) for n in self.streaming},
            spec=self.spec,
            claim=self.claim,
            fallback=self.fallback,
            memory=self.memory,
            now=self.now,
            lsn=str(Lsn(self.position)),
            **{n: {"nofailover": True} for n in self.nofailover},  # type: ignore[arg-type]
        )
        return obs

    def leader_step(self) -> None:
        """The leader's cycle: one step of the resolver, carried out; then a commit."""
        obs = self.observe()
        actions = step(obs)
        short, applied = remember(obs)
        self.memory = Memory(sync_short_since=short, sync_applied=applied)
        changes = [a for a in actions if not isinstance(a, AppendHistory)]  # the history: a record
        assert len(changes) <= 1, "one change per cycle, so each is observed before the next"
        for action in actions:
            if isinstance(action, SetSyncStandbys):
                self.spec = action.value
            elif isinstance(action, PublishSync):
                self.claim = action.state
        self.commit()  # writes go on between any two steps

    def racers(self, down: frozenset[str]) -> list[str]:
        """The primary dies now: the standbys (every one that ever streamed) whose own ``decide``
        races for the leader key, each seeing the others up and those in ``down`` not answering."""
        cfg = config(
            synchronous_mode=self.mode,
            synchronous_node_count=self.k,
            synchronous_fallback=self.fallback,
            maximum_lag_on_failover=2**40,
        )
        known = sorted(self.flushed)
        records = [member(n, lsn=self.flushed[n], nofailover=n in self.nofailover) for n in known]
        leaderless = view(leader=None, members=records, config=cfg, sync=self.claim)
        racing = []
        for name in known:
            if name in down:
                continue
            peers = [
                unreachable(o) if o in down else peer(o, lsn=self.flushed[o], nofailover=o in self.nofailover)
                for o in known
                if o != name
            ]
            obs = observation(
                name, view=leaderless, local=standby_local(received=self.flushed[name]), peers=peers
            )
            if any(isinstance(a, AcquireLeader) for a in decide(obs).actions):
                racing.append(name)
        return racing

    def commit(self) -> None:
        """A commit: streaming standbys that are caught up receive it; it is acknowledged when the
        spec in force has enough of them (asynchronous: at once). WAL arrives in order, so a
        lagging standby receives nothing new until it has caught up."""
        before, self.position = self.position, self.position + 0x100
        for n in self.streaming:
            if self.flushed[n] >= before:
                self.flushed[n] = self.position
        spec = sync.parse_spec(self.spec) or sync.SyncSpec()
        voters = self.streaming if sync.ANY_STANDBY in spec.names else self.streaming & spec.names
        if sum(1 for n in voters if self.flushed[n] >= self.position) >= spec.k:
            self.acknowledged.append(self.position)

    def catch_up(self, name: str) -> None:
        if name in self.streaming:
            self.flushed[name] = self.position

    def play(self, event: str, name: str) -> None:
        """One step of a generated script."""
        if event == "commit":
            self.commit()
        elif event == "join":
            self.streaming.add(name)  # streams from where it stopped; catches up at the next commit
            self.flushed.setdefault(name, 0)
        elif event == "leave":
            self.streaming.discard(name)
        elif event == "catch_up":
            self.catch_up(name)
        elif event == "time":
            self.now += 3.0
        else:
            self.leader_step()

    def claim_holds(self) -> bool:
        c = self.claim
        if c is None or c.quorum <= 0 or not c.members:
            return True  # no claim, or "nobody": nothing to trust
        # WAL is a sequence: a standby holds every commit up to the position it flushed.
        return all(
            sum(1 for n in c.members if self.flushed.get(n, 0) >= p) >= c.quorum for p in self.acknowledged
        )


events = st.sampled_from(["commit", "step", "join", "leave", "time", "catch_up"])


@settings(max_examples=500, deadline=None)
@given(
    mode=st.sampled_from([SyncMode.ON, SyncMode.QUORUM]),
    k=st.integers(1, 2),
    fallback=st.sampled_from(list(SyncFallback)),
    script=st.lists(st.tuples(events, st.sampled_from(NAMES)), min_size=5, max_size=60),
)
def test_every_step_keeps_the_published_claim_true(
    mode: SyncMode, k: int, fallback: SyncFallback, script: list[tuple[str, str]]
) -> None:
    world = World(mode, k, fallback)
    for event, name in script:
        world.play(event, name)
        assert world.claim_holds(), (world.spec, world.claim, world.flushed, world.streaming)


# node2 and node3 stream, the spec and claim come into force, node2 alone catches up and holds the
# last commit (then DOWN takes it away).
ALONE_AND_DOWN = [
    ("join", "node2"),
    ("join", "node3"),
    ("step", ""),
    ("step", ""),
    ("catch_up", "node2"),
    ("step", ""),
]
# The primary dies with every standby up, or with one of them (the one holding a commit alone, say).
DOWN = (frozenset(), *(frozenset({n}) for n in NAMES))
# Standbys join and the leader steps more often than they leave, so claims come into force.
busy_events = st.sampled_from(["commit", "step", "step", "step", "join", "join", "leave", "time", "catch_up"])


@settings(max_examples=300, deadline=None)
@example(  # node2 alone holds the last commit and is down: node3 must not take over
    mode=SyncMode.QUORUM,
    k=1,
    fallback=SyncFallback.BLOCK,
    nofailover=frozenset(),
    script=ALONE_AND_DOWN,
)
@given(
    mode=st.sampled_from([SyncMode.ON, SyncMode.QUORUM]),
    k=st.integers(1, 3),
    fallback=st.sampled_from(list(SyncFallback)),
    nofailover=st.frozensets(st.sampled_from(NAMES)),
    script=st.lists(st.tuples(busy_events, st.sampled_from(NAMES)), min_size=5, max_size=50),
)
def test_whoever_may_take_over_holds_every_acknowledged_commit(
    mode: SyncMode,
    k: int,
    fallback: SyncFallback,
    nofailover: frozenset[str],
    script: list[tuple[str, str]],
) -> None:
    """Standbys with and without nofailover, any k, block or degrade: after any step the primary
    may die, some standbys with it. Then (a) at most one standby races for the key (the best, so
    two never hold the right to write), never a nofailover one; (b) while a claim is in force (not
    degraded, not asynchronous), a standby that races holds every commit ever acknowledged: the
    claim's commit quorums all meet the members ``may_promote`` has to hear from. And in quorum
    mode a nofailover standby is listed only to make up k, never beside k that may fail over."""
    world = World(mode, k, fallback, nofailover=nofailover)
    for event, name in script:
        world.play(event, name)
        target = sync.plan(world.observe()).target
        if mode is SyncMode.QUORUM and target.names & nofailover:
            assert len(target.names) == target.k, target
        for down in DOWN:
            racing = world.racers(down)
            assert len(racing) <= 1, (racing, world.claim, world.flushed)
            assert not set(racing) & nofailover, racing
            in_force = world.claim is not None and world.claim.quorum > 0
            if racing and in_force and world.acknowledged:
                assert world.flushed[racing[0]] >= world.acknowledged[-1], (
                    racing,
                    down,
                    world.claim,
                    world.spec,
                    world.flushed,
                    world.acknowledged[-1],
                )


@settings(max_examples=200, deadline=None)
@given(
    members=st.frozensets(st.sampled_from(NAMES), min_size=1),
    data=st.data(),
)
def test_the_promotion_group_of_a_claim_intersects_every_commit_quorum(
    members: frozenset[str], data: st.DataObject
) -> None:
    """Any |M| - q + 1 members of M share at least one member with any q members of M."""
    quorum = data.draw(st.integers(1, len(members)))
    seen = data.draw(st.sets(st.sampled_from(sorted(members)), min_size=len(members) - quorum + 1))
    commit_holders = data.draw(st.sets(st.sampled_from(sorted(members)), min_size=quorum))
    assert seen & commit_holders


def test_a_standby_cut_off_from_the_primary_does_not_hold_back_degrade() -> None:
    """Its member record still says running (it reaches etcd), but it no longer streams: past the
    fallback window the primary degrades instead of waiting for it for ever."""
    base = {
        "streaming": {},
        "spec": 'FIRST 1 ("node2")',
        "claim": claim("node2"),
        "fallback": SyncFallback.DEGRADE,
    }
    cut = leader_obs(**base, now=100.0)  # type: ignore[arg-type]
    assert sync.short_since(cut, current(cut)) == 100.0, (
        "the timer starts although node2's record says running"
    )
    assert step(cut, Memory(sync_short_since=100.0)) == ()  # within the window: sticky, writes wait
    late = leader_obs(**base, now=106.0)  # type: ignore[arg-type]
    publish, recorded = step(late, Memory(sync_short_since=100.0))
    assert isinstance(publish, PublishSync) and publish.state.quorum == 0
    assert isinstance(recorded, AppendHistory) and recorded.event == SYNC_DEGRADED


def test_a_restored_claim_goes_into_the_history_after_it_is_published() -> None:
    spec = 'FIRST 1 ("node3")'
    memory = Memory(sync_applied=(spec, Lsn.parse("0/3000000")))
    obs = leader_obs(
        streaming={"node3": "0/3000000"},
        spec=spec,
        claim=SyncState("node1", degraded_since=1.0),
        memory=memory,
    )
    assert step(obs) == (
        PublishSync(claim("node3")),
        AppendHistory(
            "synchronous again with ['node3']", event=SYNC_RESTORED, at=(1, Lsn.parse("0/3000000"))
        ),
    )


def test_a_healthy_synchronous_standby_keeps_its_place_when_a_higher_ranked_one_returns() -> None:
    """node3 is the synchronous standby; node2 (first by name: a former primary rejoining) streams
    again. Rank decides only who gets a free place: node3 keeps its own, the claim does not move."""
    spec = 'FIRST 1 ("node3")'
    obs = leader_obs(streaming=ALL_CAUGHT_UP, spec=spec, claim=claim("node3"))
    assert sync.plan(obs).target == sync.SyncSpec(frozenset({"node3"}), 1, first=True)
    assert step(obs) == ()


def test_rank_decides_who_gets_a_free_place() -> None:
    """node3 no longer streams (its record still says running, so it is eligible by stickiness):
    its place is free, and the best-ranked streaming standby takes it."""
    spec = 'FIRST 1 ("node3")'
    obs = leader_obs(streaming={"node2": "0/3000000", "node4": "0/3000000"}, spec=spec, claim=claim("node3"))
    assert sync.plan(obs).target == sync.SyncSpec(frozenset({"node2"}), 1, first=True)


@settings(max_examples=150, deadline=None)
@given(
    k=st.integers(1, 3),
    in_force=st.sets(st.sampled_from(NAMES), min_size=1),
    streaming=st.sets(st.sampled_from(NAMES)),
    priorities=st.lists(st.integers(0, 3), min_size=3, max_size=3),
)
def test_streaming_synchronous_standbys_keep_their_places_whatever_their_rank(
    k: int, in_force: set[str], streaming: set[str], priorities: list[int]
) -> None:
    """Whoever returns or outranks them, the standbys of the spec in force that still stream stay
    in the target spec (up to synchronous_node_count of them): the claim never churns by rank."""
    quoted = ", ".join(f'"{n}"' for n in sorted(in_force))
    tags = {n: {"sync_priority": p} for n, p in zip(NAMES, priorities, strict=True)}
    obs = leader_obs(
        k=k,
        streaming={n: "0/3000000" for n in streaming},
        spec=f"FIRST {min(k, len(in_force))} ({quoted})",
        claim=claim(*sorted(in_force), quorum=min(k, len(in_force))),
        **tags,  # type: ignore[arg-type]
    )
    keep = in_force & streaming
    target = sync.plan(obs).target
    if len(keep) <= k:
        assert keep <= target.names
    else:
        assert target.names <= keep, "places are all taken by standbys already in force"
