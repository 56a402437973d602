"""The agent-side half of the REST API: cluster documents, config edits, switchover, node requests.

``GET /cluster``, ``/history`` and ``/config`` answer from the agent's snapshot: the cluster view
its last cycle read (at most ``loop_wait`` old, sooner when an etcd watch fired), never from etcd
itself. Those reads need no credentials, and the etcd client is the one that renews the leader
lease: a flood of them must not queue in front of a renewal. Operations check themselves against
etcd as it is now, and their writes are compare-and-set. A switchover writes an intent the leader
and candidate act on (``ha/rules/switchover.py``) and then watches the store until the candidate
runs as primary, the leader abandons it (its reason is recorded beside the intent), or the timeout
runs out: the caller always learns the outcome or the state reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pgwarden.agent.failsafe import PromiseBox
from pgwarden.agent.lease import monotonic
from pgwarden.agent.requests import Options, RequestBox, RequestPending, Ticket
from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.api.config_check import ParameterChecker, check_changed_parameters
from pgwarden.api.contract import ConfigAnswer, IfMatch, OperationError, OperationResult, etag
from pgwarden.config import ConfigError, merge_patch, parse_dynamic_config
from pgwarden.config.dynamic import normalize_patch
from pgwarden.dcs.cluster_store import ClusterStore
from pgwarden.dcs.store import StoreError
from pgwarden.documents.render import (
    cluster_document,
    config_document,
    history_entries,
    intent_document,
    iso_time,
)
from pgwarden.documents.shapes import ClusterDoc, HistoryEntry
from pgwarden.ha.observation import Request
from pgwarden.ha.rules.failsafe import known_topology
from pgwarden.ha.rules.requests import RESTART_CONDITIONS_UNMET
from pgwarden.ha.rules.switchover import Refused, choose_candidate
from pgwarden.model import (
    ClusterView,
    DynamicConfig,
    Member,
    PgState,
    ReinitializeOptions,
    RestartConditions,
    Role,
    SwitchoverIntent,
)

_POLL = 0.1  # how often a waiting operation looks at the store again
_RELOAD_TIMEOUT = 10.0
_PAST_TOLERANCE = 60.0  # seconds a schedule may lie in the past (clock skew, a slow client): due at once


class AgentOperations:
    def __init__(
        self,
        cluster: ClusterStore,
        snapshots: SnapshotHolder,
        requests: RequestBox,
        clock: Callable[[], float] = time.time,
        promises: PromiseBox | None = None,
        check_parameters: ParameterChecker | None = None,
    ) -> None:
        """``check_parameters`` asks this node's PostgreSQL about changed parameters before a config
        write (api/config_check.py); None skips that check (and says so)."""
        self._cluster = cluster
        self._snapshots = snapshots
        self._requests = requests
        self._clock = clock
        self._promises = promises or PromiseBox()
        self._check_parameters = check_parameters

    # --- reading ----------------------------------------------------------------------------------
    def _view(self) -> ClusterView:
        """The cluster as etcd holds it now, for an operation to check itself against."""
        try:
            return self._cluster.read()
        except StoreError as exc:
            raise OperationError(503, f"etcd cannot be read: {exc}") from None

    def _observed(self) -> ClusterView:
        """The cluster as the agent's last cycle read it: what unauthenticated reads answer from."""
        return self._snapshots.get().view

    def cluster(self) -> ClusterDoc:
        return cluster_document(self._observed())

    def history(self) -> list[HistoryEntry]:
        return history_entries(self._observed())

    # --- dynamic config -------------------------------------------------------------------------
    def get_config(self) -> ConfigAnswer:
        """From the snapshot, with the revision it was read at as the ETag: a write with If-Match on
        it goes through only if nobody wrote since that read."""
        view = self._observed()
        if view.config_revision == 0:
            raise OperationError(503, "this agent has not read a dynamic config from etcd yet")
        return ConfigAnswer(config_document(view.config), view.config_revision)

    def patch_config(self, patch: Mapping[str, Any], if_match: IfMatch | None = None) -> ConfigAnswer:
        current, revision = self._stored_config()
        _precondition(if_match, revision)
        if current is None:  # nothing valid to merge into
            raise _invalid_config(revision)
        document = merge_patch(config_document(current), normalize_patch(patch))
        return self._write_config(document, current, revision, if_match)

    def put_config(self, document: Mapping[str, Any], if_match: IfMatch | None = None) -> ConfigAnswer:
        current, revision = self._stored_config()
        _precondition(if_match, revision)
        return self._write_config(document, current, revision, if_match)

    def _stored_config(self) -> tuple[DynamicConfig | None, int]:
        """The stored config as etcd holds it now (None: invalid) and its revision; 503 before the
        cluster has one."""
        try:
            cfg, revision = self._cluster.read_config()
        except StoreError as exc:
            raise OperationError(503, f"etcd cannot be read: {exc}") from None
        if revision == 0:
            raise OperationError(503, "the cluster has no dynamic config yet (not bootstrapped)")
        return cfg, revision

    def _write_config(
        self,
        document: Mapping[str, Any],
        current: DynamicConfig | None,
        revision: int,
        if_match: IfMatch | None,
    ) -> ConfigAnswer:
        """Validate, ask PostgreSQL about the parameters that change, then compare-and-set: a
        refused change leaves etcd untouched."""
        source = "request body"
        try:
            cfg = parse_dynamic_config(document, source)
        except ConfigError as exc:
            raise OperationError(400, str(exc)) from None
        verdict = check_changed_parameters(
            cfg, current, self._check_parameters, self._snapshots.get().config.name, source
        )
        if verdict.refusal is not None:
            raise OperationError(400, str(verdict.refusal), {"refused": verdict.refused})
        try:
            written = self._cluster.write_config(cfg, expected_revision=revision)
        except StoreError as exc:
            raise OperationError(503, f"etcd cannot be written: {exc}") from None
        if not written and if_match is not None:
            raise _changed_since()
        if not written:
            raise OperationError(409, "the config changed meanwhile; read it again and retry")
        return ConfigAnswer(config_document(cfg), parameter_check=verdict.note)

    # --- switchover and failover ----------------------------------------------------------------
    def switchover(
        self, leader: str | None, candidate: str | None, scheduled_at: datetime | None, timeout: float
    ) -> OperationResult:
        view = self._view()
        current = view.leader.name if view.leader else None
        if leader is not None and leader != current:
            raise OperationError(412, f"leader name mismatch: {leader} is not the leader ({current} is)")
        chosen = self._choose(view, candidate, failover=False)
        now = self._clock()
        when = scheduled_at.timestamp() if scheduled_at is not None else None
        scheduled = when is not None and when > now + 1
        start = when if scheduled and when is not None else now
        intent = SwitchoverIntent(
            leader=current,
            candidate=chosen,
            scheduled_at=when if scheduled else None,
            deadline=start + timeout,
        )
        self._post_intent(intent)
        if scheduled and scheduled_at is not None:
            return OperationResult(
                202,
                f"switchover from {current} to {chosen} scheduled at {scheduled_at.isoformat()}",
                {"leader": current, "candidate": chosen, "scheduled_at": scheduled_at.isoformat()},
            )
        return self._await_new_primary(intent, now, timeout)

    def failover(self, candidate: str, timeout: float) -> OperationResult:
        view = self._view()
        chosen = self._choose(view, candidate, failover=True)
        current = view.leader.name if view.leader else None
        now = self._clock()
        intent = SwitchoverIntent(
            leader=current, candidate=chosen, failover=current is None, deadline=now + timeout
        )
        self._post_intent(intent)
        return self._await_new_primary(intent, now, timeout)

    def cancel_switchover(self) -> OperationResult:
        intent = self._view().switchover
        if intent is None:
            raise OperationError(404, "no switchover is pending")
        try:
            self._cluster.clear_switchover()
        except StoreError as exc:
            raise OperationError(503, f"etcd cannot be written: {exc}") from None
        return OperationResult(200, f"switchover to {intent.candidate} cancelled", intent_document(intent))

    @staticmethod
    def _choose(view: ClusterView, candidate: str | None, failover: bool) -> str:
        try:
            return choose_candidate(view, candidate, failover)
        except Refused as exc:
            raise OperationError(412, str(exc)) from None

    def _post_intent(self, intent: SwitchoverIntent) -> None:
        try:
            posted = self._cluster.set_switchover(intent, only_if_absent=True)
        except StoreError as exc:
            raise OperationError(503, f"etcd cannot be written: {exc}") from None
        if not posted:
            raise OperationError(409, "another switchover is pending; cancel it first (DELETE /switchover)")

    def _await_new_primary(self, intent: SwitchoverIntent, since: float, timeout: float) -> OperationResult:
        kind = "failover" if intent.failover else "switchover"
        candidate = intent.candidate
        deadline = time.monotonic() + timeout
        view: ClusterView | None = None
        while time.monotonic() < deadline:
            time.sleep(_POLL)
            try:
                view = self._cluster.read()
            except StoreError:
                continue  # the store may blink during the handover; the deadline bounds this
            member = view.member(candidate) if candidate else None
            if _serves_as_primary(view, member) and member is not None:
                return OperationResult(
                    200,
                    f"{kind} done: {candidate} is the primary on timeline {member.timeline}",
                    {"leader": candidate, "timeline": member.timeline, "previous_leader": intent.leader},
                )
            if view.switchover is None and (view.leader is None or view.leader.name != candidate):
                raise self._abandoned(kind, since)
        raise OperationError(
            503,
            f"{kind} to {candidate} did not complete within {timeout:.0f}s",
            {"state": _state_reached(view, candidate)},
        )

    def _abandoned(self, kind: str, since: float) -> OperationError:
        try:
            outcome = self._cluster.read_switchover_outcome()
        except StoreError:
            outcome = None
        if outcome is not None and outcome[0] >= since - 1:
            return OperationError(412, f"{kind} abandoned by the leader: {outcome[1]}")
        return OperationError(503, f"{kind} cancelled before it completed (the intent was removed)")

    # --- this node --------------------------------------------------------------------------------
    def restart(self, timeout: float, conditions: RestartConditions | None = None) -> OperationResult:
        started = time.monotonic()
        self._ask(Request.RESTART, timeout, conditions)
        answered = monotonic()
        # The decision stopped PostgreSQL and started it again without waiting; the caller wants to
        # know it serves again, from a snapshot taken after the restart (not the one before it).
        while time.monotonic() - started < timeout:
            snap = self._snapshots.get()
            if snap.loop_at >= answered and (snap.local.is_primary or snap.local.is_standby):
                return OperationResult(200, "PostgreSQL restarted")
            time.sleep(_POLL)
        raise OperationError(503, f"PostgreSQL restarted but did not serve again within {timeout:.0f}s")

    def schedule_restart(
        self, when: datetime, conditions: RestartConditions | None = None
    ) -> OperationResult:
        at = when.timestamp()
        if at < self._clock() - _PAST_TOLERANCE:
            raise OperationError(400, f"field 'schedule' is in the past: {when.isoformat()}")
        if not self._requests.schedule_restart(at, conditions):
            scheduled = self._requests.scheduled_restart()
            shown = iso_time(scheduled) if scheduled is not None else "?"
            raise OperationError(
                409, f"a restart is already scheduled for {shown}; cancel it first (DELETE /restart)"
            )
        return OperationResult(
            202, f"restart scheduled for {when.isoformat()}", {"schedule": when.isoformat()}
        )

    def cancel_scheduled_restart(self) -> OperationResult:
        cancelled = self._requests.cancel_scheduled_restart()
        if cancelled is None:
            raise OperationError(404, "no restart is scheduled on this node")
        return OperationResult(
            200, f"scheduled restart ({iso_time(cancelled)}) cancelled", {"schedule": iso_time(cancelled)}
        )

    def reload(self) -> OperationResult:
        self._ask(Request.RELOAD, _RELOAD_TIMEOUT)
        return OperationResult(200, "configuration reloaded")

    def reinitialize(self, timeout: float, options: ReinitializeOptions | None = None) -> OperationResult:
        ticket = self._ask(Request.REINITIALIZE, timeout, options)
        return OperationResult(202, f"reinitialization started: {ticket.message}")

    # --- failsafe mode ------------------------------------------------------------------------------
    # Both answer from the snapshot, not etcd: they matter most while etcd cannot be read.
    def failsafe_topology(self) -> dict[str, str]:
        view = self._snapshots.get().view
        if not view.config.failsafe_mode:
            raise OperationError(503, "failsafe_mode is off (edit-config --set failsafe_mode=true)")
        # Junk in the key: the last valid topology this node read (the leader still asks it).
        return dict(known_topology(view) or {})

    def failsafe(self, leader: str, seconds: float | None) -> OperationResult:
        snap = self._snapshots.get()
        length = seconds if seconds is not None else snap.view.config.ttl
        promised, refusal = self._promises.grant(leader, length, snap.config.name, snap.view, snap.local)
        if refusal is not None:
            raise OperationError(412, f"no failsafe promise to {leader}: {refusal}")
        return OperationResult(
            200,
            "Accepted",
            {"promised_to": leader, "promise_seconds": round(promised, 3), "member": snap.config.name},
        )

    def _ask(self, request: Request, timeout: float, options: Options = None) -> Ticket:
        try:
            ticket = self._requests.submit(request, options)
        except RequestPending as exc:
            raise OperationError(409, str(exc)) from None
        if not ticket.wait(timeout):
            self._requests.withdraw(ticket)
            decision = self._snapshots.get().decision
            doing = decision.message if decision is not None else "starting"
            raise OperationError(
                503, f"{request.value} not taken up within {timeout:.0f}s; the agent is busy: {doing}"
            )
        if ticket.refusal is not None and ticket.refusal.startswith(RESTART_CONDITIONS_UNMET):
            # Patroni's answer, word for word, and pgwarden's reason beside it: nothing was done.
            raise OperationError(503, RESTART_CONDITIONS_UNMET, {"why": ticket.refusal})
        if ticket.refusal is not None:
            raise OperationError(412, f"{request.value} refused: {ticket.refusal}")
        if ticket.failure is not None:
            raise OperationError(503, f"{request.value} failed: {ticket.failure}")
        return ticket


