"""Decide-table rows decided by ``pgwarden.ha.rules.candidacy``.

Who races for the leader key when nobody holds it: the best candidate only (safety rule 3).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgwarden.ha.actions import (
    AcquireLeader,
    AppendHistory,
    ClearSwitchover,
    Demote,
    Promote,
    StartStandby,
    StopMode,
)
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import (
    ControlState,
    Role,
)
from tests.support.builders import (
    NOW,
    WALL,
    api_url,
    config,
    empty_local,
    fork,
    intent,
    memory,
    observation,
    peer,
    primary_local,
    standby_local,
    status,
    stopped_local,
    sync_config,
    sync_set,
    uninitialized_view,
    unprobed_local,
    unreachable,
    with_junk,
)
from tests.unit.rules.table import (
    COLD,
    EXPIRED,
    FAILSAFE_LEADERLESS,
    LEADERLESS,
    LEADERLESS_SWITCHING,
    ONE_MEMBER_UP,
    PAUSED,
    Expected,
    check,
    failsafe_leader,
    junk_topology,
    leaderless,
    promised,
    row,
)

ROWS: list[Any] = [
    # --- the leader key holds junk (docs/faults.md, "bad input") -----------------------------------
    row(
        "unreadable_initialize_key_is_no_cluster_to_bootstrap",
        observation(view=with_junk(uninitialized_view(), initialize="x"), local=empty_local()),
        Reason.NOT_RACING_NOT_RUNNING,
        [],
    ),
    row(
        "unreadable_sync_claim_lets_no_candidate_promote",
        leaderless(view=with_junk(replace(LEADERLESS, config=sync_config()), sync="not JSON")),
        Reason.NOT_RACING_NOT_SYNC,
        [],
    ),
    # --- nobody holds the key ---------------------------------------------------------------------
    row(
        "no_leader_while_paused_means_no_failover",
        leaderless(view=replace(LEADERLESS, config=PAUSED)),
        Reason.NO_LEADER_PAUSED,
        [],
    ),
    row(
        "primary_whose_key_vanished_takes_it_back",
        leaderless(local=primary_local()),
        Reason.NO_LEADER_PRIMARY_REACQUIRING,
        [AcquireLeader],
    ),
    row(
        "nofailover_member_does_not_race",
        leaderless(nofailover=True),
        Reason.NOT_RACING_NOFAILOVER,
        [],
    ),
    row(
        "standby_whose_required_watchdog_cannot_be_used_does_not_race",
        leaderless(watchdog_ready=False),
        Reason.NOT_RACING_WATCHDOG,
        [],
    ),
    row(
        "primary_whose_key_vanished_and_required_watchdog_cannot_be_used_stops",
        leaderless(local=primary_local(), watchdog_ready=False),
        Reason.NOT_RACING_WATCHDOG,
        [Demote(StopMode.FAST)],
    ),
    row(
        "stopped_member_starts_read_only_to_become_a_candidate",
        leaderless(local=stopped_local()),
        Reason.NO_LEADER_STARTING_READ_ONLY,
        [StartStandby(None)],
    ),
    row(
        "primary_superseded_while_frozen_demotes_instead_of_taking_the_key_back",
        leaderless(
            name="node1",
            view=replace(LEADERLESS, history=(fork(2, "0/3000000", "node2"),)),
            local=primary_local(timeline=1),
        ),
        Reason.NO_LEADER_SUPERSEDED_PRIMARY_DEMOTING,
        [Demote(StopMode.IMMEDIATE)],
        newest=2,
        mine=1,
    ),
    row(
        "standby_behind_the_newest_timeline_does_not_race",
        leaderless(
            view=replace(LEADERLESS, history=(fork(2, "0/3000000"),)),
            local=standby_local(received="0/3100000", timeline=1),
        ),
        Reason.NOT_RACING_BEHIND_TIMELINE,
        [],
        newest=2,
        mine=1,
    ),
    row(
        "member_without_data_does_not_race",
        leaderless(local=empty_local()),
        Reason.NOT_RACING_NOT_RUNNING,
        [],
    ),
    row(
        "member_with_stuck_probe_does_not_race",
        leaderless(local=unprobed_local(ControlState.IN_ARCHIVE_RECOVERY)),
        Reason.NOT_RACING_NOT_RUNNING,
        [],
    ),
    row(
        "replica_beyond_max_lag_does_not_race",
        leaderless(view=replace(LEADERLESS, status=status("node1", "0/5000000"))),
        Reason.NOT_RACING_LAG,
        [],
        lag=0x2000000,
        leader_lsn="0/5000000",
        limit=1024 * 1024,
    ),
    row(
        "replica_exactly_at_max_lag_races",
        leaderless(view=replace(LEADERLESS, status=status("node1", "0/3100000"))),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "replica_lag_counts_its_furthest_position_received_or_replayed",
        leaderless(
            view=replace(LEADERLESS, status=status("node1", "0/5000000")),
            local=standby_local(received=None, replayed="0/4F00000"),
            peers=[peer("node3", lsn="0/4F00000")],
        ),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "replica_with_no_known_position_counts_as_fully_behind",
        leaderless(
            view=replace(LEADERLESS, status=status("node1", "0/5000000")), local=standby_local(received=None)
        ),
        Reason.NOT_RACING_LAG,
        [],
        lag=0x5000000,
    ),
    row(
        "replica_still_on_an_older_timeline_than_the_published_status_beyond_max_lag_does_not_race",
        leaderless(view=replace(LEADERLESS, status=status("node1", "0/5000000", timeline=2))),
        Reason.NOT_RACING_LAG,
        [],
    ),
    row(
        "stale_status_from_an_older_timeline_is_ignored",
        leaderless(
            view=replace(LEADERLESS, status=status("node1", "0/5000000", timeline=1)),
            local=standby_local(timeline=2),
        ),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "status_naming_myself_is_ignored",
        leaderless(view=replace(LEADERLESS, status=status("node2", "0/5000000"))),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "cold_start_standby_waits_for_the_last_leader_though_a_majority_answered",
        leaderless(view=COLD, peers=[unreachable("node1"), peer("node3")]),
        Reason.COLD_START_WAITING,
        [],
        missing="node1 (the last leader)",
        left=30.0,
    ),
    row(
        "cold_start_standby_alone_waits_for_the_last_leader_and_a_majority",
        leaderless(view=COLD, peers=ONE_MEMBER_UP, memory=memory(cold_start_since=NOW - 12)),
        Reason.COLD_START_WAITING,
        [],
        missing="node1 (the last leader) and a majority of node1, node2, node3 (1 of 2 answered)",
        left=18.0,
    ),
    row(
        "cold_start_last_leader_answering_before_its_postgres_runs_is_still_waited_for",
        leaderless(view=COLD, peers=[peer("node1", running=False), peer("node3")]),
        Reason.COLD_START_WAITING,
        [],
        missing="node1 (the last leader)",
    ),
    row(
        "cold_start_last_leader_races_at_once_its_head_start",
        leaderless(name="node1", view=COLD, peers=[unreachable("node2"), unreachable("node3")]),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
        candidates=1,
    ),
    row(
        "cold_start_standby_defers_to_the_last_leader_holding_more_wal",
        leaderless(view=COLD, peers=[peer("node1", lsn="0/3100000"), unreachable("node3")]),
        Reason.NOT_RACING_PEER_BETTER,
        [],
        peer="node1",
    ),
    row(
        "cold_start_standby_holding_more_wal_than_the_last_leader_races",
        leaderless(
            view=COLD, local=standby_local(received="0/3100000"), peers=[peer("node1"), unreachable("node3")]
        ),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
        candidates=2,
    ),
    row(
        "cold_start_waits_for_the_leader_of_a_promotion_newer_than_the_status",
        leaderless(
            view=replace(COLD, history=(fork(2, "0/2000000", new_leader="node3"),)),
            local=standby_local(timeline=2),
            peers=[peer("node1", timeline=2), unreachable("node3")],
        ),
        Reason.COLD_START_WAITING,
        [],
        missing="node3 (the last leader)",
    ),
    row(
        "cold_start_gives_up_waiting_at_cold_start_timeout_and_says_so",
        leaderless(view=COLD, peers=ONE_MEMBER_UP, memory=memory(cold_start_since=NOW - 30)),
        Reason.COLD_START_GAVE_UP,
        [
            AcquireLeader(),
            Promote(),
            AppendHistory(
                "cold start: node1 (the last leader) and a majority of node1, node2, node3 (1 of 2 "
                "answered) did not answer within cold_start_timeout; failover: no leader"
            ),
        ],
        waited=30.0,
        candidates=1,
    ),
    row(
        "member_that_has_seen_a_leader_fails_over_without_waiting",
        leaderless(view=COLD, peers=ONE_MEMBER_UP, memory=memory(saw_leader=True)),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "cold_start_timeout_zero_turns_the_wait_off",
        leaderless(view=replace(COLD, config=config(cold_start_timeout=0)), peers=ONE_MEMBER_UP),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "status_without_membership_from_an_older_agent_makes_nobody_wait",
        leaderless(view=replace(LEADERLESS, status=status("node1")), peers=ONE_MEMBER_UP),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "cold_start_chosen_failover_candidate_does_not_wait",
        leaderless(view=replace(COLD, switchover=intent(leader=None, failover=True)), peers=ONE_MEMBER_UP),
        Reason.SWITCHOVER_TAKING_OVER,
        [AcquireLeader, Promote, AppendHistory, ClearSwitchover],
    ),
    row(
        "member_outside_the_sync_set_does_not_race",
        leaderless(view=replace(LEADERLESS, config=sync_config(), sync=sync_set("node3"))),
        Reason.NOT_RACING_NOT_SYNC,
        [],
        why="not in the synchronous set ['node3']",
    ),
    row(
        "a_peer_whose_loop_fails_is_no_rival_even_with_more_wal",
        leaderless(peers=[replace(peer("node3", lsn="0/3100000"), loop_failing=True)]),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
        candidates=1,
    ),
    row(
        "sync_set_member_races_even_when_an_async_peer_has_more_wal",
        leaderless(
            view=replace(LEADERLESS, config=sync_config(), sync=sync_set("node2")),
            peers=[peer("node3", lsn="0/3100000")],
        ),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
        candidates=1,
    ),
    row(
        "sync_set_member_defers_to_a_sync_peer_with_more_wal",
        leaderless(
            view=replace(LEADERLESS, config=sync_config(), sync=sync_set("node2", "node3", quorum=2)),
            peers=[peer("node3", lsn="0/3100000")],
        ),
        Reason.NOT_RACING_PEER_BETTER,
        [],
        peer="node3",
    ),
    row(
        "quorum_member_defers_to_a_more_advanced_member_of_the_set",
        leaderless(
            view=replace(LEADERLESS, config=sync_config(), sync=sync_set("node2", "node3", quorum=1)),
            peers=[peer("node3", lsn="0/3100000", nofailover=True)],
        ),
        Reason.NOT_RACING_NOT_SYNC,
        [],
        why="synchronous member node3 holds more WAL (0/3100000 > 0/3000000)",
    ),
    row(
        "quorum_member_needs_enough_members_to_answer_that_every_commit_quorum_overlaps",
        leaderless(
            view=replace(
                LEADERLESS, config=sync_config(), sync=sync_set("node2", "node3", "node4", quorum=1)
            ),
            peers=[peer("node3"), unreachable("node4")],
        ),
        Reason.NOT_RACING_NOT_SYNC,
        [],
        why="only 2 of the 3 synchronous members every commit quorum overlaps answer",
    ),
    row(
        "quorum_member_most_advanced_of_enough_members_races",
        leaderless(
            view=replace(
                LEADERLESS, config=sync_config(), sync=sync_set("node2", "node3", "node4", quorum=2)
            ),
            local=standby_local(received="0/3000100"),
            peers=[peer("node3"), unreachable("node4")],
        ),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "empty_sync_claim_means_nobody_is_known_to_hold_every_commit",
        leaderless(view=replace(LEADERLESS, config=sync_config(), sync=sync_set())),
        Reason.NOT_RACING_NOT_SYNC,
        [],
    ),
    row(
        "degraded_sync_claim_lets_any_member_race",
        leaderless(view=replace(LEADERLESS, config=sync_config(), sync=sync_set(quorum=0))),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "stored_sync_set_is_ignored_while_synchronous_mode_is_off",
        leaderless(view=replace(LEADERLESS, sync=sync_set("node3"))),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "peer_with_more_wal_is_the_better_candidate",
        leaderless(peers=[peer("node3", lsn="0/3000100")]),
        Reason.NOT_RACING_PEER_BETTER,
        [],
        peer="node3",
    ),
    row(
        "peer_with_equal_wal_and_higher_failover_priority_is_the_better_candidate",
        leaderless(peers=[peer("node3", failover_priority=2)]),
        Reason.NOT_RACING_PEER_BETTER,
        [],
        peer="node3",
    ),
    row(
        "higher_failover_priority_never_beats_more_wal",
        leaderless(local=standby_local(received="0/3000100"), peers=[peer("node3", failover_priority=9)]),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    row(
        "peer_with_equal_wal_and_priority_and_a_smaller_name_is_the_better_candidate",
        leaderless("node3"),
        Reason.NOT_RACING_PEER_BETTER,
        [],
        peer="node2",
    ),
    row(
        "smaller_name_races_on_a_full_tie",
        leaderless("node2"),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
        candidates=2,
    ),
    row(
        "unreachable_peer_is_not_a_candidate",
        leaderless("node3", peers=[unreachable("node2")]),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
        candidates=1,
    ),
    row(
        "nofailover_peer_with_more_wal_is_not_a_candidate",
        leaderless(peers=[peer("node3", lsn="0/3100000", nofailover=True)]),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
        candidates=1,
    ),
    row(
        "stopped_peer_is_not_a_candidate",
        leaderless(peers=[peer("node3", lsn="0/3100000", running=False)]),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
        candidates=1,
    ),
    row(
        "peer_still_running_as_primary_makes_candidates_wait",
        leaderless(peers=[peer("node1", role=Role.PRIMARY, lsn="0/3000000"), peer("node3")]),
        Reason.NOT_RACING_PRIMARY_ALIVE,
        [],
        peer="node1",
    ),
    row(
        "healthiest_of_three_acquires_the_key_then_promotes",
        leaderless(
            local=standby_local(received="0/3000200"),
            peers=[unreachable("node1"), peer("node3", lsn="0/3000100"), peer("node4", lsn="0/3000000")],
        ),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader(), Promote(), AppendHistory("failover: no leader")],
        candidates=3,
    ),
    # --- planned switchover: the candidate's half -----------------------------------------------
    row(
        "switchover_candidate_takes_the_released_key_and_promotes_without_comparing_peers",
        leaderless(view=LEADERLESS_SWITCHING, peers=[peer("node3", lsn="0/3000100")]),
        Reason.SWITCHOVER_TAKING_OVER,
        [AcquireLeader(), Promote(), AppendHistory("switchover from node1"), ClearSwitchover()],
        kind="switchover",
    ),
    row(
        "switchover_in_progress_other_members_do_not_race",
        leaderless("node3", view=LEADERLESS_SWITCHING, local=standby_local(received="0/4000000")),
        Reason.NOT_RACING_SWITCHOVER,
        [],
        candidate="node2",
    ),
    row(
        "switchover_candidate_takes_over_even_in_maintenance_mode",
        leaderless(view=replace(LEADERLESS_SWITCHING, config=PAUSED)),
        Reason.SWITCHOVER_TAKING_OVER,
        [AcquireLeader, Promote, AppendHistory, ClearSwitchover],
    ),
    row(
        "switchover_candidate_still_defers_to_a_running_primary",
        leaderless(view=LEADERLESS_SWITCHING, peers=[peer("node1", role=Role.PRIMARY)]),
        Reason.NOT_RACING_PRIMARY_ALIVE,
        [],
    ),
    row(
        "expired_switchover_intent_no_longer_holds_back_the_race",
        leaderless(
            "node3",
            view=replace(LEADERLESS, switchover=intent(deadline=WALL - 1)),
            local=standby_local(received="0/4000000"),
            peers=[peer("node2")],
        ),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
    ),
    # --- the leader, etcd back ----------------------------------------------------------------
    row(
        "failsafe_primary_with_etcd_back_and_its_key_expired_takes_it_back",
        failsafe_leader(
            view=FAILSAFE_LEADERLESS, store_ok=True, lease_deadline=EXPIRED, failsafe_deadline=NOW + 2.0
        ),
        Reason.NO_LEADER_PRIMARY_REACQUIRING,
        [AcquireLeader],
    ),
    # --- a member that promised ---------------------------------------------------------------
    row(
        "member_whose_promise_ran_out_races_again",
        observation(view=FAILSAFE_LEADERLESS, peers=[peer("node3")], promise=promised(NOW - 0.1)),
        Reason.NO_LEADER_I_AM_HEALTHIEST,
        [AcquireLeader, Promote, AppendHistory],
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


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
