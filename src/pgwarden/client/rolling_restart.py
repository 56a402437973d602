"""``pgwarden restart --pending``: restart, one member at a time, every member waiting for a restart.

Standbys go first and the primary last, so the primary's settings change once its standbys can
already follow it; with ``switchover`` the primary hands over to a (restarted) standby instead of
restarting in place, and restarts afterwards as a standby only if it still needs to. Lowering a
setting that a hot standby must keep at least as high as its primary (max_connections, ...)
reverses the order: the primary first, in place, since a standby set lower than its primary
cannot replay its WAL.

The plan is a pure function of the cluster view; the run goes through the agents' REST APIs,
each of which decides whether its own restart is safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pgwarden.client.cluster_client import ClusterClient
from pgwarden.client.errors import ClientError, NoLeader
from pgwarden.model.cluster import ClusterView

# PostgreSQL refuses hot standby when one of these is lower on the standby than on its primary.
HOT_STANDBY_MINIMUMS = frozenset(
    {
        "max_connections",
        "max_worker_processes",
        "max_wal_senders",
        "max_prepared_transactions",
        "max_locks_per_transaction",
    }
)
_POLL = 0.5


class StepKind(StrEnum):
    RESTART = "restart"
    SWITCHOVER = "switchover"  # hand the primary role to a standby, then restart if still pending


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    member: str
    primary: bool  # the member leads when the step starts

    def __str__(self) -> str:
        what = "switch over from" if self.kind is StepKind.SWITCHOVER else "restart"
        return f"{what} {self.member}{' (primary)' if self.primary else ''}"


def lowers_hot_standby_minimum(reasons: Mapping[str, tuple[str, str]]) -> bool:
    """True when a pending change lowers a setting a standby must keep at least as high as its primary."""
    for name, (old, new) in reasons.items():
        before, after = _number(old), _number(new)
        if name in HOT_STANDBY_MINIMUMS and before is not None and after is not None and after < before:
            return True
    return False


def _number(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def plan_rolling_restart(view: ClusterView, switchover: bool) -> list[Step]:
    """The steps that restart every member with ``pending_restart``, in a safe order."""
    if view.leader is None:
        raise NoLeader(f"cluster {view.name!r} has no leader now; a rolling restart needs one")
    leader = view.leader.name
    pending = [m for m in sorted(view.members, key=lambda m: m.name) if m.pending_restart]
    standbys = [Step(StepKind.RESTART, m.name, False) for m in pending if m.name != leader]
    primary = next((m for m in pending if m.name == leader), None)
    if primary is None:
        return standbys
    lowering = any(lowers_hot_standby_minimum(m.pending_restart_reason) for m in pending)
    if lowering:
        return [Step(StepKind.RESTART, leader, True), *standbys]
    kind = StepKind.SWITCHOVER if switchover and len(view.members) > 1 else StepKind.RESTART
    return [*standbys, Step(kind, leader, True)]


class RollingRestart:
    """Carries out a plan through the agents' REST APIs, waiting after each step until the member
    serves again in the role expected and nothing is pending on it any more."""

    def __init__(
        self,
        client: ClusterClient,
        timeout: float,
        report: Callable[[str], None],
        answer_margin: float = 10.0,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._report = report
        self._margin = answer_margin

    def run(self, steps: list[Step]) -> None:
        for step in steps:
            self._report(f"{step} ...")
            if step.kind is StepKind.SWITCHOVER:
                self._switch_over(step.member)
            else:
                self._restart(step.member, primary=step.primary)

    def _restart(self, name: str, primary: bool) -> None:
        member = self._client.member(name)
        answer = self._client.call(
            member, "POST", "/restart", {"timeout": self._timeout}, self._timeout + self._margin
        )
        self._report(f"  {name}: {answer.message}")
        self._wait_serving(name, primary)

    def _switch_over(self, name: str) -> None:
        leader = self._client.member(name)
        body = {"leader": name, "timeout": self._timeout}
        answer = self._client.call(leader, "POST", "/switchover", body, self._timeout + self._margin)
        self._report(f"  {answer.message}")
        status = self._wait_serving(name, primary=False, settled=False)
        if status.get("pending_restart"):
            self._report(f"restart {name} (now a standby) ...")
            self._restart(name, primary=False)

    def _wait_serving(self, name: str, primary: bool, settled: bool = True) -> Mapping[str, Any]:
        """The member's status once it runs in the expected role (a standby: streaming) and, when
        ``settled``, no longer waits for a restart."""
        deadline = time.monotonic() + self._timeout
        seen = "no answer"
        while True:
            try:
                status = self._client.call(self._client.member(name), "GET", "/patroni").document
            except ClientError as exc:
                status, seen = {}, str(exc)
            if status:
                seen = f"role {status.get('role')}, state {status.get('state')}"
                if _serving(status, primary) and not (settled and status.get("pending_restart")):
                    return status
            if time.monotonic() >= deadline:
                raise ClientError(
                    f"{name} did not serve again as {'primary' if primary else 'a streaming standby'} "
                    f"with nothing pending within {self._timeout:.0f}s (last seen: {seen}); stopping here"
                )
            time.sleep(_POLL)


def _serving(status: Mapping[str, Any], primary: bool) -> bool:
    if status.get("state") != "running":
        return False
    if primary:
        return status.get("role") == "primary"
    return status.get("role") == "replica" and status.get("replication_state") == "streaming"
