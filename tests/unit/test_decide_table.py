"""Table of situations for ``decide``: each row names the case, the reason code and the actions in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import zip_longest
from typing import Any

import pytest

from pgwarden.ha.actions import (
    AcquireLeader,
    Action,
    AdoptDataDir,
    AppendHistory,
    ApplyParameters,
    BeginBootstrap,
    CancelBootstrap,
    Checkpoint,
    ClearScheduledRestart,
    ClearSwitchover,
    Clone,
    Demote,
    EnsureSlots,
    FinishBootstrap,
    Follow,
    Promote,
    PublishStatus,
    PublishSync,
    ReleaseLeader,
    ReloadPostgres,
    RenewLeader,
    Rewind,
    RewriteLeader,
    RunInitdb,
    StartPrimary,
    StartStandby,
    StopMode,
    StopPostgres,
    WipeDataDir,
)
from pgwarden.ha.decide import RULES, decide
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Memory, Observation, Request
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.jobs import RETRY_AFTER
from pgwarden.model import (
    ClusterView,
    ControlState,
    JobKind,
    LocalState,
    Lsn,
    Member,
    PgState,
    Role,
    SyncState,
)
from tests.unit.builders import (
    DATA_DIR,
    NOW,
    OTHER_SYSTEM_ID,
    SYSTEM_ID,
    WALL,
    config,
    default_members,
    empty_local,
    failed,
    fork,
    incomplete_local,
    intent,
    job,
    member,
    memory,
    observation,
    peer,
    primary_local,
    primary_member,
    standby_local,
    status,
    stopped_local,
    sync_config,
    sync_set,
    uninitialized_view,
    unmarked,
    unprobed_local,
    unreachable,
    view,
    with_junk,
)
from tests.unit.failsafe_rows import FAILSAFE_ROWS

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


ROWS: list[Any] = [
    # --- etcd unreachable -------------------------------------------------------------------------
    row("store_unreachable_standby_waits", observation(store_ok=False), Reason.STORE_UNREACHABLE, []),
    row(
        "store_unreachable_stopped_member_waits",
        observation(store_ok=False, local=stopped_local()),
        Reason.STORE_UNREACHABLE,
        [],
    ),
    row(
        "store_unreachable_primary_with_valid_lease_keeps_writing",
        leader(store_ok=False, local=primary_local(), lease_deadline=NOW + 2.5),
        Reason.STORE_UNREACHABLE_LEASE_VALID,
        [],
        remaining=2.5,
    ),
    row(
        "store_unreachable_primary_past_lease_deadline_demotes_immediately",
        leader(store_ok=False, local=primary_local(), lease_deadline=EXPIRED),
        Reason.STORE_UNREACHABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "store_unreachable_primary_without_a_lease_demotes_immediately",
        leader(store_ok=False, local=primary_local(), lease_deadline=None),
        Reason.STORE_UNREACHABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "store_unreachable_unprobed_postgres_counts_as_a_writer",
        leader(store_ok=False, local=unprobed_local(), lease_deadline=None),
        Reason.STORE_UNREACHABLE_DEMOTING,
        [IMMEDIATE],
    ),
    row(
        "store_unreachable_paused_primary_takes_no_action",
        leader(view=view(config=PAUSED), store_ok=False, local=primary_local(), lease_deadline=None),
        Reason.STORE_UNREACHABLE_PAUSED,
        [],
    ),
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
        "leader_removes_an_unreadable_switchover_intent",
        leader(view=with_junk(view(), switchover="42 is not an object"), local=primary_local()),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader, ClearSwitchover("its value in etcd is unreadable (42 is not an object)")],
    ),
    row(
        "unreadable_initialize_key_is_no_cluster_to_bootstrap",
        observation(view=with_junk(uninitialized_view(), initialize="x"), local=empty_local()),
        Reason.NOT_RACING_NOT_RUNNING,
        [],
    ),
    row(
        "leader_rewrites_an_unreadable_initialize_key_with_its_system_identifier",
        leader(view=with_junk(view(), initialize="x"), local=primary_local()),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, FinishBootstrap(SYSTEM_ID), EnsureSlots],
    ),
    row(
        "unreadable_sync_claim_lets_no_candidate_promote",
        leaderless(view=with_junk(replace(LEADERLESS, config=sync_config()), sync="not JSON")),
        Reason.NOT_RACING_NOT_SYNC,
        [],
    ),
    row(
        "leader_republishes_an_unreadable_sync_claim",
        leader(
            view=with_junk(view(), sync="not JSON"), local=replace(primary_local(), sync_standby_names="")
        ),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, PublishSync(SyncState(leader="node1")), EnsureSlots],
    ),
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
        "newcomer_whose_slot_name_a_member_has_neither_clones_nor_takes_a_slot",
        observation("NODE2", view=CROWDED, local=empty_local()),
        Reason.SLOT_NAME_TAKEN,
        [],
        name="NODE2",
        slot="node2",
        rival="node2",
    ),
    row(
        "newcomer_whose_slot_name_is_taken_stays_out_of_a_race_too",
        leaderless("NODE2", view=CROWDED_LEADERLESS, local=empty_local()),
        Reason.SLOT_NAME_TAKEN,
        [],
    ),
    row(
        "newcomer_with_an_interrupted_clone_stays_out",
        observation("NODE2", view=CROWDED_LATER, local=incomplete_local()),
        Reason.SLOT_NAME_TAKEN,
        [],
    ),
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
        [StartStandby("node1")],
    ),
    row(
        "newcomer_registered_first_still_yields_to_a_member_with_data",
        observation("NODE2", view=RESTARTED, local=empty_local()),
        Reason.SLOT_NAME_TAKEN,
        [],
        rival="node2",
    ),
    row(
        "of_two_newcomers_sharing_a_slot_name_the_first_registered_clones",
        observation("node_4", view=TWO_NEWCOMERS, local=empty_local()),
        Reason.CLONING,
        [Clone],
    ),
    row(
        "of_two_newcomers_sharing_a_slot_name_the_second_stays_out",
        observation("Node-4", view=TWO_NEWCOMERS, local=empty_local()),
        Reason.SLOT_NAME_TAKEN,
        [],
        rival="node_4",
        slot="node_4",
    ),
    row(
        "newcomer_stays_out_while_the_leader_still_keeps_the_slot_of_a_member_gone_lately",
        observation("NODE3", view=WITHOUT_NODE3, local=empty_local(), memory=LATELY),
        Reason.SLOT_NAME_TAKEN,
        [],
        rival="node3",
    ),
    row(
        "newcomer_joins_once_the_member_with_its_slot_name_is_gone_past_member_slots_ttl",
        observation("NODE3", view=WITHOUT_NODE3, local=empty_local(), memory=LONG_GONE),
        Reason.CLONING,
        [Clone],
    ),
    row(
        "leader_keeps_its_slot_name_against_a_rival_registered_before_it",
        leader(
            view=view(members=registered(member("Node1"), primary_member("node1"), member("node2"))),
            local=primary_local(),
        ),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots],
    ),
    row(
        "rival_of_the_leader_stays_out_though_registered_first",
        observation(
            "Node1",
            view=view(
                members=registered(
                    member("Node1", Role.UNINITIALIZED), primary_member("node1"), member("node2")
                )
            ),
            local=empty_local(),
        ),
        Reason.SLOT_NAME_TAKEN,
        [],
        rival="node1",
    ),
    row(
        "slot_rival_bootstrapping_the_cluster_finishes_its_initdb",
        observation(
            "NODE2",
            view=replace(
                uninitialized_view(bootstrapping="NODE2"),
                members=registered(member("node2", Role.UNINITIALIZED), member("NODE2", Role.UNINITIALIZED)),
            ),
            local=empty_local(job=job(JobKind.INITDB, running=True)),
        ),
        Reason.JOB_IN_PROGRESS,
        [],
    ),
    # --- background jobs --------------------------------------------------------------------------
    row(
        "clone_in_progress_waits_and_reports_progress",
        observation(local=empty_local(job(JobKind.CLONE, running=True, progress="42%"))),
        Reason.JOB_IN_PROGRESS,
        [],
        job="clone",
        progress=" (42%)",
    ),
    row(
        "rewind_in_progress_waits",
        observation(view=AFTER_FAILOVER, local=stopped_local(job=job(JobKind.REWIND, running=True))),
        Reason.JOB_IN_PROGRESS,
        [],
        progress="",
    ),
    row(
        "clone_failed_seconds_ago_backs_off",
        observation(local=empty_local(failed(JobKind.CLONE)), memory=memory(job_failed_at=NOW - 2)),
        Reason.JOB_BACKOFF,
        [],
        wait=RETRY_AFTER - 2,
    ),
    row(
        "clone_failure_seen_for_the_first_time_backs_off",
        observation(local=empty_local(failed(JobKind.CLONE, "connection refused"))),
        Reason.JOB_BACKOFF,
        [],
        error="connection refused",
    ),
    row(
        "clone_failed_past_the_backoff_is_retried",
        observation(local=empty_local(failed(JobKind.CLONE)), memory=memory(job_failed_at=NOW - RETRY_AFTER)),
        Reason.CLONING,
        [Clone("node1")],
    ),
    # --- bootstrap --------------------------------------------------------------------------------
    row(
        "uninitialized_cluster_member_races_to_bootstrap",
        observation(view=uninitialized_view(), local=empty_local()),
        Reason.BOOTSTRAP_RACING,
        [BeginBootstrap],
    ),
    row(
        "member_waits_while_another_bootstraps",
        observation(view=uninitialized_view(bootstrapping="node1"), local=empty_local()),
        Reason.BOOTSTRAP_BY_OTHER,
        [],
        member="node1",
    ),
    row(
        "nofailover_member_never_bootstraps",
        observation(view=uninitialized_view(), local=empty_local(), nofailover=True),
        Reason.NOT_BOOTSTRAPPING_NOFAILOVER,
        [],
    ),
    row(
        "incomplete_data_dir_is_never_bootstrapped_over",
        observation(view=uninitialized_view(), local=incomplete_local()),
        Reason.NOT_BOOTSTRAPPING_DATA_INCOMPLETE,
        [],
    ),
    row(
        "bootstrap_winner_runs_initdb",
        observation(view=uninitialized_view(bootstrapping="node2"), local=empty_local()),
        Reason.BOOTSTRAP_INITDB,
        [RunInitdb],
    ),
    row(
        "failed_initdb_gives_up_the_bootstrap_after_the_backoff",
        observation(
            view=uninitialized_view(bootstrapping="node2"),
            local=empty_local(failed(JobKind.INITDB, "disk full")),
            memory=memory(job_failed_at=LONG_AGO),
        ),
        Reason.BOOTSTRAP_INITDB_FAILED,
        [CancelBootstrap],
        error="disk full",
    ),
    row(
        "bootstrap_winner_takes_the_key_before_starting_the_new_primary",
        observation(
            view=uninitialized_view(bootstrapping="node2"), local=stopped_local(ControlState.SHUT_DOWN)
        ),
        Reason.BOOTSTRAP_STARTING,
        [AcquireLeader, StartPrimary],
    ),
    row(
        "bootstrap_leader_with_running_primary_publishes_the_system_id",
        observation(
            view=uninitialized_view(bootstrapping="node2", leader="node2"),
            local=primary_local(),
            lease_deadline=LEASED,
        ),
        Reason.BOOTSTRAP_FINISHING,
        [RenewLeader, FinishBootstrap(SYSTEM_ID)],
    ),
    row(
        "running_primary_unknown_to_etcd_takes_the_key_and_publishes_its_system_id",
        observation(view=uninitialized_view(), local=primary_local()),
        Reason.BOOTSTRAP_ADOPTING_PRIMARY,
        [AcquireLeader, FinishBootstrap(SYSTEM_ID)],
    ),
    row(
        "running_primary_unknown_to_etcd_does_not_wait_for_another_bootstrapper",
        observation(view=uninitialized_view(bootstrapping="node3"), local=primary_local()),
        Reason.BOOTSTRAP_ADOPTING_PRIMARY,
        [AcquireLeader, FinishBootstrap(SYSTEM_ID)],
    ),
    row(
        "running_standby_unknown_to_etcd_waits_for_its_primary_instead_of_bootstrapping",
        observation(view=uninitialized_view(), local=standby_local(upstream=None)),
        Reason.BOOTSTRAP_STANDBY_WAITING,
        [],
    ),
    row(
        "stopped_standby_unknown_to_etcd_never_bootstraps_even_if_another_races",
        observation(view=uninitialized_view(bootstrapping="node3"), local=stopped_local()),
        Reason.BOOTSTRAP_STANDBY_WAITING,
        [],
    ),
    row(
        "bootstrap_leader_with_stopped_primary_starts_it",
        observation(
            view=uninitialized_view(bootstrapping="node2", leader="node2"),
            local=stopped_local(ControlState.SHUT_DOWN),
            lease_deadline=LEASED,
        ),
        Reason.BOOTSTRAP_STARTING,
        [RenewLeader, StartPrimary],
    ),
    row(
        "bootstrap_leader_waits_for_the_new_primary_to_accept_connections",
        observation(
            view=uninitialized_view(bootstrapping="node2", leader="node2"),
            local=unprobed_local(),
            lease_deadline=LEASED,
        ),
        Reason.BOOTSTRAP_WAITING_FOR_START,
        [RenewLeader],
    ),
    # --- data directory of another cluster --------------------------------------------------------
    row(
        "foreign_data_directory_is_never_touched",
        observation(local=stopped_local(system_id=OTHER_SYSTEM_ID)),
        Reason.FOREIGN_DATA_DIRECTORY,
        [],
        local_id=OTHER_SYSTEM_ID,
        cluster_id=SYSTEM_ID,
    ),
    row(
        "foreign_data_directory_never_starts_for_a_failover",
        observation(view=LEADERLESS, local=stopped_local(system_id=OTHER_SYSTEM_ID)),
        Reason.FOREIGN_DATA_DIRECTORY,
        [],
    ),
    # --- whose data directory: pgwarden empties only one it made or one of this cluster ------------
    row(
        "files_pgwarden_did_not_make_are_never_wiped_or_cloned_over",
        observation(local=unmarked(incomplete_local(), found="contains 3 entries (a, b/, c)")),
        Reason.DATA_DIRECTORY_NOT_OURS,
        [],
        why=(
            f"{DATA_DIR} contains 3 entries (a, b/, c); not created by pgwarden "
            f"(no marker {DATA_DIR}.pgwarden)"
        ),
    ),
    row(
        "parent_of_a_real_cluster_is_refused_with_the_likely_fix",
        observation(
            local=unmarked(
                incomplete_local(),
                found="contains 1 entry (main/), no PG_VERSION / pg_control",
                hint="main/ holds a PostgreSQL data directory: is postgresql.data_dir meant to be /x/main?",
            )
        ),
        Reason.DATA_DIRECTORY_NOT_OURS,
        [],
        why=(
            f"{DATA_DIR} contains 1 entry (main/), no PG_VERSION / pg_control; not created by pgwarden "
            f"(no marker {DATA_DIR}.pgwarden); main/ holds a PostgreSQL data directory: "
            "is postgresql.data_dir meant to be /x/main?"
        ),
    ),
    row(
        "files_pgwarden_did_not_make_are_refused_before_the_bootstrap_race",
        observation(
            view=uninitialized_view(), local=unmarked(incomplete_local(), found="contains 1 entry (x)")
        ),
        Reason.DATA_DIRECTORY_NOT_OURS,
        [],
    ),
    row(
        "unmarked_data_directory_of_this_cluster_is_adopted_after_the_steady_work",
        observation(local=unmarked(standby_local())),
        Reason.STANDBY_HEALTHY,
        [AdoptDataDir()],
    ),
    row(
        "unmarked_data_directory_of_the_leader_is_adopted_after_it_renews",
        leader(local=unmarked(primary_local())),
        Reason.LEADER_HEALTHY,
        [RenewLeader(), PublishStatus(ALL_THREE), EnsureSlots(frozenset({"node2", "node3"})), AdoptDataDir()],
    ),
    row(
        "unmarked_data_directory_of_another_system_is_not_adopted",
        observation(local=unmarked(stopped_local(system_id=OTHER_SYSTEM_ID))),
        Reason.FOREIGN_DATA_DIRECTORY,
        [],
    ),
    row(
        "nothing_is_adopted_while_etcd_is_unreachable",
        observation(local=unmarked(standby_local()), store_ok=False),
        Reason.STORE_UNREACHABLE,
        [],
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
    row(
        "leader_with_a_lease_rewrites_another_system_identifier_in_etcd_and_keeps_serving",
        leader(view=view(initialize="42"), local=primary_local()),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, FinishBootstrap(SYSTEM_ID), EnsureSlots],
    ),
    row(
        "leader_whose_lease_ran_out_does_not_trust_its_data_against_etcds_identifier",
        leader(view=view(initialize=OTHER_SYSTEM_ID), local=stopped_local(), lease_deadline=EXPIRED),
        Reason.FOREIGN_DATA_DIRECTORY,
        [],
    ),
    # --- the leader key carries my name -----------------------------------------------------------
    row(
        "healthy_leader_renews_publishes_status_and_keeps_a_slot_per_member",
        leader(local=primary_local()),
        Reason.LEADER_HEALTHY,
        [RenewLeader(), PublishStatus(ALL_THREE), EnsureSlots(frozenset({"node2", "node3"}))],
    ),
    row(
        "leader_publishes_a_member_gone_less_than_member_slots_ttl_in_its_membership",
        leader(
            local=primary_local(),
            view=view(members=(primary_member("node1"), member("node2"))),
            memory=memory(member_last_seen={"node3": NOW - 60}),
        ),
        Reason.LEADER_HEALTHY,
        [RenewLeader(), PublishStatus(ALL_THREE), EnsureSlots(frozenset({"node2", "node3"}))],
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
        [StartStandby("node1")],
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
        [StartStandby("node1")],
    ),
    # --- another member leads: start and follow ---------------------------------------------------
    row(
        "stopped_standby_starts_following_the_leader",
        observation(local=stopped_local()),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node1")],
        upstream="node1",
    ),
    row(
        "replicatefrom_member_starts_streaming_from_its_upstream",
        observation(local=stopped_local(), replicatefrom="node3"),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node3")],
    ),
    row(
        "replicatefrom_upstream_gone_falls_back_to_the_leader",
        observation(
            view=view(members=(primary_member(), member("node2"))),
            local=stopped_local(),
            replicatefrom="node3",
        ),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node1")],
    ),
    row(
        "replicatefrom_upstream_not_running_falls_back_to_the_leader",
        observation(
            view=view(members=(primary_member(), member("node2"), member("node3", state=PgState.STOPPED))),
            local=stopped_local(),
            replicatefrom="node3",
        ),
        Reason.STARTING_AS_STANDBY,
        [StartStandby("node1")],
    ),
    row(
        "standby_follows_the_new_leader_without_restarting",
        observation(local=standby_local(upstream="node3")),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node1")],
        upstream="node1",
        previous="node3",
    ),
    row(
        "standby_moves_to_its_replicatefrom_upstream",
        observation(local=standby_local(upstream="node1"), replicatefrom="node3"),
        Reason.FOLLOWING_NEW_UPSTREAM,
        [Follow("node3")],
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
    # --- planned switchover: the leader's half (safety rule 5) ------------------------------------
    row(
        "switchover_due_primary_checkpoints_then_stops_cleanly_keeping_the_key",
        leader(view=SWITCHING, local=STREAMING_TO_BOTH),
        Reason.SWITCHOVER_STOPPING,
        [RenewLeader(), Checkpoint(), StopPostgres(StopMode.FAST)],
        candidate="node2",
    ),
    row(
        "switchover_waits_for_the_candidate_to_stream_before_stopping_the_primary",
        leader(view=SWITCHING, local=replace(primary_local(), replication={"node3": Lsn.parse("0/3000000")})),
        Reason.SWITCHOVER_WAITING_FOR_STREAMING,
        [RenewLeader, PublishStatus, EnsureSlots],
        candidate="node2",
    ),
    row(
        "switchover_scheduled_later_leaves_the_primary_serving",
        leader(view=view(switchover=intent(scheduled_at=WALL + 60)), local=primary_local()),
        Reason.LEADER_HEALTHY,
        [RenewLeader, PublishStatus, EnsureSlots],
    ),
    row(
        "switchover_waits_while_the_candidate_has_not_replayed_the_shutdown_checkpoint",
        leader(view=SWITCHING, local=CLEANLY_STOPPED, peers=[peer("node2", replayed="0/3000000")]),
        Reason.SWITCHOVER_WAITING_FOR_CANDIDATE,
        [RenewLeader()],
    ),
    row(
        "switchover_waits_when_the_candidate_replayed_only_up_to_the_checkpoint_start",
        leader(view=SWITCHING, local=CLEANLY_STOPPED, peers=[peer("node2", replayed="0/3000100")]),
        Reason.SWITCHOVER_WAITING_FOR_CANDIDATE,
        [RenewLeader()],
    ),
    row(
        "switchover_waits_when_the_candidate_does_not_answer",
        leader(view=SWITCHING, local=CLEANLY_STOPPED, peers=[unreachable("node2")]),
        Reason.SWITCHOVER_WAITING_FOR_CANDIDATE,
        [RenewLeader()],
        replayed="unknown",
    ),
    row(
        "switchover_hands_over_the_key_once_the_candidate_replayed_past_the_checkpoint",
        leader(view=SWITCHING, local=CLEANLY_STOPPED, peers=[peer("node2", replayed="0/3000178")]),
        Reason.SWITCHOVER_HANDING_OVER,
        [ReleaseLeader()],
    ),
    row(
        "switchover_to_an_unknown_member_is_abandoned_before_stopping",
        leader(view=view(switchover=intent("node9")), local=primary_local()),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover],
    ),
    row(
        "switchover_to_a_candidate_with_replay_paused_is_abandoned_before_stopping",
        leader(
            view=SWITCHING,
            local=STREAMING_TO_BOTH,
            peers=[replace(peer("node2"), replay_paused=True)],
        ),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover],
    ),
    row(
        "switchover_to_a_nofailover_member_is_abandoned",
        leader(
            view=view(members=(primary_member(), member("node2", nofailover=True)), switchover=intent()),
            local=primary_local(),
        ),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover],
    ),
    row(
        "switchover_candidate_stopped_meanwhile_abandoned_and_primary_restarted",
        leader(
            view=view(
                members=(primary_member(), member("node2", state=PgState.STOPPED)), switchover=intent()
            ),
            local=CLEANLY_STOPPED,
            peers=[peer("node2", running=False, replayed=None)],
        ),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover, StartPrimary()],
    ),
    row(
        "switchover_past_its_deadline_is_abandoned_and_the_primary_restarted",
        leader(view=view(switchover=intent(deadline=WALL - 1)), local=CLEANLY_STOPPED),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover, StartPrimary()],
    ),
    row(
        "switchover_naming_another_leader_is_dropped",
        leader(view=view(switchover=intent(leader="node3")), local=primary_local()),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover],
    ),
    row(
        "switchover_after_an_unclean_stop_is_abandoned_and_the_primary_restarted",
        leader(view=SWITCHING, local=stopped_local(ControlState.IN_PRODUCTION)),
        Reason.SWITCHOVER_ABANDONED,
        [RenewLeader(), ClearSwitchover, StartPrimary()],
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
    # --- operator requests (REST API on this node) -----------------------------------------------
    row(
        "restart_request_on_the_leader_keeps_the_key_and_restarts_as_primary",
        leader(local=primary_local(), requests=[Request.RESTART]),
        Reason.RESTARTING,
        [RenewLeader(), StopPostgres(StopMode.FAST), StartPrimary()],
    ),
    row(
        "restart_request_on_a_standby_restarts_it_following_the_leader",
        observation(requests=[Request.RESTART]),
        Reason.RESTARTING,
        [StopPostgres(StopMode.FAST), StartStandby("node1")],
    ),
    row(
        "restart_request_refused_when_postgres_is_stopped",
        observation(local=stopped_local(), requests=[Request.RESTART]),
        Reason.REQUEST_REFUSED,
        [],
    ),
    row(
        "reinitialize_request_refused_on_the_leader_which_keeps_its_key",
        leader(local=primary_local(), requests=[Request.REINITIALIZE, Request.RESTART]),
        Reason.REQUEST_REFUSED,
        [RenewLeader()],
        request="reinitialize",
    ),
    row(
        "reinitialize_request_on_a_standby_wipes_and_clones_from_the_leader",
        observation(requests=[Request.REINITIALIZE]),
        Reason.REINITIALIZING,
        [StopPostgres(StopMode.IMMEDIATE), WipeDataDir(), Clone("node1")],
    ),
    row(
        "reinitialize_request_refused_for_another_systems_data_pgwarden_did_not_make",
        observation(
            local=unmarked(stopped_local(system_id=OTHER_SYSTEM_ID)), requests=[Request.REINITIALIZE]
        ),
        Reason.REQUEST_REFUSED,
        [],
        request="reinitialize",
        why=(
            f"{DATA_DIR} holds the data of PostgreSQL system {OTHER_SYSTEM_ID}, not this cluster's "
            f"{SYSTEM_ID}; not created by pgwarden (no marker {DATA_DIR}.pgwarden)"
        ),
    ),
    row(
        "reinitialize_request_refused_for_files_pgwarden_did_not_make",
        observation(
            local=unmarked(incomplete_local(), found="contains 2 entries (a, b)"),
            requests=[Request.REINITIALIZE],
        ),
        Reason.REQUEST_REFUSED,
        [],
    ),
    row(
        "reinitialize_request_for_an_unmarked_directory_of_this_cluster_goes_ahead",
        observation(local=unmarked(standby_local()), requests=[Request.REINITIALIZE]),
        Reason.REINITIALIZING,
        [StopPostgres(StopMode.IMMEDIATE), WipeDataDir(), Clone("node1")],
    ),
    row(
        "reinitialize_request_for_pgwardens_directory_of_an_earlier_cluster_goes_ahead",
        observation(local=stopped_local(system_id=OTHER_SYSTEM_ID), requests=[Request.REINITIALIZE]),
        Reason.REINITIALIZING,
        [WipeDataDir(), Clone("node1")],
    ),
    row(
        "reinitialize_request_refused_while_a_clone_runs",
        observation(local=empty_local(job=job(JobKind.CLONE, running=True)), requests=[Request.REINITIALIZE]),
        Reason.REQUEST_REFUSED,
        [],
    ),
    row(
        "reload_request_on_the_leader_renews_and_reloads",
        leader(local=primary_local(), requests=[Request.RELOAD]),
        Reason.RELOADING,
        [RenewLeader(), ReloadPostgres()],
    ),
    # --- live dynamic config ------------------------------------------------------------------------
    row(
        "changed_parameters_reach_a_healthy_leader_after_its_usual_duties",
        leader(view=TUNED, local=applied(primary_local())),
        Reason.PARAMETERS_APPLYING,
        [RenewLeader, PublishStatus, EnsureSlots, ApplyParameters()],
        names="work_mem",
    ),
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
        [Follow("node1")],
    ),
    row(
        "changed_parameters_wait_while_the_leader_promotes",
        leader(view=TUNED, local=applied(standby_local(upstream=None))),
        Reason.LEADER_PROMOTING,
        [RenewLeader, Promote, AppendHistory],
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
    row(
        "changed_parameters_are_not_applied_while_etcd_is_unreachable",
        observation(view=TUNED, local=applied(standby_local()), store_ok=False),
        Reason.STORE_UNREACHABLE,
        [],
    ),
    # --- scheduled restarts -------------------------------------------------------------------------
    row(
        "scheduled_restart_due_on_a_standby_restarts_it_following_the_leader",
        observation(view=scheduled("node2", WALL - 5), local=started(standby_local(), WALL - 600)),
        Reason.SCHEDULED_RESTART,
        [ClearScheduledRestart(WALL - 5), StopPostgres(StopMode.FAST), StartStandby("node1")],
        role="standby",
    ),
    row(
        "scheduled_restart_due_on_the_leader_keeps_the_key",
        leader(view=scheduled("node1", WALL - 5), local=started(primary_local(), WALL - 600)),
        Reason.SCHEDULED_RESTART,
        [ClearScheduledRestart(WALL - 5), RenewLeader(), StopPostgres(StopMode.FAST), StartPrimary()],
        role="primary",
    ),
    row(
        "scheduled_restart_not_yet_due_changes_nothing",
        observation(view=scheduled("node2", WALL + 60), local=started(standby_local(), WALL - 600)),
        Reason.STANDBY_HEALTHY,
        [],
    ),
    row(
        "scheduled_restart_is_moot_once_postgres_started_after_the_schedule",
        observation(view=scheduled("node2", WALL - 5), local=started(standby_local(), WALL - 1)),
        Reason.SCHEDULED_RESTART_MOOT,
        [ClearScheduledRestart(WALL - 5)],
    ),
    row(
        "scheduled_restart_of_a_stopped_postgres_is_moot_and_the_leader_renews",
        leader(view=scheduled("node1", WALL - 5), local=stopped_local(ControlState.SHUT_DOWN)),
        Reason.SCHEDULED_RESTART_MOOT,
        [RenewLeader(), ClearScheduledRestart(WALL - 5)],
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
    *FAILSAFE_ROWS,
]


def test_a_member_kept_out_for_its_slot_name_refuses_every_request_naming_both_members() -> None:
    decision = decide(
        observation(
            "NODE2", view=CROWDED, local=empty_local(), requests=[Request.REINITIALIZE, Request.RESTART]
        )
    )
    assert decision.actions == () and set(decision.answers) == {Request.REINITIALIZE, Request.RESTART}
    why = str(decision.answers[Request.REINITIALIZE])
    assert "node2" in why and "NODE2" in why
    assert "NODE2" in decision.message and "node2" in decision.message


def test_request_rows_answer_exactly_the_request_they_handle() -> None:
    refused = decide(leader(local=primary_local(), requests=[Request.REINITIALIZE, Request.RESTART]))
    assert set(refused.answers) == {Request.REINITIALIZE}
    assert "primary" in str(refused.answers[Request.REINITIALIZE])
    done = decide(observation(requests=[Request.RESTART]))
    assert dict(done.answers) == {Request.RESTART: None}
    assert decide(observation()).answers == {}


def _shape(actions: Sequence[Action], expected: Expected) -> list[object]:
    """The actual actions, as types where the row names only a type and as values where it gives one."""
    return [a if not isinstance(e, type) else type(a) for a, e in zip_longest(actions, expected)]


def _rendered(decision: Decision) -> str:
    """The message, formatted strictly: ``Reason.render``'s fallback would hide a missing parameter."""
    return decision.reason.value.format(**decision.detail)


@pytest.mark.parametrize(("obs", "reason", "actions", "detail"), ROWS)
def test_decision(obs: Observation, reason: Reason, actions: Expected, detail: dict[str, object]) -> None:
    decision = decide(obs)
    assert decision.reason is reason, decision.message
    assert _shape(decision.actions, actions) == list(actions)
    for key, value in detail.items():
        assert decision.detail.get(key) == value, (key, decision.detail)
    assert _rendered(decision) == decision.message
    assert decision.message and "{" not in decision.message


def _observations() -> list[Observation]:
    return [p.values[0] for p in ROWS]


def test_table_reaches_every_reason() -> None:
    reached = {decide(obs).reason for obs in _observations()}
    assert {r for r in Reason if not r.from_the_loop} - reached == set()


def test_table_reaches_every_rule() -> None:
    first = {next(rule for rule in RULES if rule(obs) is not None) for obs in _observations()}
    assert [r.__name__ for r in RULES if r not in first] == []


def test_row_ids_are_unique() -> None:
    ids = [p.id for p in ROWS]
    assert len(ids) == len(set(ids)) >= 45
