"""JSON encodings of the values kept in etcd; decoders turn a malformed value into None, with a warning.

A bad value written by hand (``etcdctl put``), by an older version or half-way by a bug must
never crash an agent that reads it: the reader logs what it skipped and carries on with the
rest of the cluster view. Missing optional fields take the model's defaults, so fields added
later stay readable by older values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pgwarden.config.dynamic import dynamic_config_to_dict, parse_dynamic_config
from pgwarden.config.errors import ConfigError
from pgwarden.model.cluster import (
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

log = logging.getLogger(__name__)

T = TypeVar("T")
Obj = Mapping[str, Any]

_DEFAULT_TAGS = Tags()


def _dumps(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


# -- field readers: each raises ValueError naming the field when the type is wrong ------------


def _object(data: object, what: str) -> Obj:
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object")
    return data


def _str(data: Obj, field: str, default: str | None = None) -> str:
    value = data.get(field, default)
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string")
    return value


def _opt_str(data: Obj, field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{field} must be a string or null")
    return value


def _int(data: Obj, field: str, default: int | None = None) -> int:
    value: object = data.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an integer")
    return value


def _opt_int(data: Obj, field: str) -> int | None:
    return None if data.get(field) is None else _int(data, field)


def _opt_float(data: Obj, field: str) -> float | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number or null")
    return float(value)


def _bool(data: Obj, field: str, default: bool) -> bool:
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be true or false")
    return value


def _lsn(data: Obj, field: str) -> Lsn:
    return Lsn.parse(_str(data, field))


def _opt_lsn(data: Obj, field: str) -> Lsn | None:
    text = _opt_str(data, field)
    return None if text is None else Lsn.parse(text)


def _str_map(data: Obj, field: str) -> dict[str, str]:
    value = _object(data.get(field, {}), field)
    if not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{field} values must be strings")
    return dict(value)


def _names(data: Obj, field: str) -> frozenset[str]:
    """An optional list of member names (absent: none)."""
    value = data.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field} must be a list of names")
    return frozenset(value)


def _convert(data: object, key: str, parse: Callable[[Any], T]) -> T | None:
    try:
        return parse(data)
    except (ValueError, TypeError, KeyError, ConfigError) as exc:
        log.warning("ignoring malformed value of %s in etcd: %s (value: %.200r)", key, exc, data)
        return None


def _decode(text: str, key: str, parse: Callable[[Any], T]) -> T | None:
    try:
        data = json.loads(text)
    except ValueError as exc:
        log.warning("ignoring value of %s in etcd, not JSON: %s (value: %.200r)", key, exc, text)
        return None
    return _convert(data, key, parse)


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
    obj = _object(data, "tags")
    d = _DEFAULT_TAGS
    return Tags(
        nofailover=_bool(obj, "nofailover", d.nofailover),
        noloadbalance=_bool(obj, "noloadbalance", d.noloadbalance),
        nosync=_bool(obj, "nosync", d.nosync),
        failover_priority=_int(obj, "failover_priority", d.failover_priority),
        sync_priority=_int(obj, "sync_priority", d.sync_priority),
        clonefrom=_bool(obj, "clonefrom", d.clonefrom),
        replicatefrom=_opt_str(obj, "replicatefrom"),
        custom=_str_map(obj, "custom"),
    )


def encode_member(member: Member) -> str:
    return _dumps(
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
        }
    )


def _pending_reason(data: Obj) -> dict[str, tuple[str, str]]:
    reasons = _object(data.get("pending_restart_reason", {}), "pending_restart_reason")
    found: dict[str, tuple[str, str]] = {}
    for name, change in reasons.items():
        change = _object(change, f"pending_restart_reason.{name}")
        found[name] = (_str(change, "old"), _str(change, "new"))
    return found


_MAX_CONFIG_ERRORS = 20


def _config_errors(data: Obj) -> tuple[ParameterError, ...]:
    rows = data.get("config_errors", [])
    if not isinstance(rows, list):
        raise ValueError("config_errors must be a list")
    errors = []
    for row in rows[:_MAX_CONFIG_ERRORS]:
        row = _object(row, "config_errors[]")
        errors.append(ParameterError(_str(row, "name"), _str(row, "value", ""), _str(row, "error")))
    return tuple(errors)


def _member(data: object) -> Member:
    obj = _object(data, "member")
    return Member(
        name=_str(obj, "name"),
        api_url=_str(obj, "api_url"),
        host=_str(obj, "host"),
        port=_int(obj, "port"),
        role=Role(_str(obj, "role", Role.UNINITIALIZED.value)),
        state=PgState(_str(obj, "state", PgState.UNKNOWN.value)),
        timeline=_opt_int(obj, "timeline"),
        lsn=_opt_lsn(obj, "lsn"),
        tags=tags_from_dict(obj.get("tags", {})),
        pending_restart=_bool(obj, "pending_restart", False),
        version=_str(obj, "version", ""),
        pending_restart_reason=_pending_reason(obj),
        scheduled_restart=_opt_float(obj, "scheduled_restart"),
        config_errors=_config_errors(obj),
    )


def decode_member(text: str, key: str) -> Member | None:
    return _decode(text, key, _member)


# -- leader status, sync set, history, switchover ------------------------------------------


def encode_status(status: LeaderStatus) -> str:
    return _dumps(
        {
            "name": status.name,
            "timeline": status.timeline,
            "lsn": str(status.lsn),
            "slots": {name: str(lsn) for name, lsn in status.slots.items()},
            "members": sorted(status.members),
        }
    )


def _status(data: object) -> LeaderStatus:
    obj = _object(data, "status")
    slots = {name: Lsn.parse(text) for name, text in _str_map(obj, "slots").items()}
    return LeaderStatus(
        name=_str(obj, "name"),
        timeline=_int(obj, "timeline"),
        lsn=_lsn(obj, "lsn"),
        slots=slots,
        members=_names(obj, "members"),
    )


def decode_status(text: str, key: str) -> LeaderStatus | None:
    return _decode(text, key, _status)


def encode_sync(sync: SyncState) -> str:
    return _dumps(
        {
            "leader": sync.leader,
            "members": sorted(sync.members),
            "quorum": sync.quorum,
            "degraded_since": sync.degraded_since,
        }
    )


def _sync(data: object) -> SyncState:
    obj = _object(data, "sync")
    members = obj.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ValueError("members must be a list of names")
    return SyncState(
        leader=_opt_str(obj, "leader"),
        members=frozenset(members),
        quorum=_int(obj, "quorum", 0),
        degraded_since=_opt_float(obj, "degraded_since"),
    )


def decode_sync(text: str, key: str) -> SyncState | None:
    return _decode(text, key, _sync)


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
    obj = _object(data, "history entry")
    return HistoryEntry(
        timeline=_int(obj, "timeline"),
        switch_lsn=_lsn(obj, "switch_lsn"),
        reason=_str(obj, "reason", ""),
        timestamp=_str(obj, "timestamp", ""),
        new_leader=_str(obj, "new_leader", ""),
        event=_str(obj, "event", PROMOTION),
    )


def encode_history(entries: tuple[HistoryEntry, ...] | list[HistoryEntry]) -> str:
    return _dumps([_history_entry_to_dict(e) for e in entries])


def decode_history(text: str, key: str) -> tuple[HistoryEntry, ...]:
    """Every well-formed entry; a malformed entry is skipped, not the whole history."""
    items = _decode(text, key, _list)
    if items is None:
        return ()
    good = [e for e in (_convert(item, key, _history_entry) for item in items) if e is not None]
    return tuple(good)


def _list(data: object) -> list[Any]:
    if not isinstance(data, list):
        raise ValueError("history must be a JSON list")
    return data


def encode_switchover(intent: SwitchoverIntent) -> str:
    return _dumps(
        {
            "leader": intent.leader,
            "candidate": intent.candidate,
            "scheduled_at": intent.scheduled_at,
            "failover": intent.failover,
            "deadline": intent.deadline,
        }
    )


def _switchover(data: object) -> SwitchoverIntent:
    obj = _object(data, "switchover")
    return SwitchoverIntent(
        leader=_opt_str(obj, "leader"),
        candidate=_opt_str(obj, "candidate"),
        scheduled_at=_opt_float(obj, "scheduled_at"),
        failover=_bool(obj, "failover", False),
        deadline=_opt_float(obj, "deadline"),
    )


def decode_switchover(text: str, key: str) -> SwitchoverIntent | None:
    return _decode(text, key, _switchover)


# -- failsafe topology --------------------------------------------------------------------


def encode_failsafe(topology: Mapping[str, str]) -> str:
    """Patroni's ``/failsafe`` shape: ``{member name: REST API URL}``."""
    return _dumps(dict(topology))


def _failsafe(data: object) -> dict[str, str]:
    obj = _object(data, "failsafe topology")
    for name, url in obj.items():
        if not name or "/" in name:
            raise ValueError(f"member name {name!r} in the failsafe topology is not a member name")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"the failsafe topology's URL of {name} must be an http(s) URL, got {url!r}")
    return dict(obj)


def decode_failsafe(text: str, key: str) -> dict[str, str] | None:
    return _decode(text, key, _failsafe)


# -- dynamic config ------------------------------------------------------------------------


def encode_config(cfg: DynamicConfig) -> str:
    return _dumps(dynamic_config_to_dict(cfg))


def decode_config(text: str, key: str) -> DynamicConfig | None:
    """The config, or None (the caller falls back to defaults) when the stored one is invalid."""
    return _decode(text, key, lambda data: parse_dynamic_config(data, f"etcd key {key}"))
