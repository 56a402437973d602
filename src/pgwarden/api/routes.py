"""Answers one REST request: routing, write authorization, body parsing, and outcome-to-status mapping.

No sockets here: ``RestApi.answer`` maps a ``Request`` value to a ``Response`` value, and
``server.py`` moves the bytes. Health endpoints and ``/patroni`` read only the snapshot (through
``HealthAnswers``), so they answer in microseconds whatever the agent is doing; everything else
goes through ``Operations``, and ``work_of`` tells the server which calls must run on a worker
thread rather than on its event loop.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pgwarden.agent.lease import monotonic
from pgwarden.agent.snapshot import SnapshotHolder
from pgwarden.api import bodies
from pgwarden.api.access import Access
from pgwarden.api.auth import CHALLENGE, BasicAuth
from pgwarden.api.contract import (
    PARAMETER_CHECK_HEADER,
    ConfigAnswer,
    Inspection,
    NoInspection,
    OperationError,
    OperationResult,
    Operations,
    etag,
)
from pgwarden.api.facts import HEALTH_ENDPOINTS, STATUS_ENDPOINTS, split_target
from pgwarden.api.health_answers import HealthAnswers
from pgwarden.api.web_view import ASSETS, SECURITY_HEADERS, WebView
from pgwarden.model import ApiSettings

log = logging.getLogger(__name__)

JSON = "application/json"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Answered from the snapshot alone: OPTIONS (HAProxy's favourite check) gets their verdict too.
SNAPSHOT_ENDPOINTS = frozenset(HEALTH_ENDPOINTS) | frozenset(STATUS_ENDPOINTS)


class Work(enum.Enum):
    """Where a call that cannot be answered on the event loop runs (server.py keeps one bounded
    pool of threads each), so a flood of reads never delays an authorised operation."""

    DOCUMENT = "documents"  # GET /cluster, /history, /config, /metrics, /events, /diagnostics, /ui
    OPERATION = "operations"  # authorised writes with a JSON body


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # path and query string as sent, e.g. "/replica?lag=16MB"
    body: bytes = b""
    authorization: str | None = None  # the Authorization header, if any
    content_type: str | None = None  # the Content-Type header, if any
    if_match: str | None = None  # the If-Match header, if any (config writes)
    peer: str = ""  # the caller's IP address, for api.allowlist
    client_cert: bool = False  # the caller presented a client certificate that verified


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, document: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    # default=str: a datetime or Lsn in an operation's answer renders as text instead of failing.
    return Response(status, json.dumps(document, default=str).encode(), JSON, headers)


def error_response(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response(status, {"error": message}, headers)


def is_json(content_type: str | None) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    return content_type is not None and content_type.partition(";")[0].strip().lower() == JSON


@dataclass(frozen=True, slots=True)
class _Call:
    target: str
    endpoint: str
    query: Mapping[str, str]
    body: bytes
    if_match: str | None = None


_Handler = Callable[[_Call], Response]


if TYPE_CHECKING:
    from pgwarden.api.metrics import Metrics


class RestApi:
    """Every endpoint of one agent's REST API (docs/rest-api.md, docs/openapi.json)."""

    def __init__(
        self,
        settings: ApiSettings,
        snapshots: SnapshotHolder,
        operations: Operations,
        inspection: Inspection | None = None,
    ) -> None:
        self._auth = BasicAuth(settings)
        self._inspection = inspection or NoInspection()
        self._web = WebView(snapshots, operations)
        self._access = Access(settings, snapshots)
        self._snapshots = snapshots
        self._ops = operations
        # /metrics (prometheus_client) and /openapi.json (pydantic's JSON schema) are made at their
        # first request: the agent does not carry or build them unless someone asks (2 MB).
        self._metrics: Metrics | None = None
        self.health = HealthAnswers(snapshots, frozenset(STATUS_ENDPOINTS))
        self._openapi: bytes | None = None
        self._routes = self._route_table()

    @property
    def routes(self) -> dict[str, frozenset[str]]:
        """Each path (``/primary``) and the methods it answers besides HEAD and OPTIONS."""
        return {f"/{endpoint}": frozenset(methods) for endpoint, methods in self._routes.items()}

    def _route_table(self) -> dict[str, dict[str, _Handler]]:
        ops = self._ops
        table: dict[str, dict[str, _Handler]] = {e: {"GET": self._health} for e in HEALTH_ENDPOINTS}
        table.update({e: {"GET": self._health} for e in STATUS_ENDPOINTS})
        table.update(
            {
                "cluster": {"GET": lambda c: json_response(200, ops.cluster())},
                "history": {"GET": lambda c: json_response(200, ops.history())},
                "config": {
                    "GET": lambda c: _config(ops.get_config()),
                    "PATCH": lambda c: _config(
                        ops.patch_config(bodies.config_document(c.body), bodies.if_match(c.if_match))
                    ),
                    "PUT": lambda c: _config(
                        ops.put_config(bodies.config_document(c.body), bodies.if_match(c.if_match))
                    ),
                },
                "metrics": {"GET": self._metrics_answer},
                "openapi.json": {"GET": self._openapi_answer},
                "events": {"GET": lambda c: json_response(200, self._inspection.events())},
                "cluster/events": {"GET": lambda c: json_response(200, self._inspection.cluster_events())},
                "diagnostics": {"GET": lambda c: json_response(200, self._inspection.diagnostics())},
                "ui/state": {"GET": lambda c: Response(200, self._web.state(), JSON, SECURITY_HEADERS)},
                "switchover": {"POST": self._switchover, "DELETE": self._cancel_switchover},
                "failover": {"POST": self._failover},
                "restart": {"POST": self._restart, "DELETE": self._cancel_restart},
                "reload": {"POST": self._reload},
                "reinitialize": {"POST": self._reinitialize},
                "failsafe": {
                    "GET": lambda c: json_response(200, ops.failsafe_topology()),
                    "POST": self._failsafe,
                },
            }
        )
        for path in ASSETS:
            table["/".join(filter(None, ("ui", path)))] = {"GET": self._asset}
        return table

    def answer(self, request: Request) -> Response:
        """The response to ``request``; never raises, so a bug costs one 503, not the agent."""
        try:
            response = self._dispatch(request)
        except Exception as exc:
            log.exception("REST %s %s failed", request.method, request.target)
            response = error_response(503, f"internal error: {exc}")
        # HEAD and OPTIONS answer with the status line alone (HAProxy checks), errors included.
        return response if request.method not in ("HEAD", "OPTIONS") else replace(response, body=b"")

    def from_snapshot(self, method: str, endpoint: str) -> bool:
        """Answered by ``self.health`` alone: a health check, ``/patroni``, or an unknown read path."""
        return method in READ_METHODS and (endpoint in SNAPSHOT_ENDPOINTS or endpoint not in self._routes)

    def work_of(self, request: Request) -> Work | None:
        """The pool that must answer ``request``; None when it is cheap enough to answer at once
        (snapshot reads, OPTIONS, and every refusal: 401, 403, 404, 405, 415)."""
        endpoint = split_target(request.target)[0]
        handlers = self._routes.get(endpoint)
        if handlers is None or request.method == "OPTIONS":
            return None
        if request.method in READ_METHODS:
            return Work.DOCUMENT if endpoint not in SNAPSHOT_ENDPOINTS and "GET" in handlers else None
        if request.method not in handlers or self._refusal(request) is not None:
            return None
        return Work.OPERATION

    def _refusal(self, request: Request) -> Response | None:
        """For a write: 403 outside the allowlist or without a client certificate (access.py),
        401 without the right credentials, then 415 without a JSON body type."""
        denied = self._access.refusal(request.peer, request.client_cert)
        if denied is not None:
            return error_response(403, denied)
        if not self._auth.allows(request.authorization):
            return _UNAUTHORIZED
        if not is_json(request.content_type):
            # A browser form or a no-cors fetch cannot send this type cross-site without a CORS
            # preflight, which this API never grants: the header is what stops cross-site writes.
            sent = f"Content-Type {request.content_type!r}" if request.content_type else "no Content-Type"
            return error_response(
                415,
                f"this call takes a JSON body and the header Content-Type: {JSON} "
                f"(even with no body); the request sent {sent}",
            )
        return None

    def _dispatch(self, request: Request) -> Response:
        method = request.method
        endpoint, query = split_target(request.target)
        if method in WRITE_METHODS:
            refusal = self._refusal(request)
            if refusal is not None and refusal.status in (401, 403):
                return refusal
        call = _Call(request.target, endpoint, query, request.body, request.if_match)
        routes = self._routes.get(endpoint)
        if routes is None:
            if method in READ_METHODS:  # Patroni: an unknown GET path is a failed health check
                return self._health(call)
            return error_response(404, f"no endpoint {method} /{endpoint}; see GET /openapi.json")
        allow = (("Allow", _allow(routes)),)
        if method == "OPTIONS" and endpoint not in SNAPSHOT_ENDPOINTS:
            return Response(200, headers=allow)
        handler = routes.get("GET" if method in READ_METHODS else method)
        if handler is None:
            return error_response(
                405, f"/{endpoint} does not answer {method}; it answers {allow[0][1]}", allow
            )
        if method in WRITE_METHODS:
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
        return _outcome(handler, call)

    def _metrics_answer(self, _: _Call) -> Response:
        from pgwarden.api.metrics import CONTENT_TYPE, Metrics

        if self._metrics is None:  # two first scrapes at once make two: either serves
            self._metrics = Metrics(self._snapshots)
        return Response(200, self._metrics.render(), CONTENT_TYPE)

    def _openapi_answer(self, _: _Call) -> Response:
        if self._openapi is None:
            from pgwarden.api.openapi import DOCUMENT

            self._openapi = json.dumps(DOCUMENT).encode()
        return Response(200, self._openapi)

    def _health(self, call: _Call) -> Response:
        status, body = self.health.answer(call.target, monotonic())
        return Response(status, body)

    def _asset(self, call: _Call) -> Response:
        body, content_type = self._web.asset(call.endpoint.removeprefix("ui").lstrip("/"))
        return Response(200, body, content_type, SECURITY_HEADERS)

    def _switchover(self, call: _Call) -> Response:
        r = bodies.switchover_request(call.body)
        return _result(self._ops.switchover(r.leader, r.candidate, r.scheduled_at, r.timeout))

    def _cancel_switchover(self, call: _Call) -> Response:
        bodies.empty_request(call.body)
        return _result(self._ops.cancel_switchover())

    def _failover(self, call: _Call) -> Response:
        r = bodies.failover_request(call.body)
        if r.leader is not None:  # Patroni: naming the leader makes it a switchover from it
            return _result(self._ops.switchover(r.leader, r.candidate, None, r.timeout))
        return _result(self._ops.failover(r.candidate, r.timeout))

    def _restart(self, call: _Call) -> Response:
        r = bodies.restart_request(call.body)
        conditions = r.conditions if r.conditions.any else None
        if r.schedule is not None:
            return _result(self._ops.schedule_restart(r.schedule, conditions))
        return _result(self._ops.restart(r.timeout, conditions))

    def _reinitialize(self, call: _Call) -> Response:
        r = bodies.reinitialize_request(call.body)
        options = r.options if r.options.force or r.options.from_leader else None
        return _result(self._ops.reinitialize(r.timeout, options))

    def _cancel_restart(self, call: _Call) -> Response:
        bodies.empty_request(call.body)
        return _result(self._ops.cancel_scheduled_restart())

    def _failsafe(self, call: _Call) -> Response:
        r = bodies.failsafe_request(call.body)
        return _result(self._ops.failsafe(r.leader, r.seconds))

    def _reload(self, call: _Call) -> Response:
        bodies.empty_request(call.body)
        return _result(self._ops.reload())


