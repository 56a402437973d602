"""Answers one REST request: routing, write authorization, body parsing, and outcome-to-status mapping.

No sockets here: ``RestApi.answer`` maps a ``Request`` value to a ``Response`` value, and
``server.py`` moves the bytes. Health endpoints and ``/patroni`` read only the snapshot, so they
answer in milliseconds whatever the agent is doing; everything else goes through ``Operations``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from pgwarden.agent.snapshot import SnapshotHolder, status_document
from pgwarden.api import bodies
from pgwarden.api.auth import CHALLENGE, BasicAuth
from pgwarden.api.contract import OperationError, OperationResult, Operations
from pgwarden.api.facts import HEALTH_ENDPOINTS, STATUS_ENDPOINTS, facts_of, query_of
from pgwarden.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from pgwarden.api.metrics import Metrics
from pgwarden.api.openapi import DOCUMENT as OPENAPI_DOCUMENT
from pgwarden.ha.health import verdict
from pgwarden.model import ApiSettings

log = logging.getLogger(__name__)

JSON = "application/json"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Answered from the snapshot alone: OPTIONS (HAProxy's favourite check) gets their verdict too.
SNAPSHOT_ENDPOINTS = frozenset(HEALTH_ENDPOINTS) | frozenset(STATUS_ENDPOINTS)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # path and query string as sent, e.g. "/replica?lag=16MB"
    body: bytes = b""
    authorization: str | None = None  # the Authorization header, if any


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


@dataclass(frozen=True, slots=True)
class _Call:
    endpoint: str
    query: Mapping[str, str]
    body: bytes


_Handler = Callable[[_Call], Response]


class RestApi:
    """Every endpoint of one agent's REST API (docs/rest-api.md, docs/openapi.json)."""

    def __init__(self, settings: ApiSettings, snapshots: SnapshotHolder, operations: Operations) -> None:
        self._auth = BasicAuth(settings)
        self._snapshots = snapshots
        self._ops = operations
        self._metrics = Metrics(snapshots)
        self._openapi = json.dumps(OPENAPI_DOCUMENT).encode()
        self._routes = self._route_table()

    @property
    def routes(self) -> dict[str, frozenset[str]]:
        """Each path (``/primary``) and the methods it answers besides HEAD and OPTIONS."""
        return {f"/{endpoint}": frozenset(methods) for endpoint, methods in self._routes.items()}

    def _route_table(self) -> dict[str, dict[str, _Handler]]:
        ops = self._ops
        table: dict[str, dict[str, _Handler]] = {e: {"GET": self._health} for e in HEALTH_ENDPOINTS}
        table.update({e: {"GET": self._status} for e in STATUS_ENDPOINTS})
        table.update(
            {
                "cluster": {"GET": lambda c: json_response(200, ops.cluster())},
                "history": {"GET": lambda c: json_response(200, ops.history())},
                "config": {
                    "GET": lambda c: json_response(200, ops.get_config()),
                    "PATCH": lambda c: json_response(200, ops.patch_config(bodies.config_document(c.body))),
                    "PUT": lambda c: json_response(200, ops.put_config(bodies.config_document(c.body))),
                },
                "metrics": {"GET": lambda c: Response(200, self._metrics.render(), METRICS_CONTENT_TYPE)},
                "openapi.json": {"GET": lambda c: Response(200, self._openapi)},
                "switchover": {"POST": self._switchover, "DELETE": self._cancel_switchover},
                "failover": {"POST": self._failover},
                "restart": {"POST": self._restart, "DELETE": self._cancel_restart},
                "reload": {"POST": self._reload},
                "reinitialize": {"POST": lambda c: _result(ops.reinitialize(bodies.timeout_request(c.body)))},
            }
        )
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

    def _dispatch(self, request: Request) -> Response:
        method = request.method
        # Not urlsplit: it would read "//primary" as a host name. Slashes around a path don't count.
        path, _, query = request.target.partition("#")[0].partition("?")
        endpoint = path.strip("/")
        if method in WRITE_METHODS and not self._auth.allows(request.authorization):
            return error_response(
                401,
                "this call changes the cluster and needs HTTP Basic credentials "
                "(api.auth in the node config)",
                (("WWW-Authenticate", CHALLENGE),),
            )
        call = _Call(endpoint, dict(parse_qsl(query)), request.body)
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
        return _outcome(handler, call)

    def _health(self, call: _Call) -> Response:
        snap = self._snapshots.get()
        try:
            query = query_of(call.query)
        except ValueError as exc:
            return error_response(400, str(exc))
        healthy = verdict(call.endpoint, facts_of(snap), query)
        return json_response(200 if healthy else 503, status_document(snap))

    def _status(self, call: _Call) -> Response:
        return json_response(200, status_document(self._snapshots.get()))

    def _switchover(self, call: _Call) -> Response:
        r = bodies.switchover_request(call.body)
        return _result(self._ops.switchover(r.leader, r.candidate, r.scheduled_at, r.timeout))

    def _cancel_switchover(self, call: _Call) -> Response:
        bodies.empty_request(call.body)
        return _result(self._ops.cancel_switchover())

    def _failover(self, call: _Call) -> Response:
        r = bodies.failover_request(call.body)
        return _result(self._ops.failover(r.candidate, r.timeout))

    def _restart(self, call: _Call) -> Response:
        r = bodies.restart_request(call.body)
        if r.schedule is not None:
            return _result(self._ops.schedule_restart(r.schedule))
        return _result(self._ops.restart(r.timeout))

    def _cancel_restart(self, call: _Call) -> Response:
        bodies.empty_request(call.body)
        return _result(self._ops.cancel_scheduled_restart())

    def _reload(self, call: _Call) -> Response:
        bodies.empty_request(call.body)
        return _result(self._ops.reload())


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


def _result(result: OperationResult) -> Response:
    return json_response(result.status, result.document())


def _allow(routes: Mapping[str, object]) -> str:
    methods = set(routes) | {"OPTIONS"}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
