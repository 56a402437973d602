"""Decide-table rows decided by ``pgwarden.ha.rules.leadership``.

Rules for the member whose name is in the leader key: renew, promote, restart, or let go.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgwarden.ha.actions import (
    AdoptDataDir,
    AppendHistory,
    ApplyParameters,
    Demote,
    EnsureSlots,
    FinishBootstrap,
    Promote,
    PublishFailsafe,
    PublishStatus,
    PublishSync,
    RecordFailsafe,
    ReleaseLeader,
    RenewLeader,
    RewriteLeader,
    StartPrimary,
    StopMode,
)
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.model import (
    SYNC_DEGRADED,
    ControlState,
    Lsn,
    PgState,
    SyncFallback,
    SyncState,
)
from tests.support.builders import (
    NOW,
    SYSTEM_ID,
    WALL,
    api_url,
    config,
    failsafe_view,
    intent,
    member,
    memory,
    observation,
    peer,
    primary_local,
    primary_member,
    standby_local,
    stopped_local,
    sync_config,
    sync_set,
    unmarked,
    unprobed_local,
    unreachable,
    view,
    with_junk,
)
from tests.unit.rules.table import (
    ALL_THREE,
    ASKED,
    EXPIRED,
    HEALTHY,
    IMMEDIATE,
    JUNK_LEADER,
    PAUSED,
    RECORDED,
    RODE_OUT,
    SAW_ME_LEAD,
    STAMP,
    STREAMING_SLOT,
    STREAMING_TO_BOTH,
    TUNED,
    Expected,
    applied,
    cascade,
    cascade_primary,
    check,
    failsafe_leader,
    idle_slot,
    junk_topology,
    leader,
    registered,
    row,
)

ROWS: list[Any] = [
    # --- lease ------------------------------------------------------------------------------------
    row(
        "leader_past_lease_deadline_demotes_before_the_key_can_move",
        leader(local=primary_local(), lease_deadline=EXPIRED),
        Reason.LEADER_LEASE_EXPIRED_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "leader_with_unprobed_postgres_past_lease_deadline_demotes",
        leader(local=unprobed_local(), lease_deadline=EXPIRED),
        Reason.LEADER_LEASE_EXPIRED_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "paused_leader_past_lease_deadline_keeps_its_primary_and_renews",
        leader(view=view(config=PAUSED), local=primary_local(), lease_deadline=EXPIRED),
        Reason.LEADER_ADOPTING,
        [RenewLeader, PublishStatus, EnsureSlots],
    ),
    row(
        "leader_running_as_standby_past_lease_deadline_renews_before_promoting",
        leader(local=standby_local(upstream=None), lease_deadline=EXPIRED),
        Reason.LEADER_PROMOTING,
        [RenewLeader, Promote, AppendHistory],
    ),
    # --- the leader key holds junk (docs/faults.md, "bad input") -----------------------------------
    row(
        "holder_rewrites_an_unreadable_leader_key_and_keeps_its_primary",
        leader(view=JUNK_LEADER, local=primary_local(), memory=SAW_ME_LEAD),
        Reason.LEADER_KEY_REWRITING,
        [RenewLeader, RewriteLeader(9)],
        why="not JSON",
    ),
    row(
        "holder_rewrites_an_unreadable_leader_key_while_its_postgres_is_down",
        leader(view=JUNK_LEADER, local=stopped_local(ControlState.IN_PRODUCTION), memory=SAW_ME_LEAD),
        Reason.LEADER_KEY_REWRITING,
        [RenewLeader, RewriteLeader(9)],
    ),
    row(
        "primary_that_cannot_tell_the_unreadable_key_is_its_own_demotes",
        leader(view=JUNK_LEADER, local=primary_local()),  # restarted: no memory of the key
        Reason.LEADER_KEY_UNREADABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "primary_whose_lease_ran_out_under_an_unreadable_key_demotes",
        leader(view=JUNK_LEADER, local=primary_local(), memory=SAW_ME_LEAD, lease_deadline=EXPIRED),
        Reason.LEADER_KEY_UNREADABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "standby_never_races_for_an_unreadable_leader_key",
        observation(view=JUNK_LEADER, peers=[peer("node3", lsn="0/2000000")]),
        Reason.LEADER_KEY_UNREADABLE_WAITING,
        [],
        why="not JSON",
    ),
    row(
        "former_holder_without_a_lease_waits_for_the_key_to_be_rewritten",
        leader(view=JUNK_LEADER, local=standby_local(), memory=SAW_ME_LEAD, lease_deadline=None),
        Reason.LEADER_KEY_UNREADABLE_WAITING,
        [],
    ),
    row(
        "leader_rewrites_an_unreadable_initialize_key_with_its_system_identifier",
        leader(view=with_junk(view(), initialize="x"), local=primary_local()),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, FinishBootstrap(SYSTEM_ID), EnsureSlots],
    ),
    row(
        "leader_republishes_an_unreadable_sync_claim",
        leader(
            view=with_junk(view(), sync="not JSON"), local=replace(primary_local(), sync_standby_names="")
        ),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, PublishSync(SyncState(leader="node1")), EnsureSlots],
    ),
    # --- synchronous replication: rank fills a free place only; a degraded claim goes into history --
    row(
        "synchronous_standby_keeps_its_place_when_a_higher_ranked_standby_returns",
        leader(
            view=view(config=sync_config(), sync=sync_set("node3")),
            local=replace(STREAMING_TO_BOTH, sync_standby_names='FIRST 1 ("node3")'),
        ),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots],
    ),
    row(
        "a_free_synchronous_place_goes_to_the_best_ranked_streaming_standby",
        leader(
            view=view(config=sync_config(), sync=sync_set("node3")),
            local=replace(
                primary_local(),
                replication={"node2": Lsn.parse("0/3000000")},
                sync_standby_names='FIRST 1 ("node3")',
            ),
        ),
        Reason.LEADER_HEALTHY,
        # The claim widens to the newcomer before PostgreSQL waits for it instead (ha/sync.py).
        [RenewLeader, PublishStatus, PublishSync(sync_set("node2", "node3")), EnsureSlots],
    ),
    row(
        "degraded_synchronous_replication_is_recorded_in_the_history_after_the_claim",
        leader(
            view=view(
                config=sync_config(synchronous_fallback=SyncFallback.DEGRADE, synchronous_fallback_after=5.0),
                sync=sync_set("node2"),
            ),
            local=replace(primary_local(), sync_standby_names='FIRST 1 ("node2")'),
            memory=replace(memory(), sync_short_since=NOW - 10),
        ),
        Reason.LEADER_HEALTHY,
        [
            RenewLeader,
            PublishStatus,
            PublishSync(SyncState(leader="node1", degraded_since=WALL)),
            AppendHistory(
                "no synchronous standby for 5s: asynchronous",
                event=SYNC_DEGRADED,
                at=(1, Lsn.parse("0/3000000")),
            ),
            EnsureSlots,
        ],
    ),
    # --- who may join: slot names ------------------------------------------------------------------
    row(
        "leader_keeps_its_slot_name_against_a_rival_registered_before_it",
        leader(
            view=view(members=registered(member("Node1"), primary_member("node1"), member("node2"))),
            local=primary_local(),
        ),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots],
    ),
    # --- whose data directory: pgwarden empties only one it made or one of this cluster ------------
    row(
        "unmarked_data_directory_of_the_leader_is_adopted_after_it_renews",
        leader(local=unmarked(primary_local())),
        Reason.LEADER_HEALTHY,
        [
            RenewLeader(),
            PublishStatus(ALL_THREE),
            EnsureSlots(create=frozenset({"node2", "node3"})),
            AdoptDataDir(),
        ],
    ),
    row(
        "leader_with_a_lease_rewrites_another_system_identifier_in_etcd_and_keeps_serving",
        leader(view=view(initialize="42"), local=primary_local()),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, FinishBootstrap(SYSTEM_ID), EnsureSlots],
    ),
    # --- slots: the leader keeps one per member, and moves up those nobody streams through ---------
    row(
        "leader_advances_the_idle_slot_of_a_member_cascading_from_a_relay_to_its_position",
        leader(view=cascade(), local=cascade_primary(idle_slot("0/2000000"))),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots(advance=(("node5", Lsn.parse("0/4000000")),))],
    ),
    row(
        "leader_leaves_the_idle_slot_of_a_member_that_streams_from_it_where_it_is",
        leader(view=cascade(replicatefrom=None), local=cascade_primary(idle_slot("0/2000000"))),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots()],
    ),
    row(
        "leader_leaves_the_slot_of_a_member_whose_relay_is_down_for_it_to_stream_through",
        leader(
            view=cascade(relay=PgState.STOPPED),
            local=cascade_primary(idle_slot("0/2000000")),
        ),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots()],
    ),
    row(
        "leader_does_not_move_a_slot_to_a_position_on_another_timeline",
        leader(view=cascade(timeline=2), local=cascade_primary(idle_slot("0/2000000"))),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots()],
    ),
    row(
        "leader_does_not_move_a_slot_past_its_own_wal",
        leader(view=cascade(lsn="0/6000000"), local=cascade_primary(idle_slot("0/2000000"))),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots()],
    ),
    row(
        "leader_does_not_move_a_slot_someone_streams_through",
        leader(view=cascade(), local=cascade_primary(STREAMING_SLOT)),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots()],
    ),
    # --- the leader key carries my name -----------------------------------------------------------
    row(
        "healthy_leader_renews_publishes_status_and_keeps_a_slot_per_member",
        leader(local=primary_local()),
        Reason.LEADER_HEALTHY,
        [RenewLeader(), PublishStatus(ALL_THREE), EnsureSlots(create=frozenset({"node2", "node3"}))],
    ),
    row(
        "leader_publishes_a_member_gone_less_than_member_slots_ttl_in_its_membership",
        leader(
            local=primary_local(),
            view=view(members=(primary_member("node1"), member("node2"))),
            memory=memory(member_last_seen={"node3": NOW - 60}),
        ),
        Reason.LEADER_HEALTHY,
        [RenewLeader(), PublishStatus(ALL_THREE), EnsureSlots(create=frozenset({"node2", "node3"}))],
    ),
    row(
        "restarted_agent_adopts_the_key_still_carrying_its_name",
        leader(local=primary_local(), lease_deadline=None),
        Reason.LEADER_ADOPTING,
        [RenewLeader, PublishStatus, EnsureSlots],
    ),
    row(
        "paused_leader_only_renews_with_the_watchdog_disarmed",
        leader(view=view(config=PAUSED), local=primary_local()),
        Reason.LEADER_PAUSED,
        [RenewLeader(watchdog=False)],
    ),
    row(
        "paused_leader_with_crashed_postgres_does_not_restart_it",
        leader(view=view(config=PAUSED), local=stopped_local(ControlState.IN_PRODUCTION)),
        Reason.LEADER_PAUSED,
        [RenewLeader],
    ),
    row(
        "leader_whose_required_watchdog_cannot_be_used_stops_and_hands_the_key_back",
        leader(local=primary_local(), watchdog_ready=False),
        Reason.WATCHDOG_REQUIRED_RELEASING,
        [Demote(StopMode.FAST), ReleaseLeader],
    ),
    row(
        "key_holder_not_yet_promoted_whose_required_watchdog_failed_releases_without_promoting",
        leader(local=standby_local(upstream=None), watchdog_ready=False),
        Reason.WATCHDOG_REQUIRED_RELEASING,
        [ReleaseLeader],
    ),
    row(
        "leader_key_holder_running_as_standby_promotes",
        leader(local=standby_local(upstream=None)),
        Reason.LEADER_PROMOTING,
        [RenewLeader, Promote, AppendHistory],
    ),
    row(
        "leader_seeing_postgres_down_for_the_first_time_starts_it",
        leader(local=stopped_local(ControlState.IN_PRODUCTION)),
        Reason.PRIMARY_STARTING,
        [RenewLeader, StartPrimary],
        down=0.0,
    ),
    row(
        "leader_with_crashed_postgres_restarts_within_primary_start_timeout",
        leader(
            local=stopped_local(ControlState.IN_PRODUCTION), memory=memory(unhealthy_primary_since=NOW - 5)
        ),
        Reason.PRIMARY_STARTING,
        [RenewLeader, StartPrimary],
        down=5.0,
    ),
    row(
        "leader_with_crashed_postgres_past_primary_start_timeout_stops_and_releases_the_key",
        leader(
            local=stopped_local(ControlState.IN_PRODUCTION), memory=memory(unhealthy_primary_since=NOW - 10)
        ),
        Reason.PRIMARY_START_TIMEOUT_RELEASING,
        [IMMEDIATE, ReleaseLeader],
        down=10.0,
        timeout=10.0,
    ),
    row(
        "leader_with_stuck_probe_waits_within_primary_start_timeout",
        leader(local=unprobed_local(), memory=memory(unhealthy_primary_since=NOW - 3)),
        Reason.PRIMARY_WAITING,
        [RenewLeader],
        down=3.0,
    ),
    row(
        "leader_with_probe_stuck_past_primary_start_timeout_stops_and_releases_the_key",
        leader(local=unprobed_local(), memory=memory(unhealthy_primary_since=NOW - 12)),
        Reason.PRIMARY_START_TIMEOUT_RELEASING,
        [IMMEDIATE, ReleaseLeader],
    ),
    row(
        "leader_honours_a_longer_primary_start_timeout",
        leader(
            view=view(config=config(primary_start_timeout=60.0)),
            local=stopped_local(ControlState.IN_PRODUCTION),
            memory=memory(unhealthy_primary_since=NOW - 30),
        ),
        Reason.PRIMARY_STARTING,
        [RenewLeader, StartPrimary],
    ),
    # --- planned switchover: the leader's half (safety rule 5) ------------------------------------
    row(
        "switchover_scheduled_later_leaves_the_primary_serving",
        leader(view=view(switchover=intent(scheduled_at=WALL + 60)), local=primary_local()),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots],
    ),
    # --- live dynamic config ------------------------------------------------------------------------
    row(
        "changed_parameters_wait_while_the_leader_promotes",
        leader(view=TUNED, local=applied(standby_local(upstream=None))),
        Reason.LEADER_PROMOTING,
        [RenewLeader, Promote, AppendHistory],
    ),
    # --- the leader, etcd back ----------------------------------------------------------------
    row(
        "failsafe_leader_with_etcd_back_past_its_lease_takes_its_key_over_instead_of_demoting",
        failsafe_leader(store_ok=True, lease_deadline=EXPIRED, failsafe_deadline=NOW + 2.0),
        Reason.LEADER_ADOPTING,
        HEALTHY,
    ),
    row(
        "failsafe_leader_renews_with_a_round_of_promises_to_fall_back_on",
        failsafe_leader(store_ok=True, lease_deadline=NOW + 3.0),
        Reason.LEADER_HEALTHY,
        [RenewLeader(failsafe=ASKED), PublishStatus, EnsureSlots],
    ),
    row(
        "failsafe_leader_without_a_topology_renews_with_nothing_to_fall_back_on",
        failsafe_leader(view=failsafe_view(None), store_ok=True, lease_deadline=NOW + 3.0),
        Reason.LEADER_HEALTHY,
        [RenewLeader(failsafe=None), PublishStatus, PublishFailsafe, EnsureSlots],
    ),
    row(
        "failsafe_leader_with_etcd_back_records_the_outage_in_the_history",
        failsafe_leader(store_ok=True, lease_deadline=NOW + 3.0, memory=RODE_OUT),
        Reason.LEADER_HEALTHY,
        [
            *HEALTHY,
            RecordFailsafe(STAMP, "etcd unreachable for 40s: kept writing on the promises of node2, node3"),
        ],
    ),
    row(
        "failsafe_outage_already_in_the_history_is_not_recorded_twice",
        failsafe_leader(
            view=failsafe_view(history=[RECORDED]), store_ok=True, lease_deadline=NOW + 3.0, memory=RODE_OUT
        ),
        Reason.LEADER_HEALTHY,
        HEALTHY,
    ),
    row(
        "leader_publishes_the_failsafe_topology_when_the_members_change",
        failsafe_leader(view=failsafe_view(("node1", "node2")), store_ok=True, lease_deadline=NOW + 3.0),
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
        failsafe_leader(
            view=failsafe_view(("node2", "node3"), members=(member("node2"), member("node3"))),
            store_ok=True,
            lease_deadline=NOW + 3.0,
        ),
        Reason.LEADER_HEALTHY,
        HEALTHY,
    ),
    row(
        "leader_keeps_a_topology_member_cut_from_etcd_while_its_api_answers",
        failsafe_leader(
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
        failsafe_leader(
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
        failsafe_leader(view=failsafe_view(config=config()), store_ok=True, lease_deadline=NOW + 3.0),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, PublishFailsafe(None), EnsureSlots],
    ),
    # --- a member that promised ---------------------------------------------------------------
    row(
        "leader_republishes_a_junk_topology_keeping_a_member_of_the_last_valid_one_whose_api_answers",
        failsafe_leader(
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
        "leader_republishes_an_unreadable_failsafe_topology_with_no_round_to_fall_back_on_meanwhile",
        failsafe_leader(view=junk_topology(failsafe_view(), None), store_ok=True, lease_deadline=NOW + 3.0),
        Reason.LEADER_HEALTHY,
        [
            RenewLeader(failsafe=None),
            PublishStatus,
            PublishFailsafe(tuple((n, api_url(n)) for n in ("node1", "node2", "node3"))),
            EnsureSlots,
        ],
    ),
    # --- live dynamic config: applied after a steady leader's duties (rules/parameters.py) ---------
    row(
        "changed_parameters_reach_a_healthy_leader_after_its_usual_duties",
        leader(view=TUNED, local=applied(primary_local())),
        Reason.PARAMETERS_APPLYING,
        [RenewLeader, PublishStatus, EnsureSlots, ApplyParameters()],
        names="work_mem",
    ),
    row(
        "changed_parameters_reach_a_paused_leader_which_keeps_its_key",
        leader(
            view=replace(TUNED, config=config(pause=True, parameters={"work_mem": "8MB"})),
            local=applied(primary_local()),
        ),
        Reason.PARAMETERS_APPLYING,
        [RenewLeader(watchdog=False), ApplyParameters()],
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
