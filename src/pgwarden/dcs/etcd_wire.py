"""The etcd v3 JSON gateway's encoding: the headers every call carries, keys and values in base64,
answer bodies, answers and their errors, key-values, revisions, watch events, one member's reply,
and the words for a failed call. Pure functions over the gateway's JSON (no I/O), used by
EtcdStore (dcs/etcd.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pgwarden import outbound_http
from pgwarden.dcs import etcd_auth, etcd_tls
from pgwarden.dcs.store import KeyValue, StoreError, WatchEvent
from pgwarden.model.node import Address, EtcdSettings
from pgwarden.outbound_http import TransportError

_TRANSIENT_CODES = frozenset({4, 14})

Json = dict[str, Any]

# Grpc-Metadata-Hasleader makes a member without a leader answer "no leader" at once
# instead of waiting (and, for watches, which are not linearizable, instead of serving
# a stream that will never see an event); that answer moves us on to the next member.
# Accept is not optional: the gateway forwards it as "grpcgateway-accept", which is how
# etcd tells its gateway's calls apart; without it, etcd 3.4 takes the CommonName of the
# certificate the gateway dials with (the member's own) as the user of a call without a
# token (a "permission denied" instead of "user name is empty", or worse, its rights).
GATEWAY_HEADERS: Mapping[str, str] = {
    "Grpc-Metadata-Hasleader": "true",
    "Content-Type": "application/json",
    "Accept": "application/json",
}


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode("utf-8", errors="replace")


def prefix_end(prefix: str) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (etcd's range_end)."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\0"  # an empty or all-0xFF prefix: the whole keyspace


class _EtcdAnswer(StoreError):
    """etcd answered with an error that another member would answer the same way."""

    def __init__(
        self, endpoint: Address, code: int | None, message: str, username: str | None = None
    ) -> None:
        super().__init__(f"etcd {endpoint} refused the request: {etcd_auth.explain(message, username)}")
        self.code = code
        self.message = message


def _error_of(answer: Json) -> tuple[int | None, str] | None:
    """The gateway's error, in either of its shapes (unary, or wrapped in a stream message)."""
    error = answer.get("error")
    if error is None:
        return None
    if isinstance(error, dict):
        code = error.get("grpc_code", error.get("code"))
        return (int(code) if code is not None else None, str(error.get("message", error)))
    code = answer.get("code")
    return (int(code) if code is not None else None, str(answer.get("message", error)))


def _is_transient(code: int | None, message: str) -> bool:
    # A member cut off from the majority also answers "context deadline exceeded" (code 2).
    return code in _TRANSIENT_CODES or any(
        sign in message for sign in ("leader", "timed out", "deadline exceeded")
    )


def _describe(exc: TransportError, budget: float, settings: EtcdSettings, host: str) -> str:
    tls = etcd_tls.describe_tls(exc, settings, host) if settings.tls else None
    if tls is not None:
        return tls
    if isinstance(exc, outbound_http.Timeout):
        return f"timed out after {budget:.1f}s"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, outbound_http.ConnectError) and "refused" in text.lower():
        return "refused"
    if not settings.tls and isinstance(exc, outbound_http.ReadError):
        return f"{text} ({etcd_tls.PLAIN_TO_TLS_HINT})"
    return text


def _key_value(kv: Json) -> KeyValue:
    return KeyValue(
        key=_unb64(kv["key"]),
        value=_unb64(kv.get("value", "")),
        mod_revision=int(kv.get("mod_revision", 0)),
        create_revision=int(kv.get("create_revision", 0)),
        lease=int(kv.get("lease", 0)),
    )


def _revision(answer: Json) -> int:
    return int(answer.get("header", {}).get("revision", 0))


def _put(key: str, value: str, lease: int) -> Json:
    body: Json = {"key": _b64(key), "value": _b64(value)}
    if lease:
        body["lease"] = str(lease)
    return body


def _watch_event(event: Mapping[str, Any]) -> WatchEvent:
    kv = _key_value(event["kv"])
    kind: Literal["put", "delete"] = "delete" if event.get("type") == "DELETE" else "put"
    return WatchEvent(
        kind=kind, key=kv.key, value=kv.value if kind == "put" else "", mod_revision=kv.mod_revision
    )


def _parse_body(status: int, text: str, settings: EtcdSettings) -> Json:
    # Streaming endpoints (keepalive) answer one JSON object per line, wrapped in "result".
    # An empty body is a member dying mid-answer, never "no TTL" (that would fake LeaseExpired).
    lines = text.strip().splitlines()
    if not lines:
        raise ValueError(f"answered HTTP {status} with nothing")
    try:
        answer = json.loads(lines[0])
    except ValueError:
        refusal = etcd_tls.describe_refusal(status, text, settings)
        raise ValueError(refusal or f"answered HTTP {status}, not JSON") from None
    if not isinstance(answer, dict):
        raise ValueError(f"answered HTTP {status} with JSON that is not an object")
    result = answer.get("result")
    return result if isinstance(result, dict) else answer


@dataclass(frozen=True, slots=True)
class _Reply:
    """One endpoint's reply to one request: an answer (maybe a definite error), or a failure."""

    index: int
    sent: float  # monotonic, taken just before the request left
    answer: Json | None = None
    error: tuple[int | None, str] | None = None  # an error another member would answer alike
    failure: str | None = None  # no usable answer: refused, timed out, "no leader", ...
