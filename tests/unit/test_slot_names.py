"""Slot names: the mapping from member names, and who keeps a slot name two members share."""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgwarden.ha.decide import decide
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import ClusterView, DataDir, Job, JobKind, Leader, LocalState, Member, Role, slot_name
from pgwarden.postgres import slot_name as postgres_slot_name
from tests.unit.test_decide_properties import NOW, memories, views

SLOT = re.compile(r"[a-z0-9_]{1,63}")
# Names the config accepts (letters, digits, '_', '.', '-'), several folding to one slot name.
CLASHING = ("node1", "Node1", "NODE1", "node-1", "node_1", "node.1", "Node-1", "node2", "NODE2", "n" * 70)


@pytest.mark.parametrize(
    ("member", "slot"),
    [
        ("node1", "node1"),
        ("Node-1", "node_1"),
        ("node_1", "node_1"),
        ("node.1", "node_1"),
        ("pg-east.2", "pg_east_2"),
        ("x" * 80, "x" * 63),
    ],
)
def test_slot_names_are_patronis_so_existing_slots_keep_their_names(member: str, slot: str) -> None:
    assert slot_name(member) == slot
    assert postgres_slot_name is slot_name  # one mapping, used by the core and the executor alike


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(min_size=1, max_size=100))
def test_any_member_name_gives_a_valid_slot_name_and_a_valid_one_is_kept_as_it_is(name: str) -> None:
    slot = slot_name(name)
    assert SLOT.fullmatch(slot)
    assert slot_name(slot) == slot


def _member(name: str, registered: int) -> Member:
    return Member(name, "http://127.0.0.1:8008", "127.0.0.1", 5432, registered=registered)


@settings(max_examples=300, deadline=None, database=None)
@given(
    names=st.lists(st.sampled_from(CLASHING), min_size=1, max_size=len(CLASHING), unique=True),
    order=st.randoms(use_true_random=False),
    roles=st.lists(st.sampled_from(Role), min_size=len(CLASHING), max_size=len(CLASHING)),
    leader=st.none() | st.sampled_from(CLASHING),
)
def test_exactly_one_member_of_each_slot_name_keeps_it(
    names: list[str], order: random.Random, roles: list[Role], leader: str | None
) -> None:
    revisions = list(range(10, 10 + len(names)))
    order.shuffle(revisions)
    view = ClusterView(
        name="demo",
        leader=Leader(leader) if leader else None,
        members=tuple(
            replace(_member(n, r), role=roles[i])
            for i, (n, r) in enumerate(zip(names, revisions, strict=True))
        ),
    )
    for slot in {slot_name(n) for n in names}:
        group = [m for m in view.members if slot_name(m.name) == slot]
        keepers = [m.name for m in group if view.slot_rival(m.name) is None]
        assert len(keepers) == 1, (slot, keepers)
        # The leader; else a member with data; else the first registered.
        joined = [m for m in group if m.role is not Role.UNINITIALIZED] or group
        first = min(joined, key=lambda m: m.registered).name
        assert keepers == [leader if leader in {m.name for m in group} else first]
        for m in group:
            rival = view.slot_rival(m.name)
            assert rival is None or (rival.name == keepers[0] or view.slot_rival(rival.name) is None)


def test_a_member_not_registered_yet_yields_to_one_already_registered() -> None:
    view = ClusterView(name="demo", members=(_member("node1", 12),))
    rival = view.slot_rival("Node1")
    assert rival is not None and rival.name == "node1"
    assert view.slot_rival("node2") is None


def test_a_member_with_data_keeps_its_slot_name_against_one_registered_before_it() -> None:
    """An agent restart registers its member key again: that must not hand its slot name over."""
    view = ClusterView(
        name="demo", members=(_member("NODE1", 11), replace(_member("node1", 12), role=Role.REPLICA))
    )
    assert view.slot_rival("node1") is None
    rival = view.slot_rival("NODE1")
    assert rival is not None and rival.name == "node1"


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data())
def test_a_newcomer_whose_slot_name_is_taken_takes_no_action_at_all(data: st.DataObject) -> None:
    """Whatever the cluster looks like: no clone, no start, no slot, no race, no bootstrap."""
    view = data.draw(views())
    first = data.draw(st.sampled_from(view.members))
    newcomer = replace(
        first, name=first.name.upper(), role=Role.UNINITIALIZED, registered=first.registered + 1
    )
    view = replace(view, members=(*view.members, newcomer))
    job = data.draw(st.none() | st.sampled_from([Job(k, running=True) for k in JobKind]))
    local = LocalState(data_dir=data.draw(st.sampled_from([DataDir.MISSING, DataDir.INCOMPLETE])), job=job)
    obs = Observation(
        name=newcomer.name,
        tags=newcomer.tags,
        view=view,
        store_ok=True,
        local=local,
        now=NOW,
        memory=data.draw(memories()),
    )
    decision = decide(obs)
    assert decision.reason is Reason.SLOT_NAME_TAKEN, decision.message
    assert decision.actions == ()
    assert first.name in decision.message and newcomer.name in decision.message
