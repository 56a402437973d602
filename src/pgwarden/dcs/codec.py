"""JSON encodings of the values kept in etcd, and their decoders: a typed value or `Unreadable`.

A bad value written by hand (``etcdctl put``), by another version or half-way by a bug must never
crash an agent that reads it: every decoder either returns a typed, bounded value or raises
`Unreadable` naming the field and what is wrong, and nothing else (the property tests in
tests/unit/test_codec_properties.py feed them arbitrary JSON and bytes). What an unreadable key
then means is the caller's business (`ClusterStore.decode`: the safe reading of each key).
Missing optional fields take the model's defaults, so fields added later stay readable by older
values; unknown fields are ignored for the same reason. The field readers the decoders share (each
field typed and bounded, or a ValueError naming it) are in dcs/codec_fields.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from pgwarden.config.dynamic import dynamic_config_to_dict, parse_stored_dynamic_config
from pgwarden.config.fields import Name
from pgwarden.dcs.codec_fields import (
    INT32,
    Obj,
    dumps,
    kind_of,
    read_bool,
    read_int,
    read_lsn,
    read_names,
    read_object,
    read_opt_bool,
    read_opt_float,
    read_opt_int,
    read_opt_lsn,
    read_opt_str,
    read_str,
    read_str_map,
    read_value,
)

# Re-exported: callers bound values and catch errors with codec.MAX_VALUE_BYTES, codec.Unreadable.
from pgwarden.dcs.codec_fields import MAX_VALUE_BYTES as MAX_VALUE_BYTES
from pgwarden.dcs.codec_fields import Unreadable as Unreadable
from pgwarden.model.cluster import (
    MAX_PROGRESS,
    MAX_REASON,
    MAX_REASON_CODE,
    PROMOTION,
    DynamicConfig,
    HistoryEntry,
    LeaderStatus,
    Member,
    PgState,
    Role,
    SwitchoverIntent,
    SyncState,
    Tags,
)
from pgwarden.model.lsn import Lsn
from pgwarden.model.parameters import ParameterError

_DEFAULT_TAGS = Tags()
_TIMELINE = (1, 2**32 - 1)  # PostgreSQL's TimeLineID is a uint32
_PORT = (1, 65535)
_MAX_NAME = 256
MAX_SLOTS = 1000  # slots a member record lists: far more than any relay serves
MAX_SLOT_NAME = 63  # PostgreSQL's NAMEDATALEN - 1
_SYSTEM_ID_EPOCH = 946_684_800  # 2000-01-01: no PostgreSQL 15 cluster was initialised before
_MEMBER_NAME = TypeAdapter(Name)  # the node config's rule for member names: one home


# -- Tags and Member -----------------------------------------------------------------------


def tags_to_dict(tags: Tags) -> dict[str, Any]:
    return {
        "nofailover": tags.nofailover,
        "noloadbalance": tags.noloadbalance,
        "nosync": tags.nosync,
        "failover_priority": tags.failover_priority,
        "sync_priority": tags.sync_priority,
        "clonefrom": tags.clonefrom,
        "replicatefrom": tags.replicatefrom,
        "custom": dict(tags.custom),
    }


def tags_from_dict(data: object) -> Tags:
    obj = read_object(data, "tags")
    d = _DEFAULT_TAGS
    return Tags(
        nofailover=read_bool(obj, "nofailover", d.nofailover),
        noloadbalance=read_bool(obj, "noloadbalance", d.noloadbalance),
        nosync=read_bool(obj, "nosync", d.nosync),
        failover_priority=read_int(obj, "failover_priority", d.failover_priority),
        sync_priority=read_int(obj, "sync_priority", d.sync_priority),
        clonefrom=read_bool(obj, "clonefrom", d.clonefrom),
        replicatefrom=read_opt_str(obj, "replicatefrom"),
        custom=read_str_map(obj, "custom"),
    )


def encode_member(member: Member) -> str:
    return dumps(
        {
            "name": member.name,
            "api_url": member.api_url,
            "host": member.host,
            "port": member.port,
            "role": member.role.value,
            "state": member.state.value,
            "timeline": member.timeline,
            "lsn": None if member.lsn is None else str(member.lsn),
            "tags": tags_to_dict(member.tags),
            "pending_restart": member.pending_restart,
            "version": member.version,
            "pending_restart_reason": {
                name: {"old": old, "new": new} for name, (old, new) in member.pending_restart_reason.items()
            },
            "scheduled_restart": member.scheduled_restart,
            "config_errors": [
                {"name": e.name, "value": e.value, "error": e.error} for e in member.config_errors
            ],
            "loop_error": member.loop_error,
            "reason_code": member.reason_code,
            "reason": member.reason,
            "progress": member.progress,
            "receive_lsn": None if member.receive_lsn is None else str(member.receive_lsn),
            "replay_lsn": None if member.replay_lsn is None else str(member.replay_lsn),
            "streaming": member.streaming,
            "slots": None if member.slots is None else sorted(member.slots),
        }
    )


def _pending_reason(data: Obj) -> dict[str, tuple[str, str]]:
    reasons = read_object(data.get("pending_restart_reason", {}), "pending_restart_reason")
    found: dict[str, tuple[str, str]] = {}
    for name, change in reasons.items():
        change = read_object(change, f"pending_restart_reason.{name}")
        found[name] = (read_str(change, "old"), read_str(change, "new"))
    return found


_MAX_CONFIG_ERRORS = 20


def _config_errors(data: Obj) -> tuple[ParameterError, ...]:
    rows = data.get("config_errors", [])
    if not isinstance(rows, list):
        raise ValueError("config_errors must be a list")
    errors = []
    for row in rows[:_MAX_CONFIG_ERRORS]:
        row = read_object(row, "config_errors[]")
        errors.append(
            ParameterError(read_str(row, "name"), read_str(row, "value", ""), read_str(row, "error"))
        )
    return tuple(errors)


def _shown(data: Obj, field: str, limit: int) -> str:
    """A text that is only shown (never acted on): anything but a string reads as none, so an
    older or foreign writer cannot make the whole member unreadable over it."""
    value = data.get(field)
    return value[:limit] if isinstance(value, str) else ""


def _member(data: object) -> Member:
    obj = read_object(data, "member")
    return Member(
        name=read_str(obj, "name"),
        api_url=read_str(obj, "api_url"),
        host=read_str(obj, "host"),
        port=read_int(obj, "port", bounds=_PORT),
        role=Role(read_str(obj, "role", Role.UNINITIALIZED.value)),
        state=PgState(read_str(obj, "state", PgState.UNKNOWN.value)),
        timeline=read_opt_int(obj, "timeline", _TIMELINE),
        lsn=read_opt_lsn(obj, "lsn"),
        tags=tags_from_dict(obj.get("tags", {})),
        pending_restart=read_bool(obj, "pending_restart", False),
        version=read_str(obj, "version", ""),
        pending_restart_reason=_pending_reason(obj),
        scheduled_restart=read_opt_float(obj, "scheduled_restart"),
        config_errors=_config_errors(obj),
        loop_error=read_opt_str(obj, "loop_error"),
        reason_code=_shown(obj, "reason_code", MAX_REASON_CODE),
        reason=_shown(obj, "reason", MAX_REASON),
        progress=_shown(obj, "progress", MAX_PROGRESS),
        receive_lsn=read_opt_lsn(obj, "receive_lsn"),
        replay_lsn=read_opt_lsn(obj, "replay_lsn"),
        streaming=read_opt_bool(obj, "streaming"),
        slots=_slots(obj),
    )


def _slots(data: Obj) -> frozenset[str] | None:
    """A standby's slot names: absent or null is unknown; anything else must be a list of at most
    MAX_SLOTS names of at most 63 characters (PostgreSQL's limit)."""
    value = data.get("slots")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_SLOTS:
        raise ValueError(f"slots must be a list of at most {MAX_SLOTS} slot names")
    if not all(isinstance(n, str) and 0 < len(n) <= MAX_SLOT_NAME for n in value):
        raise ValueError(f"slots must hold slot names of 1 to {MAX_SLOT_NAME} characters")
    return frozenset(value)


def decode_member(text: str) -> Member:
    return read_value(text, _member)


# -- leader status, sync set, history, switchover ------------------------------------------


def encode_status(status: LeaderStatus) -> str:
    return dumps(
        {
            "name": status.name,
            "timeline": status.timeline,
            "lsn": str(status.lsn),
            "slots": {name: str(lsn) for name, lsn in status.slots.items()},
            "members": sorted(status.members),
        }
    )


def _status(data: object) -> LeaderStatus:
    obj = read_object(data, "status")
    slots = {name: Lsn.parse(text) for name, text in read_str_map(obj, "slots").items()}
    return LeaderStatus(
        name=read_str(obj, "name"),
        timeline=read_int(obj, "timeline", bounds=_TIMELINE),
        lsn=read_lsn(obj, "lsn"),
        slots=slots,
        members=read_names(obj, "members"),
    )


def decode_status(text: str) -> LeaderStatus:
    return read_value(text, _status)


def encode_sync(sync: SyncState) -> str:
    return dumps(
        {
            "leader": sync.leader,
            "members": sorted(sync.members),
            "quorum": sync.quorum,
            "degraded_since": sync.degraded_since,
        }
    )


def _sync(data: object) -> SyncState:
    obj = read_object(data, "sync")
    members = obj.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ValueError("members must be a list of names")
    return SyncState(
        leader=read_opt_str(obj, "leader"),
        members=frozenset(members),
        quorum=read_int(obj, "quorum", 0, bounds=(0, INT32[1])),
        degraded_since=read_opt_float(obj, "degraded_since"),
    )


def decode_sync(text: str) -> SyncState:
    return read_value(text, _sync)


def _history_entry_to_dict(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "timeline": entry.timeline,
        "switch_lsn": str(entry.switch_lsn),
        "reason": entry.reason,
        "timestamp": entry.timestamp,
        "new_leader": entry.new_leader,
        "event": entry.event,
    }


def _history_entry(data: object) -> HistoryEntry:
    obj = read_object(data, "history entry")
    return HistoryEntry(
        timeline=read_int(obj, "timeline", bounds=(0, _TIMELINE[1])),  # 0: a sync event before any timeline
        switch_lsn=read_lsn(obj, "switch_lsn"),
        reason=read_str(obj, "reason", ""),
        timestamp=read_str(obj, "timestamp", ""),
        new_leader=read_str(obj, "new_leader", ""),
        event=read_str(obj, "event", PROMOTION),
    )


def encode_history(entries: tuple[HistoryEntry, ...] | list[HistoryEntry], folded: int = 0) -> str:
    """The entries as a JSON list; ``folded`` older entries dropped to bound the key are counted in
    a first element ``{"folded": k}``, which versions without folding skip as a malformed entry."""
    head: list[dict[str, Any]] = [{"folded": folded}] if folded else []
    return dumps(head + [_history_entry_to_dict(e) for e in entries])


def decode_history(text: str) -> tuple[tuple[HistoryEntry, ...], int]:
    """The entries and how many older ones were folded; one malformed entry makes the whole value
    unreadable, because a history with holes could hide the fork point a rejoin needs."""
    return read_value(text, _history)


def _history(data: object) -> tuple[tuple[HistoryEntry, ...], int]:
    if not isinstance(data, list):
        raise ValueError(f"history must be a JSON list, not {kind_of(data)}")
    folded = 0
    items = data
    if items and isinstance(items[0], dict) and "folded" in items[0]:
        folded = read_int(items[0], "folded", bounds=(0, 2**62))
        items = items[1:]
    entries = []
    for number, item in enumerate(items, 1):
        try:
            entries.append(_history_entry(item))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"entry {number}: {exc}") from None
    return tuple(entries), folded


