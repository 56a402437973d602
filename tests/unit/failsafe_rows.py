"""Rows of the decide table for failsafe mode (test_decide_table.py runs them with every other row).

The leader without etcd asks every member to promise; a member that promised waits its promise
out; only members of the published topology race; etcd back, the leader takes its key over and
records the outage.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from pgwarden.ha.actions import (
    AcquireLeader,
    Action,
    AppendHistory,
    Demote,
    EnsureSlots,
    Promote,
    PublishFailsafe,
    PublishStatus,
    RecordFailsafe,
    RenewFailsafe,
    RenewLeader,
    StopMode,
)
from pgwarden.ha.observation import FailsafeEpisode, Memory, Observation, Promise
from pgwarden.ha.reasons import Reason
from pgwarden.model import FAILSAFE, ClusterView, HistoryEntry, Lsn
from tests.unit.builders import (
    NOW,
    WALL,
    api_url,
    config,
    failsafe_view,
    member,
    observation,
    peer,
    primary_local,
    primary_member,
    standby_local,
    unprobed_local,
    unreachable,
    view,
    with_junk,
)

IMMEDIATE = Demote(StopMode.IMMEDIATE)
EXPIRED = NOW - 0.5
ASKED = (("node2", api_url("node2")), ("node3", api_url("node3")))
FAILSAFE_LEADERLESS = failsafe_view(leader=None, members=(member("node2"), member("node3")))
LEADERLESS = view(leader=None, members=(member("node2"), member("node3")))
BEGAN = WALL - 40  # when the etcd outage of the history rows began
STAMP = datetime.fromtimestamp(BEGAN, UTC).isoformat(timespec="seconds")
RODE_OUT = Memory(failsafe=FailsafeEpisode(began=BEGAN, relied=True, members=("node2", "node3")))
RECORDED = HistoryEntry(1, Lsn(0x3000000), "etcd unreachable for 40s", STAMP, "node1", FAILSAFE)


def row(case: str, obs: Observation, reason: Reason, actions: list[Any], **detail: object) -> Any:
    return pytest.param(obs, reason, actions, detail, id=case)


def leader(**kw: Any) -> Observation:
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

FAILSAFE_ROWS: list[Any] = [
    # --- the leader, etcd unreachable ---------------------------------------------------------
    row(
        "failsafe_leader_without_etcd_asks_every_member_to_promise",
        leader(lease_deadline=NOW + 2.5),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe(ASKED)],
        members="node2, node3",
        remaining=2.5,
    ),
    row(
        "failsafe_leader_past_its_lease_keeps_writing_on_the_promises_and_asks_again",
        leader(lease_deadline=EXPIRED, failsafe_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe(ASKED)],
        remaining=2.0,
    ),
    row(
        "failsafe_leader_past_its_lease_and_its_promises_demotes",
        leader(lease_deadline=EXPIRED, failsafe_deadline=NOW - 0.1),
        Reason.STORE_UNREACHABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "failsafe_leader_with_unprobed_postgres_past_both_deadlines_demotes",
        leader(local=unprobed_local(), lease_deadline=EXPIRED, failsafe_deadline=EXPIRED),
        Reason.STORE_UNREACHABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "failsafe_leader_asks_a_topology_member_missing_from_its_view",
        leader(view=failsafe_view(("node1", "node2", "node3", "node4")), lease_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe((*ASKED, ("node4", api_url("node4"))))],
    ),
    row(
        "failsafe_leader_asks_a_member_that_joined_after_the_last_topology",
        leader(
            view=failsafe_view(
                ("node1", "node2"), members=(primary_member(), member("node2"), member("node3"))
            ),
            lease_deadline=NOW + 2.0,
        ),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe(ASKED)],
    ),
    row(
        "failsafe_leader_alone_in_its_topology_needs_no_promise",
        leader(view=failsafe_view(("node1",), members=(primary_member(),)), lease_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe(())],
        members="nobody (no other member)",
    ),
    row(
        "failsafe_without_a_published_topology_cannot_keep_the_primary",
        leader(view=failsafe_view(None), lease_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_FAILSAFE_UNAVAILABLE,
        [],
        why="no failsafe topology published yet",
    ),
    row(
        "failsafe_primary_whose_last_view_names_no_leader_is_not_carried",
        leader(view=failsafe_view(leader=None), lease_deadline=EXPIRED, failsafe_deadline=NOW + 1.0),
        Reason.STORE_UNREACHABLE_FAILSAFE_UNAVAILABLE,
        [],
        why="the last view I read does not name me as the leader",
        remaining=1.0,
    ),
    row(
        "failsafe_leader_with_a_junk_topology_asks_every_member_of_the_last_valid_one",
        leader(
            view=junk_topology(failsafe_view(), ("node1", "node2", "node3", "node4")),
            lease_deadline=NOW + 2.0,
        ),
        Reason.STORE_UNREACHABLE_FAILSAFE,
        [RenewFailsafe((*ASKED, ("node4", api_url("node4"))))],
        members="node2, node3, node4",
    ),
    row(
        "failsafe_leader_with_a_junk_topology_and_no_valid_one_read_cannot_keep_the_primary",
        leader(view=junk_topology(failsafe_view(), None), lease_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_FAILSAFE_UNAVAILABLE,
        [],
        why="the failsafe topology in etcd is unreadable and I read no valid one since I started",
    ),
    row(
        "failsafe_off_leader_without_etcd_does_not_ask_anyone",
        leader(view=view(), lease_deadline=NOW + 2.0),
        Reason.STORE_UNREACHABLE_LEASE_VALID,
        [],
    ),
    row(
        "failsafe_paused_leader_without_etcd_takes_no_action",
        leader(view=failsafe_view(config=config(failsafe_mode=True, pause=True)), lease_deadline=EXPIRED),
        Reason.STORE_UNREACHABLE_PAUSED,
        [],
    ),
    # --- the leader, etcd back ----------------------------------------------------------------
    row(
        "failsafe_leader_with_etcd_back_past_its_lease_takes_its_key_over_instead_of_demoting",
        leader(store_ok=True, lease_deadline=EXPIRED, failsafe_deadline=NOW + 2.0),
        Reason.LEADER_ADOPTING,
        HEALTHY,
    ),
    row(
        "failsafe_primary_with_etcd_back_and_its_key_expired_takes_it_back",
        leader(view=FAILSAFE_LEADERLESS, store_ok=True, lease_deadline=EXPIRED, failsafe_deadline=NOW + 2.0),
        Reason.NO_LEADER_PRIMARY_REACQUIRING,
        [AcquireLeader],
    ),
    row(
        "failsafe_leader_renews_with_a_round_of_promises_to_fall_back_on",
        leader(store_ok=True, lease_deadline=NOW + 3.0),
        Reason.LEADER_HEALTHY,
        [RenewLeader(failsafe=ASKED), PublishStatus, EnsureSlots],
    ),
    row(
        "failsafe_leader_without_a_topology_renews_with_nothing_to_fall_back_on",
        leader(view=failsafe_view(None), store_ok=True, lease_deadline=NOW + 3.0),
        Reason.LEADER_HEALTHY,
        [RenewLeader(failsafe=None), PublishStatus, PublishFailsafe, EnsureSlots],
    ),
    row(
        "failsafe_leader_with_etcd_back_records_the_outage_in_the_history",
        leader(store_ok=True, lease_deadline=NOW + 3.0, memory=RODE_OUT),
        Reason.LEADER_HEALTHY,
        [
            *HEALTHY,
            RecordFailsafe(STAMP, "etcd unreachable for 40s: kept writing on the promises of node2, node3"),
        ],
    ),
    row(
        "failsafe_outage_already_in_the_history_is_not_recorded_twice",
        leader(
            view=failsafe_view(history=[RECORDED]), store_ok=True, lease_deadline=NOW + 3.0, memory=RODE_OUT
        ),
        Reason.LEADER_HEALTHY,
        HEALTHY,
    ),
    row(
        "leader_publishes_the_failsafe_topology_when_the_members_change",
        leader(view=failsafe_view(("node1", "node2")), store_ok=True, lease_deadline=NOW + 3.0),
        Reason.LEADER_HEALTHY,
        [
            RenewLeader,
            PublishStatus,
            PublishFailsafe(tuple((n, api_url(n)) for n in ("node1", "node2", "node3"))),
            EnsureSlots,
        ],
    ),
    row(
        "leader_publishes_no_failsafe_topology_without_its_own_member_record",
        leader(
            view=failsafe_view(("node2", "node3"), members=(member("node2"), member("node3"))),
            store_ok=True,
            lease_deadline=NOW + 3.0,
        ),
        Reason.LEADER_HEALTHY,
        HEALTHY,
    ),
    row(
        "leader_keeps_a_topology_member_cut_from_etcd_while_its_api_answers",
        leader(
            view=failsafe_view(members=(primary_member(), member("node2"))),
            peers=[peer("node3")],
            store_ok=True,
            lease_deadline=NOW + 3.0,
        ),
        Reason.LEADER_HEALTHY,
        HEALTHY,
    ),
    row(
        "leader_drops_a_topology_member_without_a_key_whose_api_is_silent",
        leader(
            view=failsafe_view(members=(primary_member(), member("node2"))),
            peers=[unreachable("node3")],
            store_ok=True,
            lease_deadline=NOW + 3.0,
        ),
        Reason.LEADER_HEALTHY,
        [
            RenewLeader,
            PublishStatus,
            PublishFailsafe(tuple((n, api_url(n)) for n in ("node1", "node2"))),
            EnsureSlots,
        ],
    ),
    row(
        "leader_removes_the_failsafe_topology_once_the_mode_is_off",
        leader(view=failsafe_view(config=config()), store_ok=True, lease_deadline=NOW + 3.0),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, PublishFailsafe(None), EnsureSlots],
    ),
    # --- a member that promised ---------------------------------------------------------------
    row(
        "member_that_promised_waits_while_etcd_holds_no_key",
        observation(view=FAILSAFE_LEADERLESS, peers=[peer("node3")], promise=promised()),
        Reason.FAILSAFE_PROMISE_HOLDING,
        [],
        leader="node1",
        remaining=3.0,
    ),
    row(
        "member_that_promised_does_not_follow_another_leader",
        observation(view=failsafe_view(leader="node3"), promise=promised()),
        Reason.FAILSAFE_PROMISE_HOLDING,
        [],
    ),
    row(
        "member_that_promised_follows_the_leader_it_promised_as_usual",
        observation(view=failsafe_view(), promise=promised()),
        Reason.STANDBY_HEALTHY,
        [],
    ),
    row(
        "member_whose_promise_ran_out_races_again",
        observation(view=FAILSAFE_LEADERLESS, peers=[peer("node3")], promise=promised(NOW - 0.1)),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "member_that_promised_yet_runs_read_write_demotes",
        observation(view=FAILSAFE_LEADERLESS, local=primary_local(), promise=promised()),
        Reason.FAILSAFE_PROMISE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "member_that_promised_and_cannot_read_etcd_waits",
        observation(view=failsafe_view(), store_ok=False, local=standby_local(), promise=promised()),
        Reason.STORE_UNREACHABLE,
        [],
    ),
    row(
        "member_whose_agent_just_started_does_not_race_it_may_have_promised_before",
        observation(view=FAILSAFE_LEADERLESS, peers=[peer("node3")], agent_started=NOW - 1.5),
        Reason.NOT_RACING_FAILSAFE_RESTARTED,
        [],
        age=1.5,
    ),
    row(
        "member_whose_agent_started_ttl_ago_races",
        observation(view=FAILSAFE_LEADERLESS, peers=[peer("node3")], agent_started=NOW - 4.0),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "member_whose_agent_just_started_races_without_failsafe_mode",
        observation(view=replace(LEADERLESS, failsafe=None), peers=[peer("node3")], agent_started=NOW - 1.5),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "candidate_does_not_defer_to_a_better_peer_outside_the_failsafe_topology",
        observation(
            view=replace(
                FAILSAFE_LEADERLESS, failsafe={"node1": api_url("node1"), "node2": api_url("node2")}
            ),
            peers=[peer("node3", lsn="0/3100000")],
        ),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
        candidates=1,
    ),
    row(
        "leader_republishes_a_junk_topology_keeping_a_member_of_the_last_valid_one_whose_api_answers",
        leader(
            view=junk_topology(
                failsafe_view(members=(primary_member(), member("node2"))), ("node1", "node2", "node3")
            ),
            peers=[peer("node3")],
            store_ok=True,
            lease_deadline=NOW + 3.0,
        ),
        Reason.LEADER_HEALTHY,
        [
            RenewLeader(failsafe=ASKED),
            PublishStatus,
            PublishFailsafe(tuple((n, api_url(n)) for n in ("node1", "node2", "node3"))),
            EnsureSlots,
        ],
    ),
    row(
        "unreadable_failsafe_topology_lets_no_member_race_in_failsafe_mode",
        observation(
            view=junk_topology(FAILSAFE_LEADERLESS, ("node1", "node2", "node3")), peers=[peer("node3")]
        ),
        Reason.NOT_RACING_FAILSAFE_TOPOLOGY_UNREADABLE,
        [],
        why="not JSON",
    ),
    row(
        "unreadable_failsafe_topology_is_no_bar_to_racing_with_failsafe_mode_off",
        observation(view=with_junk(LEADERLESS, failsafe="not JSON"), peers=[peer("node3")]),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "leader_republishes_an_unreadable_failsafe_topology_with_no_round_to_fall_back_on_meanwhile",
        leader(view=junk_topology(failsafe_view(), None), store_ok=True, lease_deadline=NOW + 3.0),
        Reason.LEADER_HEALTHY,
        [
            RenewLeader(failsafe=None),
            PublishStatus,
            PublishFailsafe(tuple((n, api_url(n)) for n in ("node1", "node2", "node3"))),
            EnsureSlots,
        ],
    ),
    row(
        "member_outside_a_stale_topology_races_once_failsafe_mode_is_off",
        observation(view=replace(LEADERLESS, failsafe={"node1": api_url("node1")}), peers=[peer("node3")]),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "member_outside_the_failsafe_topology_does_not_race",
        observation(
            view=replace(FAILSAFE_LEADERLESS, failsafe={"node1": api_url("node1"), "node3": api_url("node3")})
        ),
        Reason.NOT_RACING_OUTSIDE_FAILSAFE_TOPOLOGY,
        [],
        members="node1, node3",
    ),
]
