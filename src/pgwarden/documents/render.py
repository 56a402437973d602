"""Renders the cluster documents from a ClusterView: members, ``/cluster``, history, intents, config.

Pure: a view in, a JSON-ready value out (the shapes in ``documents/shapes.py``). The REST API,
the CLI (``cli/views.py``) and the web view all call these, so a date, a tag or a lag reads the
same everywhere. Public names, stable for the CLI's output formats (``list -f json|yaml|tsv``):
``iso_time``, ``tags_document``, ``member_role``, ``member_document``, ``cluster_document``,
``intent_document``, ``history_entries`` (Patroni's arrays), ``history_objects`` (named fields),
``config_document`` (Patroni's nested ``postgresql:`` shape), ``pending_reason_document``,
``config_errors_document``, ``untrusted_document``. ``documents/status.py`` renders ``/patroni``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pgwarden.config.dynamic import NESTED_KEYS, dynamic_config_to_dict
from pgwarden.documents.shapes import (
    ClusterDoc,
    ConfigErrorDoc,
    HistoryEntry,
    HistoryObject,
    IntentDoc,
    MemberDoc,
    MemberRole,
    PendingValue,
    ScheduledSwitchoverDoc,
    Tags,
    UntrustedDoc,
)
from pgwarden.model import ClusterView, DynamicConfig, Member, PgState, Role, SwitchoverIntent, SyncMode
from pgwarden.model.cluster import PROMOTION, SyncFallback
from pgwarden.model.cluster import Tags as MemberTags
from pgwarden.model.lsn import Lsn
from pgwarden.model.parameters import ParameterError


def iso_time(epoch: float) -> str:
    """The one date format of every document: ISO 8601, UTC, to the second (``...T10:00:00+00:00``)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _iso(epoch: float | None) -> str | None:
    return iso_time(epoch) if epoch is not None else None


def tags_document(tags: MemberTags) -> Tags:
    """Every member's tags, one way: the four HA tags always, clonefrom and replicatefrom when
    set, then custom tags as written."""
    doc: Tags = {
        "nofailover": tags.nofailover,
        "noloadbalance": tags.noloadbalance,
        "nosync": tags.nosync,
        "failover_priority": tags.failover_priority,
    }
    if tags.sync_priority != MemberTags().sync_priority:
        doc["sync_priority"] = tags.sync_priority
    if tags.clonefrom:
        doc["clonefrom"] = True
    if tags.replicatefrom:
        doc["replicatefrom"] = tags.replicatefrom
    doc.update(tags.custom)
    return doc


def pending_reason_document(pending: Mapping[str, tuple[str, str]]) -> dict[str, PendingValue]:
    """Patroni's ``pending_restart_reason``: each setting's running (old) and configured (new) value."""
    return {name: {"old_value": old, "new_value": new} for name, (old, new) in sorted(pending.items())}


def config_errors_document(errors: tuple[ParameterError, ...]) -> list[ConfigErrorDoc]:
    """Settings PostgreSQL refuses on a member: ``[{"name", "value", "error"}]``, [] when none."""
    return [{"name": e.name, "value": e.value, "error": e.error} for e in errors]


def untrusted_document(view: ClusterView) -> list[UntrustedDoc]:
    """Members whose record in etcd names an address outside member_networks: ignored, and why."""
    return [{"name": name, "reason": why} for name, why in sorted(view.untrusted.items())]


# -- members ------------------------------------------------------------------------------------


def lag_bytes(view: ClusterView, member: Member, lsn: Lsn | None = None) -> int | None:
    """How far standby ``member`` (at ``lsn``, by default its published position) is behind the
    leader, in bytes (``ClusterView.lag``, the one home of that fact); None for the leader, as
    Patroni's /cluster shows it, and whenever the lag is unknown."""
    if member.role is not Role.REPLICA or (view.leader is not None and member.name == view.leader.name):
        return None
    return view.lag(member.name, member.lsn if lsn is None else lsn, member.timeline)


def member_state(view: ClusterView, member: Member) -> str:
    """Patroni's state in ``/cluster``: a running standby is ``streaming`` or ``in archive
    recovery``; ``running`` when its agent does not say (older than the field)."""
    standby = member.role is Role.REPLICA and (view.leader is None or member.name != view.leader.name)
    if standby and member.state is PgState.RUNNING and member.streaming is not None:
        return "streaming" if member.streaming else "in archive recovery"
    return member.state.value


def member_role(view: ClusterView, member: Member) -> MemberRole:
    """Patroni's role in ``/cluster``: leader, standby_leader, sync_standby, quorum_standby, replica."""
    if view.leader is not None and member.name == view.leader.name:
        return "standby_leader" if member.role is Role.REPLICA else "leader"
    if member.role is Role.UNINITIALIZED:
        return "uninitialized"
    if view.in_sync_set(member.name):
        return "quorum_standby" if view.config.synchronous_mode is SyncMode.QUORUM else "sync_standby"
    return "replica"


