"""Properties of the slot rules over random cascades: once every node has carried out its slot
actions a few cycles, each streaming member has its slot on its upstream, a relay keeps no slot
for a member streaming elsewhere, and the leader's slot for a member streaming from a relay is
never behind the position that member reports (it pins no WAL that member no longer needs)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgwarden.ha.actions import EnsureSlots
from pgwarden.ha.decide import decide
from pgwarden.ha.observation import Observation
from pgwarden.ha.rules.topology import upstream_for
from pgwarden.model import ClusterView, Lsn, PgState, Slot, slot_name
from tests.support.builders import member, observation, primary_local, primary_member, standby_local, view
from tests.unit.rules.table import LEASED

NAMES = ("node1", "node2", "node3", "node4", "node5")
LEADER = "node1"
WRITTEN = 0x5000000  # the leader's WAL position
ROUNDS = 4  # cycles to settle: a relay appears, then its members' slots, then they stream
SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

Slots = dict[str, dict[str, Slot]]


@st.composite
def cascades(draw: st.DrawFn) -> tuple[ClusterView, Slots]:
    """A leader and four standbys, each maybe stopped, maybe tagged replicatefrom some member
    (itself, the leader, a stopped one or one gone included), each node holding leftover slots."""
    members = [primary_member(lsn=WRITTEN)]
    for name in NAMES[1:]:
        members.append(
            member(
                name,
                state=draw(st.sampled_from([PgState.RUNNING] * 3 + [PgState.STOPPED])),
                lsn=draw(st.integers(0, WRITTEN + 0x100)),
                replicatefrom=draw(st.sampled_from([None, *NAMES, "gone"])),
            )
        )
    leftovers = st.dictionaries(
        st.sampled_from([*NAMES, "gone"]).map(slot_name),
        st.integers(0, WRITTEN).map(lambda v: Slot(False, Lsn(v))),
    )
    return view(members=members), {name: draw(leftovers) for name in NAMES}


def _running(v: ClusterView) -> list[str]:
    return [m.name for m in v.members if m.state is PgState.RUNNING]


def _upstreams(v: ClusterView) -> dict[str, str | None]:
    """Where each running standby streams, as its own rules choose it."""
    return {
        m.name: upstream_for(v, m.name, m.tags.replicatefrom)
        for m in v.members
        if m.name != LEADER and m.state is PgState.RUNNING
    }


def _observe(
    v: ClusterView, name: str, slots: dict[str, Slot], upstreams: dict[str, str | None]
) -> Observation:
    """``name``'s observation, its slots active where a running member streams through them."""
    listed = {
        s: replace(slot, active=any(up == name and slot_name(m) == s for m, up in upstreams.items()))
        for s, slot in slots.items()
    }
    if name == LEADER:
        return observation(
            name, view=v, local=replace(primary_local(lsn=WRITTEN), slots=listed), lease_deadline=LEASED
        )
    return observation(name, view=v, local=replace(standby_local(upstream=upstreams[name]), slots=listed))


def _settle(v: ClusterView, slots: Slots) -> Slots:
    upstreams = _upstreams(v)
    for _ in range(ROUNDS):
        for name in _running(v):
            for action in decide(_observe(v, name, slots[name], upstreams)).actions:
                if isinstance(action, EnsureSlots):
                    held = slots[name]
                    position = Lsn(WRITTEN) if name == LEADER else Lsn(0)
                    held.update({s: Slot(False, position) for s in action.create})
                    for s in action.drop:
                        del held[s]
                    for s, lsn in action.advance:
                        held[s] = Slot(False, lsn)
    return slots


@SETTINGS
@given(cascades())
def test_every_streaming_member_has_its_slot_on_its_upstream(case: tuple[ClusterView, Slots]) -> None:
    v, slots = case
    settled = _settle(v, slots)
    running = set(_running(v))
    for name, upstream in _upstreams(v).items():
        if upstream in running:
            assert slot_name(name) in settled[upstream], f"{name} streams from {upstream} without a slot"


@SETTINGS
@given(cascades())
def test_no_relay_keeps_a_slot_for_a_member_streaming_elsewhere(case: tuple[ClusterView, Slots]) -> None:
    v, slots = case
    settled = _settle(v, slots)
    upstreams = _upstreams(v)
    present = {m.name: m for m in v.members}
    for node in _running(v):
        if node == LEADER:
            continue
        for name in present:
            if upstreams.get(name) != node and name in upstreams:
                assert slot_name(name) not in settled[node], f"{node} keeps {name}'s slot"
        assert slot_name("gone") not in settled[node]  # a member never seen: its slot is dropped


@SETTINGS
@given(cascades())
def test_the_leader_holds_no_wal_for_a_cascading_member_beyond_its_position(
    case: tuple[ClusterView, Slots],
) -> None:
    v, slots = case
    settled = _settle(v, slots)
    leader_slots = settled[LEADER]
    for name, upstream in _upstreams(v).items():
        assert slot_name(name) in leader_slots, f"the leader dropped {name}'s slot"
        reported = v.member(name)
        if (
            upstream != LEADER
            and reported is not None
            and reported.lsn is not None
            and reported.lsn.value <= WRITTEN
        ):
            restart = leader_slots[slot_name(name)].restart_lsn
            assert restart is not None and restart >= reported.lsn, f"{name}'s slot held at {restart}"
