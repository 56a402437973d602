"""What the HTTP layer asks of the agent for status documents and operations, and how answers look.

The HTTP layer (``api/server.py``) parses requests, checks auth and renders JSON; everything that
reads the cluster or changes it sits behind ``Operations`` so the two can be tested apart.
Every operation either returns an ``OperationResult`` or raises ``OperationError`` whose
``status`` is the HTTP status to answer with (INTERFACE.md: 400 malformed, 404 nothing to act on,
409 conflicting request, 412 precondition failed, 503 could not be carried out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pgwarden.documents.shapes import ClusterDoc, HistoryEntry
from pgwarden.model import ReinitializeOptions, RestartConditions


class OperationError(Exception):
    def __init__(self, status: int, message: str, detail: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail: Mapping[str, Any] = detail or {}

    def document(self) -> dict[str, Any]:
        """The JSON body: ``{"error": sentence, ...detail}``."""
        return {"error": self.message, **self.detail}


@dataclass(frozen=True, slots=True)
class OperationResult:
    status: int  # 200 done, 202 accepted (scheduled, or started in the background)
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {"message": self.message, **self.detail}


@dataclass(frozen=True, slots=True)
class IfMatch:
    """A write's ``If-Match`` precondition: the config's revisions (ETags) it may replace."""

    revisions: frozenset[int] = frozenset()
    any: bool = False  # "*": whatever is stored, as long as something is

    def allows(self, revision: int) -> bool:
        return (self.any and revision > 0) or revision in self.revisions


# The header a config write answers with: what this node's PostgreSQL said of the changed parameters.
PARAMETER_CHECK_HEADER = "Pgwarden-Parameter-Check"


def etag(revision: int) -> str:
    """The ETag of the config at etcd ``revision`` (its key's mod_revision): ``"42"``."""
    return f'"{revision}"'


@dataclass(frozen=True, slots=True)
class ConfigAnswer:
    """``/config``'s answer: the document, the revision it was read at (the ETag; None after a
    write), and what the node's PostgreSQL said of the changed parameters (None: none changed)."""

    document: dict[str, Any]
    revision: int | None = None
    parameter_check: str | None = None


# How long a switchover/failover call waits for the new primary before answering with the state it
# reached; callers may pass their own ``timeout`` in the body.
DEFAULT_OPERATION_TIMEOUT = 30.0


class Operations(Protocol):
    """The agent-side half of the REST API; one instance per agent, called from request threads."""

    def cluster(self) -> ClusterDoc:
        """``GET /cluster``: Patroni's ``{"scope", "members": [...], ...}`` and pgwarden's fields
        (documents/shapes.py)."""
        ...

    def history(self) -> list[HistoryEntry]:
        """``GET /history``: Patroni's ``[[timeline, lsn, reason, timestamp, new_leader, event], ...]``."""
        ...

    def get_config(self) -> ConfigAnswer:
        """``GET /config``: the dynamic config as stored in etcd, and its revision."""
        ...

    def patch_config(self, patch: Mapping[str, Any], if_match: IfMatch | None = None) -> ConfigAnswer:
        """``PATCH /config``: merge (``None`` removes a key), validate, check the changed parameters
        against PostgreSQL, compare-and-set; the new config. 412 when ``if_match`` fails."""
        ...

    def put_config(self, document: Mapping[str, Any], if_match: IfMatch | None = None) -> ConfigAnswer:
        """``PUT /config``: replace the whole dynamic config, checked like PATCH; the new config."""
        ...

    def switchover(
        self, leader: str | None, candidate: str | None, scheduled_at: datetime | None, timeout: float
    ) -> OperationResult:
        """``POST /switchover``: 200 once the candidate runs as primary; 202 when scheduled."""
        ...

    def cancel_switchover(self) -> OperationResult:
        """``DELETE /switchover``: remove a pending (scheduled) switchover; 404 when there is none."""
        ...

    def failover(self, candidate: str, timeout: float) -> OperationResult:
        """``POST /failover``: promote ``candidate`` (with or without a healthy leader)."""
        ...

    def restart(self, timeout: float, conditions: RestartConditions | None = None) -> OperationResult:
        """``POST /restart``: restart this node's PostgreSQL (the leader keeps its key meanwhile);
        with ``conditions``, only if they hold (else 503, Patroni's "restart conditions are not
        satisfied", and nothing is done)."""
        ...

    def schedule_restart(
        self, when: datetime, conditions: RestartConditions | None = None
    ) -> OperationResult:
        """``POST /restart {"schedule"}``: 202; the agent restarts when due. 409 when one is scheduled."""
        ...

    def cancel_scheduled_restart(self) -> OperationResult:
        """``DELETE /restart``: forget the scheduled restart; 404 when there is none."""
        ...

    def reload(self) -> OperationResult:
        """``POST /reload``: re-read this node's config and reload PostgreSQL."""
        ...

    def reinitialize(self, timeout: float, options: ReinitializeOptions | None = None) -> OperationResult:
        """``POST /reinitialize``: wipe and re-clone this standby (202, runs in the background)."""
        ...

    def failsafe_topology(self) -> dict[str, str]:
        """``GET /failsafe``: the failsafe topology this node last read, ``{member: REST API URL}``
        (Patroni's shape); 503 when failsafe_mode is off."""
        ...

    def failsafe(self, leader: str, seconds: float | None) -> OperationResult:
        """``POST /failsafe``: a leader writing without etcd asks this member to promise, for
        ``seconds`` (None: ttl), that it promotes no one and follows no one else. 200 when
        promised; 412 with the reason when this member may not promise."""
        ...


class Inspection(Protocol):
    """The agent's answers about itself that the snapshot does not hold (api/inspection.py)."""

    def events(self) -> dict[str, Any]:
        """``GET /events``: ``{"member", "events": [run, ...]}``, this agent's recent decisions."""
        ...

    def cluster_events(self) -> dict[str, Any]:
        """``GET /cluster/events``: ``{"members": {name: [run, ...]}, "unreachable": {name: why}}``."""
        ...

    def diagnostics(self) -> dict[str, Any]:
        """``GET /diagnostics``: the facts ``pgwarden doctor`` checks on this node."""
        ...


class NoInspection:
    """For an API without an agent behind it (benchmarks, tests of the HTTP layer alone)."""

    def events(self) -> dict[str, Any]:
        return {"member": None, "events": []}

    def cluster_events(self) -> dict[str, Any]:
        return {"members": {}, "unreachable": {}}

    def diagnostics(self) -> dict[str, Any]:
        raise OperationError(503, "this API serves no diagnostics (no agent behind it)")
