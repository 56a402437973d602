"""Operator requests made through this node's REST API: restart, reload, reinitialize.

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


def operator_request(obs: Observation) -> Decision | None:
    """Answer one pending request per cycle, the most drastic first."""
    if Request.REINITIALIZE in obs.requests:
        return _reinitialize(obs)
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


def _reinitialize(obs: Observation) -> Decision:
    request = Request.REINITIALIZE
    if obs.leader_is_me or obs.local.is_primary:
        return _refuse(request, "this node is the primary; reinitialize a standby, or switch over first", obs)
    running = busy(obs)
    if running:
        return _refuse(request, running, obs)
    # The same guard as every automatic removal: an operator's request does not make another
    # cluster's data, or files pgwarden never made, ours to delete.
    not_ours = removal_refusal(obs.local, obs.view.initialize)
    if not_ours:
        return _refuse(request, not_ours, obs)
    source = clone_source(obs.view, obs.name) if obs.view.leader is not None else None
    if source is None:
        return _refuse(request, "no running leader to clone from", obs)
    stop: tuple[Action, ...] = (StopPostgres(StopMode.IMMEDIATE),) if obs.local.running else ()
    return _done(request, act(Reason.REINITIALIZING, *stop, WipeDataDir(), Clone(source), source=source))


def _restart(obs: Observation) -> Decision:
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
