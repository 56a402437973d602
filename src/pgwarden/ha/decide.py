"""``decide(observation) -> Decision``: every HA rule, applied in a fixed order of precedence.

Rules come first when they protect safety (store lost, lease expired, a rogue writer), then who
may join at all (a member whose slot name another has), then the life cycle (jobs, bootstrap,
data directory), then the steady states (leader, follower, no leader).
The first rule that applies decides; ``RULES`` is that order, and the docs render it. No rule calls
another (what rules share are helpers: rules/duties.py), so that order is the whole precedence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pgwarden.ha import sync
from pgwarden.ha.actions import Clone, Rewind, RunInitdb
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Memory, Observation
from pgwarden.ha.rules import cold_start, failsafe
from pgwarden.ha.rules.bootstrap import bootstrap
from pgwarden.ha.rules.candidacy import no_leader
from pgwarden.ha.rules.datadir import adoption, foreign_data_directory, guard_removal, unowned_data_directory
from pgwarden.ha.rules.following import rogue_primary, someone_else_leads
from pgwarden.ha.rules.jobs import job_backoff, job_in_progress
from pgwarden.ha.rules.leadership import leader_is_me, leader_key_unreadable, lease_expired, watchdog_required
from pgwarden.ha.rules.membership import slot_name_taken
from pgwarden.ha.rules.requests import operator_request
from pgwarden.ha.rules.restarts import scheduled_restart
from pgwarden.ha.rules.slots import members_seen
from pgwarden.ha.rules.store import store_unreachable
from pgwarden.ha.rules.switchover import switchover
from pgwarden.ha.rules.timeline import remembered_timeline

Rule = Callable[[Observation], Decision | None]

_JOBS = (RunInitdb, Clone, Rewind)


RULES: tuple[Rule, ...] = (
    store_unreachable,
    lease_expired,
    leader_key_unreadable,
    rogue_primary,
    watchdog_required,
    failsafe.promise_held,
    slot_name_taken,
    operator_request,
    job_in_progress,
    job_backoff,
    unowned_data_directory,
    bootstrap,
    foreign_data_directory,
    switchover,
    scheduled_restart,
    leader_is_me,
    someone_else_leads,
    no_leader,
)


def decide(obs: Observation) -> Decision:
    local, seen_timeline = remembered_timeline(obs.local, obs.memory.standby_timeline)
    obs = replace(obs, local=local)
    obs = replace(obs, sync_plan=sync.plan(obs))  # synchronous replication, worked out once
    memory = replace(_remember(obs), standby_timeline=seen_timeline)
    for rule in RULES:
        decision = rule(obs)
        if decision is not None:
            decision = guard_removal(obs, decision)
            if any(isinstance(a, _JOBS) for a in decision.actions):
                # The new job's failure must be timed from when it is seen: the job record cannot
                # tell it from the previous failure when it fails within one cycle.
                memory = replace(memory, job_failed_at=None)
            # Adopting a directory of this cluster goes last: it only writes a marker file.
            actions = decision.actions + adoption(obs, decision.actions)
            return Decision(actions, decision.reason, decision.detail, memory, decision.answers)
    raise AssertionError("no_leader applies whenever the other rules do not")  # pragma: no cover


def _remember(obs: Observation) -> Memory:
    local, previous = obs.local, obs.memory
    # Time spent paused, or without etcd, does not count towards primary_start_timeout: on resume
    # the primary gets its full chance to start before the key is released. (A primary stopped at
    # its deadline during an etcd outage would otherwise hand its key to a standby when etcd is
    # back, instead of starting again under it.)
    unhealthy = obs.store_ok and obs.leader_is_me and not local.is_primary and not obs.view.config.pause
    job = local.job
    failed = job is not None and job.ok is False
    silent = local.running and not local.probe_ok
    plan = sync.plan_of(obs)
    saw_leader, cold_since = cold_start.remember(obs)
    leader = obs.view.leader
    return Memory(
        leader_seen=previous.leader_seen
        if leader is not None and not leader.readable
        else (leader.name if leader is not None else None),
        unhealthy_primary_since=(previous.unhealthy_primary_since or obs.now) if unhealthy else None,
        member_last_seen=members_seen(obs),
        job_failed_at=(previous.job_failed_at or obs.now) if failed else None,
        probe_failing_since=_since(previous.probe_failing_since, obs.now) if silent else None,
        sync_short_since=plan.short_since,
        sync_applied=plan.applied,
        saw_leader=saw_leader,
        cold_start_since=cold_since,
        failsafe=failsafe.remember(obs),
        first_decision_at=_since(previous.first_decision_at, obs.now),
    )


def _since(previous: float | None, now: float) -> float:
    return now if previous is None else previous