_UNAUTHORIZED = error_response(
    401,
    "this call changes the cluster and needs HTTP Basic credentials (api.auth in the node config)",
    (("WWW-Authenticate", CHALLENGE),),
)


def _outcome(handler: _Handler, call: _Call) -> Response:
    try:
        return handler(call)
    except bodies.BodyError as exc:
        return error_response(400, str(exc))
    except OperationError as exc:
        if exc.status < 400:  # an error must never read as success
            log.error("operation error with non-error status %d: %s", exc.status, exc.message)
            return json_response(503, exc.document())
        return json_response(exc.status, exc.document())


def _config(answer: ConfigAnswer) -> Response:
    headers: list[tuple[str, str]] = []
    if answer.revision is not None:
        headers.append(("ETag", etag(answer.revision)))
    if answer.parameter_check is not None:
        headers.append((PARAMETER_CHECK_HEADER, header_text(answer.parameter_check)))
    return json_response(200, answer.document, tuple(headers))


def header_text(text: str) -> str:
    """``text`` as one header value: printable ASCII on one line (the HTTP layer writes latin-1)."""
    return " ".join(text.encode("ascii", "replace").decode().split())[:1000]


def _result(result: OperationResult) -> Response:
    return json_response(result.status, result.document())


def _allow(routes: Mapping[str, object]) -> str:
    methods = set(routes) | {"OPTIONS"}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