def member_document(view: ClusterView, member: Member) -> MemberDoc:
    lag = lag_bytes(view, member)
    lsn = str(member.lsn) if member.lsn is not None else None
    doc: MemberDoc = {
        "name": member.name,
        "role": member_role(view, member),
        "state": member_state(view, member),
        "api_url": member.api_url,
        "host": member.host,
        "port": member.port,
        "timeline": member.timeline,
        "tags": tags_document(member.tags),
        "lsn": lsn,
        "lag": lag,
        "pending_restart": member.pending_restart,
    }
    if member.role is Role.REPLICA:
        # Agents older than these fields publish one position (the furthest): both show it then.
        received = member.receive_lsn or member.lsn
        replayed = member.replay_lsn or member.lsn
        doc["receive_lsn"] = str(received) if received is not None else None
        doc["replay_lsn"] = str(replayed) if replayed is not None else None
        doc["receive_lag"] = lag_bytes(view, member, received)
        doc["replay_lag"] = lag_bytes(view, member, replayed)
    if member.pending_restart_reason:
        doc["pending_restart_reason"] = pending_reason_document(member.pending_restart_reason)
    if member.config_errors:
        doc["config_errors"] = config_errors_document(member.config_errors)
    if member.scheduled_restart is not None:
        doc["scheduled_restart"] = {"schedule": iso_time(member.scheduled_restart)}
    # pgwarden's addition: the member's last decision, and a running clone's or rewind's progress.
    doc["reason"] = member.reason or None
    doc["reason_code"] = member.reason_code or None
    if member.progress:
        doc["progress"] = member.progress
    return doc


def intent_document(intent: SwitchoverIntent) -> IntentDoc:
    return {
        "leader": intent.leader,
        "candidate": intent.candidate,
        "scheduled_at": _iso(intent.scheduled_at),
        "failover": intent.failover,
        "deadline": _iso(intent.deadline),
    }


def scheduled_switchover_document(intent: SwitchoverIntent) -> ScheduledSwitchoverDoc | None:
    """Patroni's ``scheduled_switchover {at, from, to}``: only for a switchover waiting for its time."""
    if intent.scheduled_at is None:
        return None
    doc: ScheduledSwitchoverDoc = {"at": iso_time(intent.scheduled_at)}
    if intent.leader is not None:
        doc["from"] = intent.leader
    if intent.candidate is not None:
        doc["to"] = intent.candidate
    return doc


def cluster_document(view: ClusterView) -> ClusterDoc:
    """``GET /cluster``."""
    doc: ClusterDoc = {
        "scope": view.name,
        "members": [member_document(view, m) for m in view.members],
        "pause": view.config.pause,
        "cluster": view.name,
        "leader": view.leader.name if view.leader and view.leader.readable else None,
        "untrusted_members": untrusted_document(view),
    }
    if view.switchover is not None:
        doc["switchover"] = intent_document(view.switchover)
        scheduled = scheduled_switchover_document(view.switchover)
        if scheduled is not None:
            doc["scheduled_switchover"] = scheduled
    if view.sync is not None:
        doc["synchronous"] = sorted(view.sync.members)
    return doc


# -- history ------------------------------------------------------------------------------------


def history_entries(view: ClusterView) -> list[HistoryEntry]:
    """``GET /history``: Patroni's arrays, with pgwarden's event as a sixth element.

    Patroni's first element is the timeline that *ended* at the LSN (PostgreSQL's timeline history
    file: parent timeline, switch point); pgwarden records the timeline a promotion began, so a
    promotion shows one less. Other events (sync degraded, failsafe) end no timeline: they show the
    one they happened on."""
    return [
        (
            h.timeline - 1 if h.event == PROMOTION and h.timeline > 1 else h.timeline,
            h.switch_lsn.value,
            h.reason,
            h.timestamp,
            h.new_leader,
            h.event,
        )
        for h in view.history
    ]


def history_objects(view: ClusterView) -> list[HistoryObject]:
    """The history with named fields (``pgwarden history -f json``, the web view); ``timeline`` is
    the one a promotion began (``history_entries`` shows Patroni's: the one it ended)."""
    return [
        {
            "timeline": h.timeline,
            "lsn": str(h.switch_lsn),
            "reason": h.reason,
            "timestamp": h.timestamp,
            "new_leader": h.new_leader,
            "event": h.event,
        }
        for h in view.history
    ]


# -- dynamic config -----------------------------------------------------------------------------


def config_document(cfg: DynamicConfig) -> dict[str, Any]:
    """``GET /config`` the Patroni way: ``postgresql: {parameters, use_pg_rewind, use_slots, ...}``
    nested, ``synchronous_mode`` true/false (or "quorum"), ``synchronous_mode_strict`` beside
    pgwarden's ``synchronous_fallback``. PUT takes it back unchanged (config/dynamic.py)."""
    # Whole seconds as integers, as Patroni writes them (pgwarden keeps fractions: loop_wait 0.5).
    flat = {
        k: int(v) if isinstance(v, float) and v.is_integer() else v
        for k, v in dynamic_config_to_dict(cfg).items()
    }
    nested = {key: flat.pop(key) for key in NESTED_KEYS if key in flat}
    nested["use_slots"] = True  # pgwarden always keeps a slot per member
    mode = cfg.synchronous_mode
    flat["synchronous_mode"] = mode.value if mode is SyncMode.QUORUM else mode is SyncMode.ON
    flat["synchronous_mode_strict"] = (
        mode is not SyncMode.OFF and cfg.synchronous_fallback is SyncFallback.BLOCK
    )
    return {**flat, "postgresql": nested}
