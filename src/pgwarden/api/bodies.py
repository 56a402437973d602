"""Parses the JSON bodies of the REST API's write calls into typed requests, naming any faulty field."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from pgwarden.api.contract import DEFAULT_OPERATION_TIMEOUT, IfMatch

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


@dataclass(frozen=True, slots=True)
class FailoverRequest:
    candidate: str
    timeout: float


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


def _timeout(body: Mapping[str, Any]) -> float:
    value = body.get("timeout")
    if value is None:
        return DEFAULT_OPERATION_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int | float):
        _reject(f"field 'timeout' must be a number of seconds, got {_shown(value)}")
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT):
        _reject(f"field 'timeout' must be more than 0 and at most {MAX_TIMEOUT:g} seconds, got {value}")
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
    body = json_object(raw, empty_ok=True)
    _only(body, ("candidate", "timeout"))
    candidate = _name(body, "candidate")
    if candidate is None:
        _reject("a failover needs field 'candidate': the member to promote")
    return FailoverRequest(candidate, _timeout(body))


def restart_request(raw: bytes) -> RestartRequest:
    """``POST /restart``: an optional ``timeout``, or a ``schedule`` (ISO-8601 with a time zone)."""
    body = json_object(raw, empty_ok=True)
    _only(body, ("timeout", "schedule"))
    return RestartRequest(_timeout(body), _scheduled_at(body, "schedule"))


def timeout_request(raw: bytes) -> float:
    """``POST /reinitialize``: an optional ``timeout``."""
    body = json_object(raw, empty_ok=True)
    _only(body, ("timeout",))
    return _timeout(body)


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
        _reject(f"field 'promise_seconds' must be more than 0 and at most {MAX_PROMISE:g}, got {value}")
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
