"""The latest observation and decision, shared with the REST API so health checks never wait on the loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pgwarden.agent.guard import LOOP
from pgwarden.ha.decision import Decision
from pgwarden.ha.observation import Promise
from pgwarden.ha.rules.failsafe import known_topology
from pgwarden.model import ClusterView, LocalState, Lsn, Member, NodeConfig, Role, SyncMode, Tags
from pgwarden.model.deadline import holds
from pgwarden.model.parameters import ParameterError


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


def status_document(snap: Snapshot, now: float | None = None) -> dict[str, Any]:
    """``GET /patroni``: this node as Patroni reports it, plus the decision's reason.

    ``now``: the monotonic clock the snapshot's deadlines are on (simulations pass theirs)."""
    now = time.monotonic() if now is None else now
    local, member = snap.local, snap.member
    role = member.role.value
    if snap.holds_leader_key and local.is_standby:
        role = Role.STANDBY_LEADER.value
    doc: dict[str, Any] = {
        "name": snap.config.name,
        "cluster": snap.config.cluster,
        "role": role,
        "state": member.state.value,
        "timeline": member.timeline,
        "pending_restart": local.pending_restart,
        "tags": tags_document(member.tags),
        "pause": snap.view.config.pause,
        "synchronous_mode": snap.view.config.synchronous_mode.value,
        "database_system_identifier": local.system_id,
        "reason": snap.decision.message if snap.decision else "starting",
        "reason_code": snap.decision.reason.name if snap.decision else None,
        "leader": snap.view.leader.name if snap.view.leader and snap.view.leader.readable else None,
        "dcs_last_seen_ok": snap.store_ok,
        "loop_errors": snap.errors.get(LOOP, 0),
    }
    if snap.view.config.failsafe_mode:
        doc["failsafe_mode_is_active"] = snap.failsafe_active(now)
        doc["failsafe"] = failsafe_document(snap, now)
    threads = {name: n for name, n in sorted(snap.errors.items()) if name != LOOP}
    if threads:
        doc["thread_errors"] = threads
    if snap.view.unreadable:
        doc["unreadable_keys"] = dict(sorted(snap.view.unreadable.items()))
    if snap.view.config_ignored:
        doc["config_ignored_keys"] = list(snap.view.config_ignored)
    if local.pending_params:
        doc["pending_restart_reason"] = pending_reason_document(local.pending_params)
    doc["config_errors"] = config_errors_document(local.config_errors)
    doc["untrusted_members"] = untrusted_document(snap.view)
    if local.started_at is not None:
        doc["postmaster_start_time"] = iso_time(local.started_at)
    if member.scheduled_restart is not None:
        doc["scheduled_restart"] = {"schedule": iso_time(member.scheduled_restart)}
    claim = snap.view.sync
    if snap.view.config.synchronous_mode is not SyncMode.OFF and claim is not None:
        doc["sync_standby"] = snap.view.in_sync_set(snap.config.name)
        if snap.holds_leader_key:
            doc["synchronous"] = {
                "members": sorted(claim.members),
                "quorum": claim.quorum,
                "degraded_since": iso_time(claim.degraded_since) if claim.degraded_since else None,
                "synchronous_standby_names": local.sync_standby_names,
            }
    if local.is_primary and local.write_lsn is not None:
        doc["xlog"] = {"location": local.write_lsn.value}
    elif local.is_standby:
        doc["xlog"] = {
            "received_location": _int(local.received_lsn),
            "replayed_location": _int(local.replayed_lsn),
            "paused": local.replay_paused,
        }
        doc["replication_state"] = "streaming" if local.streaming_from else "in archive recovery"
        doc["upstream"] = local.configured_upstream
    return doc


def untrusted_document(view: ClusterView) -> list[dict[str, str]]:
    """Members whose record in etcd names an address outside member_networks: ignored, and why."""
    return [{"name": name, "reason": why} for name, why in sorted(view.untrusted.items())]


def failsafe_document(snap: Snapshot, now: float) -> dict[str, Any]:
    """Where failsafe mode stands on this node: the topology's size, the leader's confirmed
    seconds, or the promise this member gave (pgwarden's addition to Patroni's flag)."""
    doc: dict[str, Any] = {"topology": sorted(known_topology(snap.view) or {})}
    deadline = snap.failsafe_deadline
    if deadline is not None and holds(deadline, now):
        doc["confirmed_for_s"] = round(deadline - now, 3)
    promise = snap.promise
    if promise is not None and holds(promise.until, now):
        doc["promised_to"] = promise.leader
        doc["promise_for_s"] = round(promise.until - now, 3)
    return doc


def pending_reason_document(pending: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
    """Patroni's ``pending_restart_reason``: each setting's running (old) and configured (new) value."""
    return {name: {"old_value": old, "new_value": new} for name, (old, new) in sorted(pending.items())}


def config_errors_document(errors: tuple[ParameterError, ...]) -> list[dict[str, str]]:
    """Settings PostgreSQL refuses on this node: ``[{"name", "value", "error"}]``, [] when none."""
    return [{"name": e.name, "value": e.value, "error": e.error} for e in errors]


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def tags_document(tags: Tags) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "nofailover": tags.nofailover,
        "noloadbalance": tags.noloadbalance,
        "nosync": tags.nosync,
        "failover_priority": tags.failover_priority,
    }
    if tags.clonefrom:
        doc["clonefrom"] = True
    if tags.replicatefrom:
        doc["replicatefrom"] = tags.replicatefrom
    doc.update(tags.custom)
    return doc


def _int(lsn: Lsn | None) -> int | None:
    return lsn.value if lsn is not None else None
