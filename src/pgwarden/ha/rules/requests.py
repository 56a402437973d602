"""Operator requests made through this node's REST API: restart, reload, reinitialize.

A restart may carry Patroni's conditions (``restart_pending``, ``role``, ``postgres_version``):
when one does not hold, the restart is not done and the answer says which (Patroni's
"restart conditions are not satisfied"). A reinitialize may ask ``force`` (a running clone or
rewind does not refuse it: it waits for that job, then reinitializes) and ``from_leader``.

They come after the safety rules (a rogue primary is demoted first, whoever asks for what) and
before everything else, so an operator's request is answered within a cycle: carried out by this
decision's actions, or refused with the reason. A leader's decision always renews its key.
"""

from __future__ import annotations

from pgwarden.ha.actions import (
    Action,
    Clone,
    ReloadPostgres,
    RenewLeader,
    StopMode,
    StopPostgres,
    WipeDataDir,
)
from pgwarden.ha.decision import Decision, act
from pgwarden.ha.observation import Observation, Request
from pgwarden.ha.reasons import Reason
from pgwarden.ha.rules.datadir import removal_refusal
from pgwarden.ha.rules.duties import busy, restart_plan
from pgwarden.ha.rules.following import clone_source
from pgwarden.model import PgState, RestartConditions, Role

# Patroni's answer when a restart's conditions do not hold (its 503 text); the API matches on it.
RESTART_CONDITIONS_UNMET = "restart conditions are not satisfied"


def operator_request(obs: Observation) -> Decision | None:
    """Answer one pending request per cycle, the most drastic first."""
    # A forced reinitialize waiting for a running job answers nothing yet; the others still are.
    if Request.REINITIALIZE in obs.requests and (decision := _reinitialize(obs)) is not None:
        return decision
    if Request.RESTART in obs.requests:
        return _restart(obs)
    if Request.RELOAD in obs.requests:
        return _reload(obs)
    return None


def _refuse(request: Request, why: str, obs: Observation) -> Decision:
    renew: tuple[Action, ...] = (RenewLeader(),) if obs.leader_is_me and obs.holds_lease else ()
    decision = act(Reason.REQUEST_REFUSED, *renew, request=request.value, why=why)
    return Decision(decision.actions, decision.reason, decision.detail, answers={request: why})


def _done(request: Request, decision: Decision) -> Decision:
    return Decision(decision.actions, decision.reason, decision.detail, answers={request: None})


def _reinitialize(obs: Observation) -> Decision | None:
    request = Request.REINITIALIZE
    if obs.leader_is_me or obs.local.is_primary:
        return _refuse(request, "this node is the primary; reinitialize a standby, or switch over first", obs)
    running = busy(obs)
    if running and obs.reinitialize_options.force:
        return None  # answered once the job ends (job_in_progress decides meanwhile)
    if running:
        return _refuse(request, running + " (send force: true to reinitialize after it)", obs)
    # The same guard as every automatic removal: an operator's request does not make another
    # cluster's data, or files pgwarden never made, ours to delete.
    not_ours = removal_refusal(obs.local, obs.view.initialize)
    if not_ours:
        return _refuse(request, not_ours, obs)
    source = _reinitialize_source(obs)
    if source is None:
        return _refuse(request, "no running leader to clone from", obs)
    stop: tuple[Action, ...] = (StopPostgres(StopMode.IMMEDIATE),) if obs.local.running else ()
    return _done(request, act(Reason.REINITIALIZING, *stop, WipeDataDir(), Clone(source), source=source))


def _reinitialize_source(obs: Observation) -> str | None:
    if obs.view.leader is None:
        return None
    if not obs.reinitialize_options.from_leader:
        return clone_source(obs.view, obs.name)
    leader = obs.view.leader_member
    serving = leader is not None and leader.name != obs.name and leader.state is PgState.RUNNING
    return leader.name if serving and leader is not None else None


def role_now(obs: Observation) -> Role:
    """This node's role as Patroni's restart filter sees it: primary, standby_leader or replica."""
    if obs.local.is_primary:
        return Role.PRIMARY
    return Role.STANDBY_LEADER if obs.leader_is_me else Role.REPLICA


def restart_mismatch(conditions: RestartConditions, obs: Observation) -> str | None:
    """Why a conditional restart must not be done now (Patroni's reasons), or None when every
    condition given holds."""
    if conditions.role is not None and conditions.role is not role_now(obs):
        return f"host role mismatch (this node is {role_now(obs).value}, not {conditions.role.value})"
    version = obs.local.server_version
    if conditions.below_version is not None:
        if version is None:
            return "postgres version mismatch (the server's version is not known yet)"
        if conditions.below_version <= version:
            wanted = conditions.below_version
            return f"postgres version mismatch (the server runs {version}, not below {wanted})"
    if conditions.only_if_pending and not obs.local.pending_restart:
        return "pending restart flag is not set"
    return None


def _restart(obs: Observation) -> Decision:
    mismatch = restart_mismatch(obs.restart_conditions, obs)
    if mismatch is not None:
        return _refuse(Request.RESTART, f"{RESTART_CONDITIONS_UNMET}: {mismatch}", obs)
    plan = restart_plan(obs)
    if isinstance(plan, str):
        return _refuse(Request.RESTART, plan, obs)
    return _done(Request.RESTART, plan)


def _reload(obs: Observation) -> Decision:
    request = Request.RELOAD
    if not obs.local.running:
        return _refuse(request, "PostgreSQL is not running; it reads its configuration when it starts", obs)
    renew: tuple[Action, ...] = (RenewLeader(),) if obs.leader_is_me and obs.holds_lease else ()
    return _done(request, act(Reason.RELOADING, *renew, ReloadPostgres()))
