"""Shared scenarios and the check of the decide table (tests/unit/rules/test_<module>.py hold the rows).

Each row names a case, the observation, the reason code and the actions in order; a row lives in the
file of the rules module whose rule decides it (``test_table.py`` checks that, and that the rows
together reach every rule and every reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from itertools import zip_longest
from typing import Any

import pytest

from pgwarden.ha.actions import (
    Action,
    Demote,
    EnsureSlots,
    PublishStatus,
    RenewLeader,
    StopMode,
)
from pgwarden.ha.decide import RULES, decide
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import FailsafeEpisode, Memory, Observation, Promise
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.jobs import RETRY_AFTER
from pgwarden.model import (
    FAILSAFE,
    ClusterView,
    ControlState,
    HistoryEntry,
    LocalState,
    Lsn,
    Member,
    PgState,
    Role,
    Slot,
)
from tests.support.builders import (
    NOW,
    WALL,
    api_url,
    config,
    default_members,
    failsafe_view,
    fork,
    intent,
    member,
    memory,
    observation,
    peer,
    primary_local,
    primary_member,
    status,
    stopped_local,
    unreachable,
    view,
    with_junk,
)

LEASED = NOW + 3.0  # a lease renewed a moment ago
EXPIRED = NOW - 0.5  # a lease whose deadline just passed
PAUSED = config(pause=True)
IMMEDIATE = Demote(StopMode.IMMEDIATE)
LONG_AGO = NOW - 10 * RETRY_AFTER
LEADERLESS = view(leader=None, members=(member("node2"), member("node3")))
JUNK_LEADER = with_junk(view(), leader="not JSON")
SAW_ME_LEAD = Memory(leader_seen="node1")  # the leader key named node1 when last readable
# node1 promoted at 0/3000000 to timeline 2; node2, the former primary, stayed on timeline 1.
AFTER_FAILOVER = view(
    members=(
        primary_member("node1", timeline=2, lsn="0/3200000"),
        member("node2", state=PgState.STOPPED, timeline=1),
        member("node3", timeline=2),
    ),
    history=[fork(2, "0/3000000")],
)
NO_REWIND = config(use_pg_rewind=False)
NO_REWIND_BUT_REMOVE = config(use_pg_rewind=False, remove_data_directory_on_diverged_timelines=True)
REMOVE_ALLOWED = config(remove_data_directory_on_diverged_timelines=True)

Expected = Sequence[type[Action] | Action]
# The dynamic config asks for work_mem; a node that applied only the defaults has yet to apply it.
TUNED = view(config=config(parameters={"work_mem": "8MB"}))


def applied(local: LocalState, **parameters: str) -> LocalState:
    """``local`` having written the default cluster parameters plus ``parameters`` into its config."""
    return replace(local, applied_parameters={"max_slot_wal_keep_size": "4GB", **parameters})


def started(local: LocalState, at: float) -> LocalState:
    return replace(local, started_at=at)


def scheduled(name: str, at: float) -> ClusterView:
    """The default cluster, ``name`` having published a restart scheduled for ``at``."""
    base = view()
    return replace(
        base, members=tuple(replace(m, scheduled_restart=at) if m.name == name else m for m in base.members)
    )


def row(case: str, obs: Observation, reason: Reason, actions: Expected, **detail: object) -> Any:
    return pytest.param(obs, reason, actions, detail, id=case)


def leader(**kw: object) -> Observation:
    """node1, holding the key on a fresh lease, unless the row says otherwise."""
    kw.setdefault("lease_deadline", LEASED)
    return observation("node1", **kw)  # type: ignore[arg-type]


# node1 stopped cleanly for a switchover to node2; its shutdown checkpoint starts at 0/3000100.
CLEANLY_STOPPED = stopped_local(ControlState.SHUT_DOWN, checkpoint="0/3000100")
SWITCHING = view(switchover=intent())
LEADERLESS_SWITCHING = replace(LEADERLESS, switchover=intent())
STREAMING_TO_BOTH = replace(
    primary_local(), replication={"node2": Lsn.parse("0/3000000"), "node3": Lsn.parse("0/3000000")}
)


def registered(*members: Member) -> tuple[Member, ...]:
    """``members`` as etcd returns them: member keys created one after the other, in this order."""
    return tuple(replace(m, registered=10 + i) for i, m in enumerate(members))


# "NODE2" folds to node2's slot name; it arrives, without data, after node2 registered.
NEWCOMER = member("NODE2", Role.UNINITIALIZED, state=PgState.STOPPED, lsn=None, timeline=None)
CROWDED = view(members=registered(primary_member("node1"), member("node2"), member("node3")))
CROWDED_LATER = view(members=registered(primary_member("node1"), member("node2"), member("node3"), NEWCOMER))
CROWDED_LEADERLESS = replace(CROWDED_LATER, leader=None, members=CROWDED_LATER.members[1:])
# node2's agent restarted: its member key is registered again, after NODE2's.
RESTARTED = view(members=registered(primary_member("node1"), NEWCOMER, member("node3"), member("node2")))
# Two nodes without data, named so that they share the slot node_4.
TWO_NEWCOMERS = view(
    members=registered(
        *default_members(),
        member("node_4", Role.UNINITIALIZED, state=PgState.STOPPED),
        member("Node-4", Role.UNINITIALIZED, state=PgState.STOPPED),
    )
)
# node3 gone from etcd (its node died); the leader keeps its slot for member_slots_ttl (1800 s).
WITHOUT_NODE3 = view(members=registered(primary_member("node1"), member("node2")))
NEW_NODE1 = member("Node1", Role.UNINITIALIZED, state=PgState.STOPPED)
LATELY = memory(member_last_seen={"node1": NOW, "node2": NOW, "node3": NOW - 60})
LONG_GONE = memory(member_last_seen={"node1": NOW, "node2": NOW, "node3": NOW - 2000})
# A full restart: nobody has seen a leader since starting; node1 led last and saw all three.
COLD = replace(LEADERLESS, status=status("node1", "0/3000000", members=("node1", "node2", "node3")))
ONE_MEMBER_UP = [unreachable("node1"), unreachable("node3")]
ALL_THREE = frozenset({"node1", "node2", "node3"})


def leaderless(name: str = "node2", **kw: object) -> Observation:
    kw.setdefault("view", LEADERLESS)
    kw.setdefault("peers", [peer("node3")] if name != "node3" else [peer("node2")])
    return observation(name, **kw)  # type: ignore[arg-type]


ASKED = (("node2", api_url("node2")), ("node3", api_url("node3")))
FAILSAFE_LEADERLESS = failsafe_view(leader=None, members=(member("node2"), member("node3")))
BEGAN = WALL - 40  # when the etcd outage of the history rows began
STAMP = datetime.fromtimestamp(BEGAN, UTC).isoformat(timespec="seconds")
RODE_OUT = Memory(failsafe=FailsafeEpisode(began=BEGAN, relied=True, members=("node2", "node3")))
RECORDED = HistoryEntry(1, Lsn(0x3000000), "etcd unreachable for 40s", STAMP, "node1", FAILSAFE)


def failsafe_leader(**kw: Any) -> Observation:
    """node1, leader of a failsafe cluster whose topology is published, etcd unreachable."""
    kw.setdefault("view", failsafe_view())
    kw.setdefault("store_ok", False)
    kw.setdefault("local", primary_local())
    return observation("node1", **kw)


def junk_topology(base: ClusterView, last_good: tuple[str, ...] | None) -> ClusterView:
    """``base`` with junk in the failsafe key, read as the observer reads it: a topology of nobody
    (``failsafe`` {}), and beside it the last valid one it read (``last_good`` names, or None)."""
    kept = None if last_good is None else {name: api_url(name) for name in last_good}
    return replace(with_junk(base, failsafe="not JSON"), failsafe_last_good=kept)


def promised(until: float = NOW + 3.0, to: str = "node1") -> Promise:
    return Promise(to, until)


HEALTHY: list[type[Action] | Action] = [RenewLeader, PublishStatus, EnsureSlots]


# --- a cascade: node5 streams from node4 (replicatefrom), node1 leads ----------------------------
def cascade(relay: PgState = PgState.RUNNING, **leaf: Any) -> ClusterView:
    """Five members, node1 the primary at 0/5000000, node5 tagged replicatefrom=node4 and
    reporting 0/4000000 (``leaf`` changes node5's member record, ``relay`` node4's state)."""
    fields = {"lsn": "0/4000000", "replicatefrom": "node4", **leaf}
    return view(
        members=(
            primary_member(lsn="0/5000000"),
            member("node2"),
            member("node3"),
            member("node4", state=relay, nofailover=True),
            member("node5", nofailover=True, **fields),
        )
    )


def idle_slot(restart_lsn: str) -> Slot:
    return Slot(active=False, restart_lsn=Lsn.parse(restart_lsn))


STREAMING_SLOT = Slot(active=True, restart_lsn=Lsn.parse("0/3000000"))


def cascade_primary(leaf_slot: Slot) -> LocalState:
    """node1's PostgreSQL at 0/5000000: nodes 2-4 stream through their slots, node5's is ``leaf_slot``."""
    slots = {"node2": STREAMING_SLOT, "node3": STREAMING_SLOT, "node4": STREAMING_SLOT, "node5": leaf_slot}
    return replace(primary_local(lsn="0/5000000"), slots=slots)


def deciding_module(obs: Observation) -> str:
    """The ``pgwarden.ha.rules`` module of the first rule in ``RULES`` that decides ``obs``."""
    rule = next(rule for rule in RULES if rule(obs) is not None)
    return rule.__module__.rsplit(".", 1)[-1]


def _shape(actions: Sequence[Action], expected: Expected) -> list[object]:
    """The actual actions, as types where the row names only a type and as values where it gives one."""
    return [a if not isinstance(e, type) else type(a) for a, e in zip_longest(actions, expected)]


def _rendered(decision: Decision) -> str:
    """The message, formatted strictly: ``Reason.render``'s fallback would hide a missing parameter."""
    return decision.reason.value.format(**decision.detail)


def check(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    """What every row asserts: the reason, the actions in order, the detail named, a complete message."""
    decision = decide(obs)
    assert decision.reason is reason, decision.message
    assert _shape(decision.actions, actions) == list(actions)
    for key, value in detail.items():
        assert decision.detail.get(key) == value, (key, decision.detail)
    assert _rendered(decision) == decision.message
    assert decision.message and "{" not in decision.message