def encode_switchover(intent: SwitchoverIntent) -> str:
    return dumps(
        {
            "leader": intent.leader,
            "candidate": intent.candidate,
            "scheduled_at": intent.scheduled_at,
            "failover": intent.failover,
            "deadline": intent.deadline,
        }
    )


def _switchover(data: object) -> SwitchoverIntent:
    obj = read_object(data, "switchover")
    return SwitchoverIntent(
        leader=read_opt_str(obj, "leader"),
        candidate=read_opt_str(obj, "candidate"),
        scheduled_at=read_opt_float(obj, "scheduled_at"),
        failover=read_bool(obj, "failover", False),
        deadline=read_opt_float(obj, "deadline"),
    )


def decode_switchover(text: str) -> SwitchoverIntent:
    return read_value(text, _switchover)


def encode_switchover_outcome(at: float, outcome: str) -> str:
    return dumps({"at": at, "outcome": outcome})


def decode_switchover_outcome(text: str) -> tuple[float, str]:
    """When (epoch seconds) and why the leader abandoned the last switchover."""

    def outcome(data: object) -> tuple[float, str]:
        obj = read_object(data, "switchover_outcome")
        at = read_opt_float(obj, "at")
        if at is None:
            raise ValueError("at must be a number")
        return at, read_str(obj, "outcome")

    return read_value(text, outcome)


