"""Decide-table rows decided by ``pgwarden.ha.rules.following``.

Rules for a member while another holds the leader key: clone, rewind, start and follow.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgwarden.ha.actions import (
    AdoptDataDir,
    ApplyParameters,
    Checkpoint,
    Clone,
    EnsureSlots,
    Follow,
    Rewind,
    StartStandby,
    StopMode,
    StopPostgres,
    WipeDataDir,
)
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.jobs import RETRY_AFTER
from pgwarden.model import (
    ClusterView,
    ControlState,
    JobKind,
    LocalState,
    PgState,
)
from tests.support.builders import (
    NOW,
    WALL,
    empty_local,
    failed,
    failsafe_view,
    incomplete_local,
    intent,
    job,
    member,
    memory,
    observation,
    primary_local,
    primary_member,
    standby_local,
    stopped_local,
    unmarked,
    unprobed_local,
    view,
)
from tests.unit.rules.table import (
    AFTER_FAILOVER,
    CROWDED_LATER,
    IMMEDIATE,
    LONG_AGO,
    LONG_GONE,
    NO_REWIND,
    NO_REWIND_BUT_REMOVE,
    PAUSED,
    REMOVE_ALLOWED,
    RESTARTED,
    STREAMING_SLOT,
    TUNED,
    TWO_NEWCOMERS,
    WITHOUT_NODE3,
    Expected,
    applied,
    cascade,
    check,
    idle_slot,
    promised,
    row,
    scheduled,
    started,
)


def lists(base: ClusterView, **slots: tuple[str, ...]) -> ClusterView:
    """``base`` with the named members' records listing these physical slots (a relay's)."""
    members = tuple(
        replace(m, slots=frozenset(slots[m.name])) if m.name in slots else m for m in base.members
    )
    return replace(base, members=members)


def streams_from(upstream: str) -> LocalState:
    """A standby whose walreceiver streams from ``upstream`` now."""
    return replace(standby_local(upstream=upstream), streaming_from="127.0.0.1:5433")


ROWS: list[Any] = [
    # --- a writer without the key -----------------------------------------------------------------
    row(
        "rogue_primary_demotes_at_once",
        observation(local=primary_local()),
        Reason.ROGUE_PRIMARY_DEMOTING,
        [IMMEDIATE],
        leader="node1",
    ),
    row(
        "rogue_primary_demotes_even_when_paused",
        observation(view=view(config=PAUSED), local=primary_local()),
        Reason.ROGUE_PRIMARY_DEMOTING,
        [IMMEDIATE],
    ),
    # --- who may join: slot names ------------------------------------------------------------------
    row(
        "member_with_data_keeps_its_place_beside_a_later_rival",
        observation("node2", view=CROWDED_LATER),
        Reason.STANDBY_HEALTHY,
        [],
    ),
    row(
        "member_with_data_keeps_its_place_after_its_agent_restarted_and_registered_again",
        observation("node2", view=RESTARTED, local=stopped_local()),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node1", slot="node2")],
    ),
    row(
        "of_two_newcomers_sharing_a_slot_name_the_first_registered_clones",
        observation("node_4", view=TWO_NEWCOMERS, local=empty_local()),
        Reason.CLONING,
        [Clone],
    ),
    row(
        "newcomer_joins_once_the_member_with_its_slot_name_is_gone_past_member_slots_ttl",
        observation("NODE3", view=WITHOUT_NODE3, local=empty_local(), memory=LONG_GONE),
        Reason.CLONING,
        [Clone],
    ),
    # --- background jobs --------------------------------------------------------------------------
    row(
        "clone_failed_past_the_backoff_is_retried",
        observation(local=empty_local(failed(JobKind.CLONE)), memory=memory(job_failed_at=NOW - RETRY_AFTER)),
        Reason.CLONING,
        [Clone("node1")],
    ),
    # --- whose data directory: pgwarden empties only one it made or one of this cluster ------------
    row(
        "unmarked_data_directory_of_this_cluster_is_adopted_after_the_steady_work",
        observation(local=unmarked(standby_local())),
        Reason.STANDBY_HEALTHY,
        [AdoptDataDir()],
    ),
    row(
        "unmarked_diverged_directory_of_this_cluster_may_be_recloned_and_is_not_adopted_first",
        observation(
            view=replace(AFTER_FAILOVER, config=NO_REWIND_BUT_REMOVE),
            local=unmarked(stopped_local(ControlState.IN_PRODUCTION)),
        ),
        Reason.REWIND_DISABLED_RECLONING,
        [WipeDataDir, Clone("node1")],
    ),
    # --- another member leads: clone --------------------------------------------------------------
    row(
        "member_without_data_clones_from_the_leader",
        observation(local=empty_local()),
        Reason.CLONING,
        [Clone("node1")],
    ),
    row(
        "member_without_data_clones_from_a_running_clonefrom_member",
        observation(
            view=view(members=(primary_member(), member("node2"), member("node3", clonefrom=True))),
            local=empty_local(),
        ),
        Reason.CLONING,
        [Clone("node3")],
        source="node3",
    ),
    row(
        "clonefrom_member_not_running_leaves_cloning_to_the_leader",
        observation(
            view=view(
                members=(
                    primary_member(),
                    member("node2"),
                    member("node3", state=PgState.STOPPED, clonefrom=True),
                )
            ),
            local=empty_local(),
        ),
        Reason.CLONING,
        [Clone("node1")],
    ),
    row(
        "clone_waits_while_the_leader_is_not_running",
        observation(
            view=view(members=(primary_member(state=PgState.CRASHED), member("node2"), member("node3"))),
            local=empty_local(),
        ),
        Reason.CLONE_SOURCE_NOT_READY,
        [],
        source="node1",
    ),
    row(
        "incomplete_data_dir_is_wiped_and_recloned",
        observation(local=incomplete_local()),
        Reason.INCOMPLETE_DATA_RECLONING,
        [WipeDataDir, Clone("node1")],
    ),
    # --- another member leads: rejoin after a failover --------------------------------------------
    row(
        "crashed_former_primary_on_an_older_timeline_is_rewound",
        observation(
            view=AFTER_FAILOVER, local=stopped_local(ControlState.IN_PRODUCTION, checkpoint="0/2F00000")
        ),
        Reason.REWINDING,
        [Rewind("node1")],
        timeline=1,
        leader_timeline=2,
        source="node1",
    ),
    row(
        "former_primary_shut_down_past_the_fork_is_rewound",
        observation(view=AFTER_FAILOVER, local=stopped_local(ControlState.SHUT_DOWN, checkpoint="0/3000100")),
        Reason.REWINDING,
        [Rewind("node1")],
    ),
    row(
        "clean_switchover_shutdown_before_the_fork_needs_no_rewind",
        observation(view=AFTER_FAILOVER, local=stopped_local(ControlState.SHUT_DOWN, checkpoint="0/2FFFF28")),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node1", slot="node2")],
    ),
    row(
        "member_on_a_newer_timeline_than_the_leader_is_rewound",
        observation(view=AFTER_FAILOVER, local=stopped_local(timeline=3)),
        Reason.REWINDING,
        [Rewind("node1")],
        timeline=3,
    ),
    row(
        "rewind_disabled_reclones_when_removal_is_allowed",
        observation(
            view=replace(AFTER_FAILOVER, config=NO_REWIND_BUT_REMOVE),
            local=stopped_local(ControlState.IN_PRODUCTION),
        ),
        Reason.REWIND_DISABLED_RECLONING,
        [WipeDataDir, Clone("node1")],
        why="use_pg_rewind is off",
    ),
    row(
        "rewind_disabled_without_removal_waits_for_an_operator",
        observation(
            view=replace(AFTER_FAILOVER, config=NO_REWIND), local=stopped_local(ControlState.IN_PRODUCTION)
        ),
        Reason.REWIND_IMPOSSIBLE_WAITING,
        [],
    ),
    row(
        "failed_rewind_reclones_when_removal_is_allowed",
        observation(
            view=replace(AFTER_FAILOVER, config=REMOVE_ALLOWED),
            local=stopped_local(ControlState.IN_PRODUCTION, job=failed(JobKind.REWIND)),
            memory=memory(job_failed_at=LONG_AGO),
        ),
        Reason.REWIND_DISABLED_RECLONING,
        [WipeDataDir, Clone("node1")],
        why="pg_rewind failed",
    ),
    row(
        "failed_rewind_without_removal_is_retried_after_the_backoff",
        observation(
            view=AFTER_FAILOVER,
            local=stopped_local(ControlState.IN_PRODUCTION, job=failed(JobKind.REWIND)),
            memory=memory(job_failed_at=LONG_AGO),
        ),
        Reason.REWIND_RETRYING,
        [Rewind("node1")],
        source="node1",
    ),
    row(
        "stopped_member_waits_for_the_leader_to_run_before_starting_or_rewinding",
        observation(
            view=replace(
                AFTER_FAILOVER,
                members=(primary_member(state=PgState.STARTING, timeline=2), member("node3", timeline=2)),
            ),
            local=stopped_local(ControlState.IN_PRODUCTION),
        ),
        Reason.WAITING_FOR_LEADER,
        [],
        leader="node1",
    ),
    row(
        "diverged_running_standby_is_stopped_and_rewound_in_one_decision",
        observation(view=AFTER_FAILOVER, local=standby_local(received="0/3100000", timeline=1)),
        Reason.STOPPING_DIVERGED_STANDBY,
        [StopPostgres(StopMode.FAST), Rewind("node1")],
        timeline=1,
    ),
    row(
        "diverged_running_standby_with_rewind_disabled_is_stopped_and_recloned",
        observation(
            view=replace(AFTER_FAILOVER, config=NO_REWIND_BUT_REMOVE),
            local=standby_local(received="0/3100000", timeline=1),
        ),
        Reason.STOPPING_DIVERGED_STANDBY,
        [StopPostgres(StopMode.FAST), WipeDataDir, Clone("node1")],
    ),
    row(
        "diverged_running_standby_keeps_running_until_it_can_be_rewound",
        observation(
            view=replace(AFTER_FAILOVER, config=NO_REWIND),
            local=standby_local(received="0/3100000", timeline=1),
        ),
        Reason.REWIND_IMPOSSIBLE_WAITING,
        [],
    ),
    row(
        "standby_behind_the_fork_follows_the_new_timeline_without_rewind",
        observation(view=AFTER_FAILOVER, local=standby_local(received="0/2F00000", timeline=1)),
        Reason.STANDBY_HEALTHY,
        [],
    ),
    row(
        "rewound_member_carrying_the_sources_pg_control_starts_as_standby",
        observation(
            view=AFTER_FAILOVER,
            local=stopped_local(
                ControlState.IN_ARCHIVE_RECOVERY, timeline=2, job=job(JobKind.REWIND, ok=True)
            ),
        ),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node1", slot="node2")],
    ),
    # --- another member leads: start and follow ---------------------------------------------------
    row(
        "stopped_standby_starts_following_the_leader",
        observation(local=stopped_local()),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node1", slot="node2")],
        upstream="node1",
    ),
    row(
        "replicatefrom_member_starts_streaming_from_its_upstream",
        observation(local=stopped_local(), replicatefrom="node3"),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node3", slot="node2")],
    ),
    row(
        "replicatefrom_upstream_gone_falls_back_to_the_leader",
        observation(
            view=view(members=(primary_member(), member("node2"))),
            local=stopped_local(),
            replicatefrom="node3",
        ),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node1", slot="node2")],
    ),
    row(
        "replicatefrom_upstream_not_running_falls_back_to_the_leader",
        observation(
            view=view(members=(primary_member(), member("node2"), member("node3", state=PgState.STOPPED))),
            local=stopped_local(),
            replicatefrom="node3",
        ),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node1", slot="node2")],
    ),
    row(
        "standby_follows_the_new_leader_without_restarting",
        observation(local=standby_local(upstream="node3")),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node1", slot="node2")],
        upstream="node1",
        previous="node3",
    ),
    row(
        "standby_moves_to_its_replicatefrom_upstream",
        observation(local=standby_local(upstream="node1"), replicatefrom="node3"),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node3", slot="node2")],
    ),
    row("healthy_standby_does_nothing", observation(), Reason.STANDBY_HEALTHY, [], upstream="node1"),
    row(
        "standby_with_stuck_probe_waits",
        observation(local=unprobed_local(ControlState.IN_ARCHIVE_RECOVERY)),
        Reason.STANDBY_WAITING_FOR_POSTGRES,
        [],
    ),
    row(
        "paused_follower_does_not_start_postgres",
        observation(view=view(config=PAUSED), local=stopped_local()),
        Reason.FOLLOWER_PAUSED,
        [],
        leader="node1",
    ),
    # --- nobody holds the key ---------------------------------------------------------------------
    row(
        "standby_on_a_new_timeline_records_it_in_pg_control_with_a_restartpoint",
        observation(
            view=AFTER_FAILOVER,
            local=replace(standby_local(timeline=2), control_timeline=1, streaming_from="127.0.0.1:5433"),
        ),
        Reason.STANDBY_RECORDING_TIMELINE,
        [Checkpoint()],
        timeline=2,
    ),
    # --- live dynamic config ------------------------------------------------------------------------
    row(
        "parameters_already_applied_change_nothing",
        observation(view=TUNED, local=applied(standby_local(), work_mem="8MB")),
        Reason.STANDBY_HEALTHY,
        [],
    ),
    row(
        "changed_parameters_wait_while_a_standby_follows_a_new_upstream",
        observation(view=TUNED, local=applied(standby_local(upstream="node3"))),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node1", slot="node2")],
    ),
    # --- scheduled restarts -------------------------------------------------------------------------
    row(
        "scheduled_restart_not_yet_due_changes_nothing",
        observation(view=scheduled("node2", WALL + 60), local=started(standby_local(), WALL - 600)),
        Reason.STANDBY_HEALTHY,
        [],
    ),
    row(
        "scheduled_restart_waits_for_a_switchover_that_names_this_node",
        observation(
            view=replace(scheduled("node2", WALL - 5), switchover=intent(scheduled_at=WALL + 60)),
            local=started(standby_local(), WALL - 600),
        ),
        Reason.STANDBY_HEALTHY,
        [],
    ),
    row(
        "scheduled_restart_waits_while_postgres_does_not_answer",
        observation(
            view=scheduled("node2", WALL - 5), local=unprobed_local(ControlState.IN_ARCHIVE_RECOVERY)
        ),
        Reason.STANDBY_WAITING_FOR_POSTGRES,
        [],
    ),
    # --- a member that promised ---------------------------------------------------------------
    row(
        "member_that_promised_follows_the_leader_it_promised_as_usual",
        observation(view=failsafe_view(), promise=promised()),
        Reason.STANDBY_HEALTHY,
        [],
    ),
    # --- a relay keeps the slots of the members cascading from it (rules/slots.py) ------------------
    row(
        "relay_creates_a_slot_for_the_member_cascading_from_it",
        observation("node4", view=cascade(), local=replace(standby_local(), slots={})),
        Reason.STANDBY_HEALTHY,
        [EnsureSlots(create=frozenset({"node5"}))],
    ),
    row(
        "relay_whose_slots_are_not_listed_creates_them_again",
        observation("node4", view=cascade(), local=standby_local()),
        Reason.STANDBY_HEALTHY,
        [EnsureSlots(create=frozenset({"node5"}))],
    ),
    row(
        "relay_with_its_members_slot_streaming_does_nothing",
        observation("node4", view=cascade(), local=replace(standby_local(), slots={"node5": STREAMING_SLOT})),
        Reason.STANDBY_HEALTHY,
        [],
    ),
    row(
        "relay_drops_the_slot_of_a_member_that_streams_from_the_leader_now",
        observation(
            "node4",
            view=cascade(replicatefrom=None),
            local=replace(standby_local(), slots={"node5": idle_slot("0/2000000")}),
        ),
        Reason.STANDBY_HEALTHY,
        [EnsureSlots(drop=frozenset({"node5"}))],
    ),
    row(
        "relay_keeps_the_slot_of_a_member_absent_less_than_member_slots_ttl",
        observation(
            "node4",
            view=view(members=cascade().members[:4]),
            local=replace(standby_local(), slots={"node5": idle_slot("0/2000000")}),
            memory=memory(member_last_seen={"node5": NOW - 60}),
        ),
        Reason.STANDBY_HEALTHY,
        [],
    ),
    row(
        "member_cascading_from_a_relay_streams_through_its_slot_there",
        observation("node5", view=cascade(), local=standby_local(upstream="node1")),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node4", slot="node5")],
    ),
    row(
        "member_whose_relay_stopped_falls_back_to_its_slot_on_the_leader",
        observation("node5", view=cascade(relay=PgState.STOPPED), local=standby_local(upstream="node4")),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node1", slot="node5")],
    ),
    # --- a retagged standby switches to its relay once the relay lists its slot (rules/topology.py) ---
    row(
        "retagged_standby_keeps_streaming_from_the_leader_until_the_relay_lists_its_slot",
        observation("node5", view=lists(cascade(), node4=()), local=streams_from("node1")),
        Reason.STANDBY_WAITING_FOR_RELAY_SLOT,
        [],
        upstream="node1",
        target="node4",
        why="node4 has no replication slot node5 yet",
    ),
    row(
        "retagged_standby_switches_in_the_cycle_the_relay_lists_its_slot",
        observation("node5", view=lists(cascade(), node4=("node5",)), local=streams_from("node1")),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node4", slot="node5")],
        previous="node1",
    ),
    row(
        "retagged_standby_not_streaming_switches_at_once_as_it_has_nothing_to_keep",
        observation("node5", view=lists(cascade(), node4=()), local=standby_local(upstream="node1")),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node4", slot="node5")],
    ),
    row(
        "retagged_standby_takes_a_relay_that_lists_no_slots_at_its_word",
        observation("node5", view=cascade(), local=streams_from("node1")),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node4", slot="node5")],
    ),
    row(
        "standby_retagged_from_one_relay_to_another_keeps_the_first_until_the_second_lists_its_slot",
        observation(
            "node5",
            view=lists(cascade(replicatefrom="node3"), node3=("node3_old",)),
            local=streams_from("node4"),
        ),
        Reason.STANDBY_WAITING_FOR_RELAY_SLOT,
        [],
        upstream="node4",
        target="node3",
    ),
    row(
        "standby_whose_relay_stopped_does_not_wait_for_a_slot_on_the_next_one",
        observation(
            "node5",
            view=lists(cascade(relay=PgState.STOPPED, replicatefrom="node3"), node3=()),
            local=streams_from("node4"),
        ),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node3", slot="node5")],
    ),
    row(
        "standby_retagged_back_to_the_leader_switches_at_once_the_leader_keeps_its_slot",
        observation("node5", view=cascade(replicatefrom=None), local=streams_from("node4")),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node1", slot="node5")],
        previous="node4",
    ),
    row(
        "standby_retagged_to_a_stopped_relay_keeps_streaming_from_the_leader_and_says_why",
        observation("node5", view=cascade(relay=PgState.STOPPED), local=streams_from("node1")),
        Reason.STANDBY_REPLICATEFROM_UNAVAILABLE,
        [],
        upstream="node1",
        relay="node4",
    ),
    row(
        "standby_retagged_to_a_member_not_in_the_cluster_keeps_streaming_from_the_leader",
        observation("node5", view=cascade(replicatefrom="node9"), local=streams_from("node1")),
        Reason.STANDBY_REPLICATEFROM_UNAVAILABLE,
        [],
        relay="node9",
    ),
    # --- live dynamic config: applied after a steady follower's decision (rules/parameters.py) -----
    row(
        "changed_parameters_reach_a_streaming_standby",
        observation(view=TUNED, local=applied(standby_local())),
        Reason.PARAMETERS_APPLYING,
        [ApplyParameters()],
    ),
    row(
        "removed_cluster_parameter_is_applied_too",
        observation(local=applied(standby_local(), work_mem="8MB")),
        Reason.PARAMETERS_APPLYING,
        [ApplyParameters()],
        names="work_mem",
    ),
]


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    check(obs, reason, actions, detail)
