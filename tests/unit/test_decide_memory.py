"""What ``decide`` remembers between cycles, and short scripts of cycles that depend on it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgwarden.ha.actions import (
    Clone,
    Demote,
    EnsureSlots,
    RecordFailsafe,
    ReleaseLeader,
    Rewind,
    StartPrimary,
    StartStandby,
    StopMode,
    StopPostgres,
)
from pgwarden.ha.decide import decide
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Memory, Observation
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.jobs import RETRY_AFTER
from pgwarden.model import FAILSAFE, ControlState, HistoryEntry, JobKind, Lsn, PgState, Slot
from tests.support.builders import (
    NOW,
    WALL,
    config,
    empty_local,
    failed,
    failsafe_view,
    fork,
    job,
    member,
    memory,
    observation,
    primary_local,
    primary_member,
    standby_local,
    stopped_local,
    unprobed_local,
    view,
)

TTL = 1800.0  # DynamicConfig.member_slots_ttl
ACTIVE, IDLE = Slot(active=True, restart_lsn=Lsn(0)), Slot(active=False, restart_lsn=Lsn(0))
CRASHED = stopped_local(ControlState.IN_PRODUCTION)


def leader(**kw: object) -> Observation:
    kw.setdefault("lease_deadline", float(kw.get("now", NOW)) + 3.0)  # type: ignore[arg-type]
    return observation("node1", **kw)  # type: ignore[arg-type]


def then(previous: Decision, obs: Observation) -> Decision:
    """The next cycle: ``obs`` carries the memory the previous decision left."""
    return decide(replace(obs, memory=previous.memory))


# --- unhealthy_primary_since ---------------------------------------------------------------------


def test_unhealthy_primary_since_is_set_when_the_leader_first_sees_postgres_down() -> None:
    assert decide(leader(local=CRASHED)).memory.unhealthy_primary_since == NOW


def test_unhealthy_primary_since_is_kept_while_postgres_stays_down() -> None:
    since = NOW - 4
    assert decide(leader(local=CRASHED, memory=memory(since))).memory.unhealthy_primary_since == since


def test_unhealthy_primary_since_counts_a_promotion_in_progress() -> None:
    assert decide(leader(local=standby_local(upstream=None))).memory.unhealthy_primary_since == NOW


def test_unhealthy_primary_since_is_cleared_once_the_primary_serves() -> None:
    decision = decide(leader(local=primary_local(), memory=memory(NOW - 4)))
    assert decision.memory.unhealthy_primary_since is None


def test_unhealthy_primary_since_is_cleared_when_another_member_leads() -> None:
    assert decide(observation(memory=memory(NOW - 4))).memory.unhealthy_primary_since is None


def test_leader_retries_its_primary_until_primary_start_timeout_then_lets_go() -> None:
    first = decide(leader(local=CRASHED))
    assert first.reason is Reason.PRIMARY_STARTING
    assert StartPrimary() in first.actions
    later = then(first, leader(local=CRASHED, now=NOW + 5))
    assert later.reason is Reason.PRIMARY_STARTING
    assert later.detail["down"] == 5.0
    last = then(later, leader(local=CRASHED, now=NOW + 10))
    assert last.reason is Reason.PRIMARY_START_TIMEOUT_RELEASING
    assert [type(a) for a in last.actions] == [Demote, ReleaseLeader]


def test_a_primary_serving_again_resets_the_timeout() -> None:
    down = decide(leader(local=CRASHED, memory=memory(NOW - 9)))
    up = then(down, leader(local=primary_local(), now=NOW + 1))
    down_again = then(up, leader(local=CRASHED, now=NOW + 2))
    assert down_again.reason is Reason.PRIMARY_STARTING
    assert down_again.detail["down"] == 0.0


def test_time_without_etcd_does_not_count_towards_primary_start_timeout() -> None:
    """A primary stopped at its deadline while etcd lost its quorum starts again under its key once
    etcd is back, rather than handing the key to a standby (what issue 12 measured)."""
    outage = decide(leader(local=CRASHED, store_ok=False, lease_deadline=NOW - 1))
    assert outage.memory.unhealthy_primary_since is None
    back = then(outage, leader(local=CRASHED, now=NOW + 25, lease_deadline=NOW + 28))
    assert back.reason is Reason.PRIMARY_STARTING and StartPrimary() in back.actions


# --- failsafe: the outage a leader rode out ------------------------------------------------------


def test_a_failsafe_outage_is_remembered_recorded_once_etcd_is_back_then_forgotten() -> None:
    fs = failsafe_view()
    wall = WALL
    first = decide(leader(view=fs, local=primary_local(), store_ok=False, lease_deadline=NOW + 2, wall=wall))
    episode = first.memory.failsafe
    assert episode is not None and episode.began == wall and not episode.relied
    # Past the etcd lease, on the promises alone: the episode is one to record.
    on_promises = leader(
        view=fs, local=primary_local(), store_ok=False, now=NOW + 5, wall=wall + 5,
        lease_deadline=NOW + 2, failsafe_deadline=NOW + 7,
    )  # fmt: skip
    relied = then(first, on_promises)
    assert relied.memory.failsafe is not None and relied.memory.failsafe.relied
    assert relied.memory.failsafe.members == ("node2", "node3")
    back = then(
        relied, leader(view=fs, local=primary_local(), now=NOW + 31, wall=wall + 31, lease_deadline=NOW + 34)
    )
    recorded = [a for a in back.actions if isinstance(a, RecordFailsafe)]
    assert len(recorded) == 1 and "etcd unreachable for 31s" in recorded[0].reason
    entry = HistoryEntry(1, Lsn(0), recorded[0].reason, recorded[0].timestamp, "node1", FAILSAFE)
    done = then(back, leader(view=replace(fs, history=(entry,)), local=primary_local(), now=NOW + 32))
    assert done.memory.failsafe is None
    assert not any(isinstance(a, RecordFailsafe) for a in done.actions)


def test_an_outage_ridden_out_on_the_lease_alone_leaves_no_history() -> None:
    fs = failsafe_view()
    short = decide(leader(view=fs, local=primary_local(), store_ok=False, lease_deadline=NOW + 2))
    back = then(short, leader(view=fs, local=primary_local(), now=NOW + 1))
    assert back.memory.failsafe is None
    assert not any(isinstance(a, RecordFailsafe) for a in back.actions)


# --- member_last_seen ----------------------------------------------------------------------------


def test_members_in_the_view_are_seen_now() -> None:
    seen = decide(observation(memory=memory(member_last_seen={"node2": NOW - 50}))).memory.member_last_seen
    assert seen == {"node1": NOW, "node2": NOW, "node3": NOW}


def test_absent_member_is_remembered_until_member_slots_ttl() -> None:
    earlier = {"node4": NOW - TTL, "node5": NOW - TTL - 1}
    seen = decide(observation(memory=memory(member_last_seen=earlier))).memory.member_last_seen
    assert seen["node4"] == NOW - TTL
    assert "node5" not in seen


def test_member_slots_ttl_comes_from_the_cluster_config() -> None:
    obs = observation(
        view=view(config=config(member_slots_ttl=60.0)), memory=memory(member_last_seen={"node4": NOW - 61})
    )
    assert "node4" not in decide(obs).memory.member_last_seen


def test_store_unreachable_neither_prunes_nor_refreshes_member_last_seen() -> None:
    earlier = {"node2": NOW - 10, "node9": NOW - TTL - 100}
    decision = decide(observation(store_ok=False, memory=memory(member_last_seen=earlier)))
    assert decision.memory.member_last_seen == earlier


def test_leader_keeps_slots_of_members_absent_less_than_member_slots_ttl() -> None:
    earlier = {"node4": NOW - 60, "node5": NOW - TTL - 1}
    decision = decide(leader(local=primary_local(), memory=memory(member_last_seen=earlier)))
    assert decision.reason is Reason.LEADER_HEALTHY
    assert EnsureSlots(create=frozenset({"node2", "node3", "node4"})) in decision.actions
    # With the slots observed: node5's slot (gone past member_slots_ttl) is dropped, node4's kept.
    slots = {"node2": ACTIVE, "node3": ACTIVE, "node4": IDLE, "node5": IDLE}
    observed = replace(primary_local(), slots=slots)
    decision = decide(leader(local=observed, memory=memory(member_last_seen=earlier)))
    assert EnsureSlots(create=frozenset(), drop=frozenset({"node5"})) in decision.actions


def test_leader_never_keeps_a_slot_for_itself() -> None:
    decision = decide(leader(local=primary_local(), memory=memory(member_last_seen={"node1": NOW - 1})))
    slots = next(a for a in decision.actions if isinstance(a, EnsureSlots))
    assert "node1" not in slots.create


# --- job_failed_at -------------------------------------------------------------------------------


def test_job_failed_at_is_set_when_a_failure_is_first_seen() -> None:
    assert decide(observation(local=empty_local(failed(JobKind.CLONE)))).memory.job_failed_at == NOW


def test_job_failed_at_is_kept_while_the_failure_stands() -> None:
    obs = observation(local=empty_local(failed(JobKind.CLONE)), memory=memory(job_failed_at=NOW - 2))
    assert decide(obs).memory.job_failed_at == NOW - 2


@pytest.mark.parametrize(
    "current",
    [None, job(JobKind.CLONE, running=True), job(JobKind.CLONE, ok=True)],
    ids=["no_job", "job_running", "job_succeeded"],
)
def test_job_failed_at_is_cleared_without_a_failed_job(current: object) -> None:
    obs = observation(local=empty_local(current), memory=memory(job_failed_at=NOW - 2))  # type: ignore[arg-type]
    assert decide(obs).memory.job_failed_at is None


def test_starting_a_new_job_forgets_the_previous_failure() -> None:
    obs = observation(local=empty_local(failed(JobKind.CLONE)), memory=memory(job_failed_at=NOW - 60))
    decision = decide(obs)
    assert decision.actions == (Clone("node1"),)
    assert decision.memory.job_failed_at is None


def test_clone_failing_within_one_cycle_is_retried_only_after_the_backoff() -> None:
    # The job record looks the same before and after the retry: only the memory tells them apart.
    broken = empty_local(failed(JobKind.CLONE, "connection refused"))
    retry = decide(observation(local=broken, memory=memory(job_failed_at=NOW - 60)))
    assert retry.actions == (Clone("node1"),)
    waiting = then(retry, observation(local=broken, now=NOW + 1))
    assert waiting.reason is Reason.JOB_BACKOFF
    still = then(waiting, observation(local=broken, now=NOW + RETRY_AFTER))
    assert still.reason is Reason.JOB_BACKOFF
    again = then(still, observation(local=broken, now=NOW + 1 + RETRY_AFTER))
    assert again.actions == (Clone("node1"),)


def test_failed_rewind_waits_out_the_backoff_before_recloning() -> None:
    after_failover = view(
        members=(primary_member(timeline=2), member("node3", timeline=2)),
        history=[fork(2, "0/3000000")],
        config=config(remove_data_directory_on_diverged_timelines=True),
    )
    local = stopped_local(ControlState.IN_PRODUCTION, job=failed(JobKind.REWIND))
    first = decide(observation(view=after_failover, local=local))
    assert first.reason is Reason.JOB_BACKOFF
    second = then(first, observation(view=after_failover, local=local, now=NOW + RETRY_AFTER))
    assert second.reason is Reason.REWIND_DISABLED_RECLONING


# --- rejoining after a fork, and a known gap (xfail: the behaviour the rules should have) ----------

AFTER_FAILOVER = view(
    members=(primary_member("node1", timeline=2, lsn="0/3200000"), member("node2", state=PgState.STOPPED)),
    history=[fork(2, "0/3000000")],
)


def test_diverged_standby_is_rewound_in_the_decision_that_stops_it() -> None:
    # Once stopped in recovery, pg_control no longer shows how far its WAL went: a later cycle
    # could not tell it forked, and would start it again (stop/start for ever).
    stop = decide(observation(view=AFTER_FAILOVER, local=standby_local(received="0/3100000")))
    assert stop.actions == (StopPostgres(StopMode.FAST), Rewind("node1"))
    rewinding = stopped_local(ControlState.SHUT_DOWN_IN_RECOVERY, job=job(JobKind.REWIND, running=True))
    during = then(stop, observation(view=AFTER_FAILOVER, local=rewinding, now=NOW + 1))
    assert during.reason is Reason.JOB_IN_PROGRESS
    # pg_rewind leaves a copy of the source's pg_control: its timeline, "in archive recovery".
    rewound = stopped_local(ControlState.IN_ARCHIVE_RECOVERY, timeline=2, job=job(JobKind.REWIND, ok=True))
    after = then(during, observation(view=AFTER_FAILOVER, local=rewound, now=NOW + 30))
    assert after.actions == (StartStandby("node1", slot="node2"),)


def test_a_rewind_long_ago_does_not_excuse_a_new_fork() -> None:
    # The agent keeps the last job record until the next job, so it says nothing about today.
    third_timeline = view(
        members=(primary_member("node3", timeline=3, lsn="0/5000000"),),
        leader="node3",
        history=[fork(2, "0/3000000", "node2"), fork(3, "0/4000000", "node3")],
    )
    local = stopped_local(
        ControlState.IN_PRODUCTION, timeline=2, checkpoint="0/4100000", job=job(JobKind.REWIND, ok=True)
    )
    assert decide(observation(view=third_timeline, local=local)).actions == (Rewind("node3"),)


def test_unprobed_postgres_in_production_under_another_leader_is_demoted_after_a_ttl() -> None:
    local = unprobed_local(ControlState.IN_PRODUCTION)
    first = decide(observation(local=local, now=100.0))
    assert first.reason is not Reason.ROGUE_PRIMARY_DEMOTING  # a starting clone looks the same
    assert first.memory.probe_failing_since == 100.0
    later = decide(observation(local=local, now=104.0, memory=first.memory))
    assert later.reason is Reason.ROGUE_PRIMARY_DEMOTING
    assert later.actions == (Demote(StopMode.IMMEDIATE),)


def test_unprobed_standby_is_never_taken_for_a_rogue_primary() -> None:
    local = unprobed_local(ControlState.IN_ARCHIVE_RECOVERY)
    first = decide(observation(local=local, now=100.0))
    later = decide(observation(local=local, now=200.0, memory=first.memory))
    assert later.reason is not Reason.ROGUE_PRIMARY_DEMOTING


def test_time_spent_paused_does_not_count_towards_primary_start_timeout() -> None:
    paused = view(config=config(pause=True))
    first = decide(leader(view=paused, local=CRASHED, now=NOW))
    assert first.reason is Reason.LEADER_PAUSED and first.memory.unhealthy_primary_since is None
    during = then(first, leader(view=paused, local=CRASHED, now=NOW + 60))
    resumed = then(during, leader(local=CRASHED, now=NOW + 61))
    assert resumed.reason is Reason.PRIMARY_STARTING, resumed.message
    assert StartPrimary() in resumed.actions


def test_a_leader_agent_just_started_keeps_slots_of_members_it_has_not_seen() -> None:
    """A restarted leader agent (or one adopting a cluster moved from Patroni, its standbys not
    moved yet) cannot tell how long an absent member has been gone: its slot stays until the agent
    has run member_slots_ttl, as a member seen absent keeps it that long."""
    # Slots on the primary: node9's member was never seen by this agent; node8's streams now.
    local = replace(primary_local(), slots={"node2": ACTIVE, "node3": IDLE, "node8": ACTIVE, "node9": IDLE})
    just_started = memory(first_decision_at=NOW - 60)
    decision = decide(leader(local=local, memory=just_started))
    assert EnsureSlots(create=frozenset(), drop=frozenset()) in decision.actions
    later = memory(first_decision_at=NOW - TTL - 1)
    decision = decide(leader(local=local, memory=later))
    assert EnsureSlots(create=frozenset(), drop=frozenset({"node9"})) in decision.actions  # node8's streams


def test_the_first_decision_is_remembered() -> None:
    first = decide(leader(local=primary_local(), memory=Memory()))
    assert first.memory.first_decision_at == NOW
    again = decide(leader(local=primary_local(), memory=first.memory, now=NOW + 5))
    assert again.memory.first_decision_at == NOW


def test_a_standby_keeps_the_highest_timeline_its_postmaster_was_seen_receiving() -> None:
    """The WAL receiver's timeline vanishes while it reconnects (its upstream restarting, a
    switchover) and pg_control's lags: the memory (once hidden in the controller) keeps the
    highest this postmaster received, so the standby never reads as diverged from timeline 2."""
    members = (primary_member("node1", timeline=2), member("node2"), member("node3"))
    leader2 = view(members=members, history=[fork(2, "0/2000000")])  # node2 received past the fork
    on_two = replace(standby_local(timeline=2), started_at=1000.0)
    first = decide(observation(view=leader2, local=on_two))
    assert first.memory.standby_timeline == (1000.0, 2)
    reconnecting = replace(standby_local(timeline=1), started_at=1000.0)
    after = then(first, observation(view=leader2, local=reconnecting))
    assert after.reason is Reason.STANDBY_HEALTHY, after.message
    assert after.memory.standby_timeline == (1000.0, 2)
    # A restarted postmaster starts afresh: what it reads is what it has.
    restarted = then(after, observation(view=leader2, local=replace(reconnecting, started_at=2000.0)))
    assert restarted.memory.standby_timeline == (2000.0, 1)
