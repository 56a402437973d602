"""Renders ``GET /patroni`` (and every health endpoint's body) from an agent snapshot.

Patroni's fields first (``patroni {version, scope, name}``, ``server_version``, ``xlog``,
``replication``, ``dcs_last_seen`` ...), then pgwarden's (the decision's reason, the synchronous
claim, failsafe state, errors survived). Peers read this document during an election
(``agent/peer_answer.py``): ``role``, ``state``, ``timeline``, ``xlog``, ``tags`` and
``reason_code`` keep their meaning.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from pgwarden import __version__
from pgwarden.agent.guard import LOOP
from pgwarden.documents.render import (
    config_errors_document,
    iso_time,
    pending_reason_document,
    tags_document,
    untrusted_document,
)
from pgwarden.documents.shapes import FailsafeDoc, ReplicationRow, StatusDoc, SynchronousDoc, Xlog
from pgwarden.ha.rules.failsafe import known_topology
from pgwarden.model import Role, SyncMode
from pgwarden.model.deadline import holds

if TYPE_CHECKING:
    from pgwarden.agent.snapshot import Snapshot


def status_document(snap: Snapshot, now: float | None = None, epoch: float | None = None) -> StatusDoc:
    """``now``: the monotonic clock the snapshot's deadlines are on (simulations pass theirs);
    ``epoch``: the wall clock at the same moment."""
    now = time.monotonic() if now is None else now
    epoch = time.time() if epoch is None else epoch
    local, member, view = snap.local, snap.member, snap.view
    role = member.role.value
    if snap.holds_leader_key and local.is_standby:
        role = Role.STANDBY_LEADER.value
    doc: StatusDoc = {
        "state": member.state.value,
        "role": role,
        "timeline": member.timeline,
        "patroni": {"version": __version__, "scope": snap.config.cluster, "name": snap.config.name},
        "database_system_identifier": local.system_id,
        "dcs_last_seen": int(snap.store_seen_at) if snap.store_seen_at is not None else None,
        "pending_restart": local.pending_restart,
        "pause": view.config.pause,
        "tags": tags_document(member.tags),
        "name": snap.config.name,
        "cluster": snap.config.cluster,
        "synchronous_mode": view.config.synchronous_mode.value,
        "reason": snap.decision.message if snap.decision else "starting",
        "reason_code": snap.decision.reason.name if snap.decision else None,
        "leader": view.leader.name if view.leader and view.leader.readable else None,
        "dcs_last_seen_ok": snap.store_ok,
        "loop_errors": snap.errors.get(LOOP, 0),
        "config_errors": config_errors_document(local.config_errors),
        "untrusted_members": untrusted_document(view),
    }
    if local.server_version is not None:
        doc["server_version"] = local.server_version
    if view.leader is None and snap.store_ok:
        doc["cluster_unlocked"] = True
    if view.config.failsafe_mode:
        doc["failsafe_mode_is_active"] = snap.failsafe_active(now)
        doc["failsafe"] = failsafe_document(snap, now)
    threads = {name: n for name, n in sorted(snap.errors.items()) if name != LOOP}
    if threads:
        doc["thread_errors"] = threads
    if view.unreadable:
        doc["unreadable_keys"] = dict(sorted(view.unreadable.items()))
    if view.config_ignored:
        doc["config_ignored_keys"] = list(view.config_ignored)
    if local.pending_params:
        doc["pending_restart_reason"] = pending_reason_document(local.pending_params)
    if local.started_at is not None:
        doc["postmaster_start_time"] = iso_time(local.started_at)
    if member.scheduled_restart is not None:
        doc["scheduled_restart"] = {"schedule": iso_time(member.scheduled_restart)}
    _synchronous(snap, doc)
    if local.is_primary and local.write_lsn is not None:
        doc["xlog"] = {"location": local.write_lsn.value}
        doc["replication"] = replication_rows(snap)
    elif local.is_standby:
        xlog: Xlog = {
            "received_location": local.received_lsn.value if local.received_lsn is not None else None,
            "replayed_location": local.replayed_lsn.value if local.replayed_lsn is not None else None,
            "replayed_timestamp": iso_time(local.replayed_at) if local.replayed_at is not None else None,
            "paused": local.replay_paused,
        }
        doc["xlog"] = xlog
        doc["replication_state"] = "streaming" if local.streaming_from else "in archive recovery"
        doc["upstream"] = local.configured_upstream
    return doc


def _synchronous(snap: Snapshot, doc: StatusDoc) -> None:
    """``sync_standby``/``quorum_standby`` as Patroni shows them, and the leader's claim."""
    view, claim = snap.view, snap.view.sync
    mode = view.config.synchronous_mode
    if mode is SyncMode.OFF or claim is None:
        return
    mine = view.in_sync_set(snap.config.name)
    if mode is SyncMode.QUORUM:
        doc["quorum_standby"] = mine
    doc["sync_standby"] = mine
    if snap.holds_leader_key:
        synchronous: SynchronousDoc = {
            "members": sorted(claim.members),
            "quorum": claim.quorum,
            "degraded_since": iso_time(claim.degraded_since) if claim.degraded_since else None,
            "synchronous_standby_names": snap.local.sync_standby_names,
        }
        doc["synchronous"] = synchronous


def replication_rows(snap: Snapshot) -> list[ReplicationRow]:
    """Patroni's ``replication``: each standby streaming from this primary (pg_stat_replication's
    streaming rows, as the probe read them), its address from its member record."""
    view = snap.view
    mode = view.config.synchronous_mode
    kind: Literal["quorum", "sync"] = "quorum" if mode is SyncMode.QUORUM else "sync"
    rows: list[ReplicationRow] = []
    for name in sorted(snap.local.replication):
        member = view.member(name)
        sync = view.in_sync_set(name)
        rows.append(
            {
                "usename": snap.config.postgresql.replication.username,
                "application_name": name,
                "client_addr": member.host if member is not None else "",
                "state": "streaming",
                "sync_state": kind if sync else "async",
                "sync_priority": (member.tags.sync_priority if member is not None else 1) if sync else 0,
            }
        )
    return rows


def failsafe_document(snap: Snapshot, now: float) -> FailsafeDoc:
    """Where failsafe mode stands on this node: the topology's size, the leader's confirmed
    seconds, or the promise this member gave (pgwarden's addition to Patroni's flag)."""
    doc: FailsafeDoc = {"topology": sorted(known_topology(snap.view) or {})}
    deadline = snap.failsafe_deadline
    if deadline is not None and holds(deadline, now):
        doc["confirmed_for_s"] = round(deadline - now, 3)
    promise = snap.promise
    if promise is not None and holds(promise.until, now):
        doc["promised_to"] = promise.leader
        doc["promise_for_s"] = round(promise.until - now, 3)
    return doc
