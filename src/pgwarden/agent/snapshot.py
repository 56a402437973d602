"""The latest observation and decision, shared with the REST API so health checks never wait on the loop.

The documents rendered from it (``GET /patroni``) are ``pgwarden.documents.status``'s."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Promise
from pgwarden.model import ClusterView, LocalState, Member, NodeConfig
from pgwarden.model.deadline import holds


@dataclass(frozen=True, slots=True)
class Snapshot:
    config: NodeConfig
    view: ClusterView
    local: LocalState
    member: Member
    decision: Decision | None = None
    store_ok: bool = False
    loop_at: float = 0.0  # monotonic time the last cycle finished
    loop_seconds: float = 0.0  # how long the last cycle took (observe + decide + act)
    # Monotonic: until when this node may act as leader (its lease, or its members' promises):
    # LeaderLease.deadline(), the one write deadline.
    lease_deadline: float | None = None
    failsafe_deadline: float | None = None  # monotonic: until when the members' promises hold
    promise: Promise | None = None  # the promise this member gave a failsafe leader
    # Internal errors survived since start: the HA loop's cycles ("loop") and each thread's.
    errors: Mapping[str, int] = field(default_factory=dict)
    # Epoch seconds of the last cycle that read etcd (kept through cycles that could not):
    # Patroni's dcs_last_seen.
    store_seen_at: float | None = None

    @property
    def holds_leader_key(self) -> bool:
        return self.view.leader is not None and self.view.leader.name == self.config.name

    def leads_at(self, now: float) -> bool:
        """Holds the key *and* its lease is certainly still ours: what ``/primary`` must mean, even
        when this snapshot is old (a frozen agent, a loop stuck in etcd requests)."""
        return self.holds_leader_key and holds(self.lease_deadline, now)

    def failsafe_active(self, now: float) -> bool:
        """Patroni's ``failsafe_mode_is_active``: this leader writes on its members' promises,
        or this member holds a promise to a leader that does."""
        if not self.view.config.failsafe_mode:
            return False
        promised = self.promise is not None and holds(self.promise.until, now)
        return holds(self.failsafe_deadline, now) or promised


class SnapshotHolder:
    def __init__(self, initial: Snapshot) -> None:
        self._lock = threading.Lock()
        self._snapshot = initial

    def get(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def set(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot
