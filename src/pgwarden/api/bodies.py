"""Parses the JSON bodies of the REST API's write calls into typed requests, naming any faulty field."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from pgwarden.api.contract import DEFAULT_OPERATION_TIMEOUT, IfMatch
from pgwarden.model import ReinitializeOptions, RestartConditions, Role

MAX_TIMEOUT = 600.0  # seconds; a request thread may wait this long for an operation to finish


class BodyError(ValueError):
    """A malformed body (HTTP 400); the message is one sentence naming the field."""


@dataclass(frozen=True, slots=True)
class SwitchoverRequest:
    leader: str | None
    candidate: str | None
    scheduled_at: datetime | None
    timeout: float


@dataclass(frozen=True, slots=True)
class RestartRequest:
    timeout: float
    schedule: datetime | None  # None: restart now
    conditions: RestartConditions = field(default_factory=RestartConditions)


@dataclass(frozen=True, slots=True)
class FailoverRequest:
    candidate: str
    timeout: float
    leader: str | None = None  # Patroni: a failover naming the leader is a switchover from it


@dataclass(frozen=True, slots=True)
class ReinitializeRequest:
    timeout: float
    options: ReinitializeOptions = field(default_factory=ReinitializeOptions)


@dataclass(frozen=True, slots=True)
class FailsafeRequest:
    leader: str  # who asks: the leader writing without etcd
    seconds: float | None  # how long to promise; None: the cluster's ttl


MAX_PROMISE = 600.0  # seconds; a promise is asked for ttl, and ttl is rarely above a minute


def _reject(message: str) -> NoReturn:
    raise BodyError(message)


def _no_constant(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity, which are not JSON and no setting can mean.
    _reject(f"the body is not valid JSON: {name} is not a JSON value")


def json_object(raw: bytes, *, empty_ok: bool) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}`` when ``empty_ok``."""
    if not raw.strip():
        if empty_ok:
            return {}
        _reject("the body is empty; send a JSON object")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        _reject("the body is not UTF-8 text; send a JSON object")
    except RecursionError:
        _reject("the body is not valid JSON: nested too deeply")
    except BodyError:
        raise
    except ValueError as exc:
        _reject(f"the body is not valid JSON: {exc}")
    if not isinstance(value, dict):
        _reject(f"the body must be a JSON object, got {_json_type(value)}")
    return value


def _only(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        expected = ", ".join(allowed) if allowed else "no fields"
        _reject(f"unknown field {unknown[0]!r} in the body (expected {expected})")


def _name(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        _reject(f"field {field!r} must be a member name (a non-empty string), got {_shown(value)}")
    return value


# Patroni takes a timeout as a number of seconds or a string with a unit ("30", "30s", "2min"),
# which is what patronictl's --timeout sends.
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h|d)?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def _timeout(body: Mapping[str, Any]) -> float:
    value = body.get("timeout")
    if value is None:
        return DEFAULT_OPERATION_TIMEOUT
    if isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2] or "s"]
    elif isinstance(value, bool) or not isinstance(value, int | float):
        _reject(
            f"field 'timeout' must be a number of seconds (or a string such as \"30s\"), got {_shown(value)}"
        )
    else:
        seconds = float(value)
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT):
        _reject(
            f"field 'timeout' must be more than 0 and at most {MAX_TIMEOUT:g} seconds, got {_shown(value)}"
        )
    return seconds


def _scheduled_at(body: Mapping[str, Any], field: str = "scheduled_at") -> datetime | None:
    value = body.get(field)
    if value is None:
        return None
    example = "e.g. 2030-01-31T02:00:00+00:00"
    if not isinstance(value, str):
        _reject(f"field '{field}' must be an ISO-8601 time string ({example}), got {_shown(value)}")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        _reject(f"field '{field}' is not an ISO-8601 time ({example}): {_shown(value)}")
    if when.tzinfo is None or when.utcoffset() is None:
        _reject(f"field '{field}' must include a time zone ({example}): {_shown(value)}")
    return when


def switchover_request(raw: bytes) -> SwitchoverRequest:
    body = json_object(raw, empty_ok=True)
    _only(body, ("leader", "candidate", "scheduled_at", "timeout"))
    leader, candidate = _name(body, "leader"), _name(body, "candidate")
    if leader is None and candidate is None:
        _reject("a switchover needs field 'leader' (the current primary) or 'candidate', or both")
    return SwitchoverRequest(leader, candidate, _scheduled_at(body), _timeout(body))


def failover_request(raw: bytes) -> FailoverRequest:
    """``POST /failover``: ``candidate`` (Patroni also reads ``member``), and optionally the
    ``leader``: then, as in Patroni, it is a switchover from that leader."""
    body = json_object(raw, empty_ok=True)
    _only(body, ("candidate", "member", "leader", "timeout", "scheduled_at"))
    if body.get("scheduled_at") is not None:
        _reject(
            "field 'scheduled_at': a failover can't be scheduled; schedule a switchover (POST /switchover)"
        )
    candidate = _name(body, "candidate") or _name(body, "member")
    if candidate is None:
        _reject("a failover needs field 'candidate': the member to promote")
    leader = _name(body, "leader")
    if leader == candidate:
        same = f"fields 'leader' and 'candidate' are both {candidate!r}"
        _reject(f"{same}: switchover target and source are the same; name another candidate")
    return FailoverRequest(candidate, _timeout(body), leader)


# Patroni's role names for a restart filter, and the older or patronictl spellings it meets.
_RESTART_ROLES = {
    "primary": Role.PRIMARY,
    "master": Role.PRIMARY,
    "standby_leader": Role.STANDBY_LEADER,
    "standby-leader": Role.STANDBY_LEADER,
    "replica": Role.REPLICA,
}


def restart_request(raw: bytes) -> RestartRequest:
    """``POST /restart``: Patroni's body: ``schedule`` (ISO-8601 with a time zone), ``timeout``,
    and the conditions ``restart_pending``, ``role``, ``postgres_version``."""
    body = json_object(raw, empty_ok=True)
    _only(body, ("timeout", "schedule", "restart_pending", "role", "postgres_version"))
    conditions = RestartConditions(
        role=_restart_role(body.get("role")),
        below_version=postgres_version(body.get("postgres_version")),
        only_if_pending=_flag(body, "restart_pending"),
    )
    return RestartRequest(_timeout(body), _scheduled_at(body, "schedule"), conditions)


def _restart_role(value: object) -> Role | None:
    if value is None:
        return None
    role = _RESTART_ROLES.get(value) if isinstance(value, str) else None
    if role is None:
        _reject(f"field 'role' must be one of primary, standby_leader or replica, got {_shown(value)}")
    return role


def postgres_version(value: object) -> int | None:
    """``postgres_version`` as Patroni writes it, ``X.Y`` or ``X.Y.Z`` (``15.4``, ``9.6.3``), in
    ``server_version_num`` form (150004)."""
    if value is None:
        return None
    fix = 'a string such as "15.4" (X.Y from 10 on, X.Y.Z before)'
    parts = value.split(".") if isinstance(value, str) else []
    if not parts or not all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
        _reject(f"field 'postgres_version' must be {fix}, got {_shown(value)}")
    numbers = [int(p) for p in parts]
    if len(numbers) == 2 and numbers[0] >= 10:
        numbers.insert(1, 0)
    if len(numbers) != 3 or any(n > 99 for n in numbers[1:]):
        _reject(f"field 'postgres_version' must be {fix}, got {_shown(value)}")
    return numbers[0] * 10000 + numbers[1] * 100 + numbers[2]


def _flag(body: Mapping[str, Any], field: str) -> bool:
    value = body.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        _reject(f"field {field!r} must be true or false, got {_shown(value)}")
    return value


def reinitialize_request(raw: bytes) -> ReinitializeRequest:
    """``POST /reinitialize``: Patroni's ``force`` and ``from_leader``, and pgwarden's ``timeout``."""
    body = json_object(raw, empty_ok=True)
    _only(body, ("timeout", "force", "from_leader"))
    options = ReinitializeOptions(force=_flag(body, "force"), from_leader=_flag(body, "from_leader"))
    return ReinitializeRequest(_timeout(body), options)


def failsafe_request(raw: bytes) -> FailsafeRequest:
    """``POST /failsafe``: Patroni's body (``name``, ``api_url``, ``conn_url``, ``slots``) plus our
    ``promise_seconds``; only ``name`` is required, and only it and the seconds are used."""
    body = json_object(raw, empty_ok=False)
    _only(body, ("name", "api_url", "conn_url", "slots", "promise_seconds"))
    leader = _name(body, "name")
    if leader is None:
        _reject("a failsafe request needs field 'name': the leader asking for the promise")
    value = body.get("promise_seconds")
    if value is None:
        return FailsafeRequest(leader, None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        _reject(f"field 'promise_seconds' must be a number of seconds, got {_shown(value)}")
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_PROMISE):
        _reject(
            f"field 'promise_seconds' must be more than 0 and at most {MAX_PROMISE:g}, got {_shown(value)}"
        )
    return FailsafeRequest(leader, seconds)


def empty_request(raw: bytes) -> None:
    """Calls that take no parameters accept an empty body or ``{}``."""
    _only(json_object(raw, empty_ok=True), ())


def config_document(raw: bytes) -> dict[str, Any]:
    """``PATCH``/``PUT /config``: a JSON object; its settings are the operations' to validate."""
    return json_object(raw, empty_ok=False)


def if_match(header: str | None) -> IfMatch | None:
    """The ``If-Match`` header of a config write: ``*`` or ETags as ``GET /config`` sends them
    (``"42"``, comma-separated). Weak tags (``W/"42"``) never match, as RFC 9110 says."""
    if header is None:
        return None
    text = header.strip()
    if text == "*":
        return IfMatch(any=True)
    revisions: set[int] = set()
    for tag in (part.strip() for part in text.split(",")):
        if tag.startswith("W/"):
            continue
        digits = tag[1:-1] if len(tag) > 2 and tag[0] == tag[-1] == '"' else ""
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
            example = '"*" or ETags from GET /config such as "42"'
            _reject(f"the If-Match header must be {example}, got {_shown(header)}")
        revisions.add(int(digits))
    return IfMatch(frozenset(revisions))


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