def _precondition(if_match: IfMatch | None, revision: int) -> None:
    if if_match is not None and not if_match.allows(revision):
        raise _changed_since(revision)


def _changed_since(revision: int | None = None) -> OperationError:
    """412: the config moved since the caller read it (``revision``: where it is now, if known)."""
    now = f" (it is {etag(revision)} now)" if revision is not None else ""
    return OperationError(
        412,
        f"the config is no longer the one If-Match names{now}: someone changed it since you read it; "
        "nothing written, read it again (GET /config) and retry",
        {"revision": revision} if revision is not None else None,
    )


def _invalid_config(revision: int) -> OperationError:
    return OperationError(
        409,
        f"the dynamic config in etcd (revision {revision}) is invalid (the agents' logs say why); "
        "replace it whole with PUT /config and If-Match: " + etag(revision) + " (pgwarden edit-config does)",
        {"revision": revision},
    )


def _serves_as_primary(view: ClusterView, member: Member | None) -> bool:
    return (
        member is not None
        and view.leader is not None
        and view.leader.name == member.name
        and member.role is Role.PRIMARY
        and member.state is PgState.RUNNING
    )


def _state_reached(view: ClusterView | None, candidate: str | None) -> dict[str, Any]:
    if view is None:
        return {"etcd": "unreadable during the whole wait"}
    member = view.member(candidate) if candidate else None
    return {
        "leader": view.leader.name if view.leader and view.leader.readable else None,
        "intent_pending": view.switchover is not None,
        "candidate": (
            {"name": member.name, "role": member.role.value, "state": member.state.value} if member else None
        ),
    }
