"""A restart scheduled through the REST API (``POST /restart {"schedule": ...}``) falls due.

The agent keeps the schedule and publishes it in its member record; this rule reads it from the
view. Whether the restart already happened is an observed fact too: a postmaster that started at
or after the scheduled time needs no restart, so a repeated cycle never restarts twice. Conditions
sent with the schedule (``restart_pending``, ``role``, ``postgres_version``) are checked when it
falls due, as Patroni does: one that does not hold then drops the scheduled restart.
"""

from __future__ import annotations

from pgwarden.ha.actions import ClearScheduledRestart, RenewLeader
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.duties import restart_plan
from pgwarden.ha.rules.requests import RESTART_CONDITIONS_UNMET, restart_mismatch
from pgwarden.ha.rules.switchover import active_intent


def scheduled_restart(obs: Observation) -> Decision | None:
    """A restart scheduled on this node is due: restart in the current role, then forget it."""
    me = obs.view.member(obs.name)
    when = me.scheduled_restart if me is not None else None
    if not obs.store_ok or when is None or obs.wall < when:
        return None
    intent = active_intent(obs)
    if intent is not None and obs.name in (intent.leader, intent.candidate):
        return None  # the switchover stops and starts PostgreSQL itself; the restart waits for it
    local, late = obs.local, obs.wall - when
    renew = (RenewLeader(),) if obs.leader_is_me and obs.holds_lease else ()
    moot = None
    if not local.running:
        moot = "PostgreSQL is not running (its next start applies what a restart would)"
    elif local.started_at is not None and local.started_at >= when:
        moot = "PostgreSQL has started since"
    elif (mismatch := restart_mismatch(obs.scheduled_restart_conditions, obs)) is not None:
        moot = f"{RESTART_CONDITIONS_UNMET}: {mismatch}"  # Patroni drops it too
    if moot is not None:
        return act(Reason.SCHEDULED_RESTART_MOOT, *renew, ClearScheduledRestart(when), late=late, why=moot)
    plan = restart_plan(obs)
    if isinstance(plan, str) or not local.probe_ok:
        # A passing state (a job, a key being re-attached, a server not answering yet): the
        # restart stays due and is tried again next cycle.
        return None
    # Forgotten first: should the restart fail half-way, the postmaster's start time tells.
    role = plan.detail["role"]
    return act(Reason.SCHEDULED_RESTART, ClearScheduledRestart(when), *plan.actions, role=role, late=late)