# -- plain-text keys: the leader's name, the system identifier -----------------------------


def decode_leader(text: str) -> str:
    """The member name in the leader key: a name the node config accepts, or `Unreadable`."""
    if not text:
        raise Unreadable("empty")
    if len(text) > _MAX_NAME:
        raise Unreadable(f"{len(text)} characters, longer than any member name")
    try:
        return _MEMBER_NAME.validate_python(text)
    except ValidationError:
        raise Unreadable(f"{text[:40]!r} is not a member name") from None


def decode_initialize(text: str) -> str:
    """The system identifier (decimal digits), or "" while a bootstrap is in progress.

    initdb makes the identifier from the time of day: its upper 32 bits are the Unix time it ran.
    A number whose time falls before 2000 or beyond 2**64 is not one (a truncated or hand-typed
    value would make every member refuse its own data directory as another cluster's)."""
    if not text:
        return text
    if not (text.isascii() and text.isdigit() and len(text) <= 20):
        raise Unreadable(f"{text[:40]!r} is not a PostgreSQL system identifier")
    if not _SYSTEM_ID_EPOCH <= int(text) >> 32 < 2**32:
        raise Unreadable(f"{text!r} is no system identifier initdb makes (the time in it is wrong)")
    return text


# -- failsafe topology --------------------------------------------------------------------


def encode_failsafe(topology: Mapping[str, str]) -> str:
    """Patroni's ``/failsafe`` shape: ``{member name: REST API URL}``."""
    return dumps(dict(topology))


def _failsafe(data: object) -> dict[str, str]:
    obj = read_object(data, "failsafe topology")
    for name, url in obj.items():
        if not name or "/" in name:
            raise ValueError(f"member name {name[:40]!r} in the failsafe topology is not a member name")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"the failsafe topology's URL of {name[:40]} must be an http(s) URL")
    return dict(obj)


def decode_failsafe(text: str) -> dict[str, str]:
    return read_value(text, _failsafe)


# -- dynamic config ------------------------------------------------------------------------


def encode_config(cfg: DynamicConfig) -> str:
    return dumps(dynamic_config_to_dict(cfg))


def decode_config(text: str) -> tuple[DynamicConfig, tuple[str, ...]]:
    """The config, and the keys it holds that this version does not know (ignored: a newer agent
    may have written them). A value the validation refuses is unreadable: the caller keeps the
    last valid config in force rather than falling back to defaults."""
    return read_value(text, parse_stored_dynamic_config)
