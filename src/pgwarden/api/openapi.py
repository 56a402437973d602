"""The OpenAPI 3.1 description of the REST API, served at ``GET /openapi.json`` and kept in docs/openapi.json.

Regenerate the file with ``.venv/bin/python -m pgwarden.api.openapi > docs/openapi.json``;
a unit test fails when it is stale, and another when a route is missing from it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pgwarden import __version__
from pgwarden.api import openapi_views
from pgwarden.api.bodies import MAX_PROMISE, MAX_TIMEOUT
from pgwarden.api.contract import DEFAULT_OPERATION_TIMEOUT, PARAMETER_CHECK_HEADER
from pgwarden.api.facts import HEALTH_ENDPOINTS, STATUS_ENDPOINTS
from pgwarden.api.openapi_documents import REF as _REF
from pgwarden.api.openapi_documents import config_schemas, document_schemas
from pgwarden.ha.health import HEALTH_PATHS

# What 200 means on each health endpoint (ha/health.py's table); anything else answers 503.
HEALTH_MEANING: dict[str, str] = {
    path: e.meaning + (f" (as /{e.path})" if path != e.path else "") for path, e in HEALTH_PATHS.items()
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_TIMEOUT = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": MAX_TIMEOUT,
    "default": DEFAULT_OPERATION_TIMEOUT,
    "description": "seconds to wait for the operation before answering with the state it reached",
}
_NAME = {"type": "string", "minLength": 1, "description": "a member name"}
# Patroni's spelling of a timeout, which patronictl's --timeout sends: "30", "30s", "2min", "1500 ms".
_TIMEOUT_OR_TEXT = {
    "oneOf": [
        _TIMEOUT,
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|min|h|d)?\s*$", "description": "with a unit"},
    ]
}
_FLAG = {"type": "boolean", "default": False}


def _schemas() -> dict[str, Any]:
    return {
        **document_schemas(),
        **config_schemas(),
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string", "description": "one human sentence"}},
            "additionalProperties": True,
        },
        "Result": {
            "type": "object",
            "required": ["message"],
            "properties": {"message": {"type": "string"}},
            "additionalProperties": True,
        },
        "FailsafeTopology": {
            "type": "object",
            "description": "member name -> REST API URL: who a leader must ask before writing without etcd",
            "additionalProperties": {"type": "string"},
        },
        "FailsafeRequest": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {**_NAME, "description": "the leader asking for the promise"},
                "api_url": {"type": "string"},
                "conn_url": {"type": "string"},
                "slots": {"type": "object", "description": "accepted for Patroni's sake, ignored"},
                "promise_seconds": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": MAX_PROMISE,
                    "description": "how long to promise; omitted: the cluster's ttl",
                },
            },
            "additionalProperties": False,
        },
        "SwitchoverRequest": {
            "type": "object",
            "description": "needs leader or candidate (or both)",
            "properties": {
                "leader": {**_NAME, "description": "the current primary; refused if it is not"},
                "candidate": {**_NAME, "description": "the standby to promote; omitted: the best one"},
                "scheduled_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "ISO-8601 time WITH a time zone; omitted: now",
                },
                "timeout": _TIMEOUT,
            },
            "anyOf": [{"required": ["leader"]}, {"required": ["candidate"]}],
            "additionalProperties": False,
        },
        "FailoverRequest": {
            "type": "object",
            "description": "needs candidate (Patroni's member is read as well); with leader, a "
            "switchover from that leader, as in Patroni",
            "properties": {
                "candidate": _NAME,
                "member": {**_NAME, "description": "Patroni's other name for candidate"},
                "leader": {
                    **_NAME,
                    "description": "the current primary: makes it a switchover; refused if not",
                },
                "timeout": _TIMEOUT_OR_TEXT,
            },
            "anyOf": [{"required": ["candidate"]}, {"required": ["member"]}],
            "additionalProperties": False,
        },
        "RestartRequest": {
            "type": "object",
            "description": "Patroni's body: the conditions are checked by this node's agent; one that "
            "does not hold answers 503 'restart conditions are not satisfied' and nothing is restarted",
            "properties": {
                "timeout": _TIMEOUT_OR_TEXT,
                "schedule": {
                    "type": "string",
                    "format": "date-time",
                    "description": "restart later, at this ISO-8601 time WITH a time zone (202); "
                    "omitted: restart now",
                },
                "restart_pending": {**_FLAG, "description": "restart only if a restart is pending"},
                "role": {
                    "type": "string",
                    "enum": ["primary", "master", "standby_leader", "standby-leader", "replica"],
                    "description": "restart only if this node has this role",
                },
                "postgres_version": {
                    "type": "string",
                    "pattern": r"^\d+\.\d+(\.\d+)?$",
                    "description": "restart only if the running server is older: X.Y (X.Y.Z before 10)",
                },
            },
            "additionalProperties": False,
        },
        "ReinitializeRequest": {
            "type": "object",
            "properties": {
                "timeout": _TIMEOUT_OR_TEXT,
                "force": {**_FLAG, "description": "reinitialize after a clone or rewind running here"},
                "from_leader": {**_FLAG, "description": "clone from the leader, not a clonefrom member"},
            },
            "additionalProperties": False,
        },
        "EmptyRequest": {"type": "object", "additionalProperties": False},
        **openapi_views.schemas(),
    }


_HEALTH_PARAMETERS: dict[str, Any] = {
    "lag": {
        "name": "lag",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "examples": ["16MB", "1048576"]},
        "description": "most bytes this standby may be behind the leader (replica, read-only, "
        "asynchronous, readiness ...)",
    },
    "replication_state": {
        "name": "replication_state",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["streaming"]},
        "description": "require the WAL receiver to be streaming",
    },
    "tags": {
        "name": "tags",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "schema": {"type": "object", "additionalProperties": {"type": "string"}},
        "description": "tag_<key>=<value>: require a tag value (e.g. tag_nofailover=false)",
    },
}
_HEALTH_RESPONSES: dict[str, Any] = {
    "Healthy": _json(_ref("Status"), "the endpoint's condition holds (HEAD/OPTIONS: status line only)"),
    "Unhealthy": _json(_ref("Status"), "it does not (HEAD/OPTIONS: status line only)"),
    "BadQuery": _error("a query parameter is malformed"),
}


def _health_path(endpoint: str) -> dict[str, Any]:
    meaning = HEALTH_MEANING[endpoint]
    answers = {
        code: {"$ref": f"#/components/responses/{name}"}
        for code, name in (("200", "Healthy"), ("503", "Unhealthy"), ("400", "BadQuery"))
    }
    name = endpoint or "root"
    path: dict[str, Any] = {
        "summary": f"200 when {meaning}, else 503",
        "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in _HEALTH_PARAMETERS],
    }
    for method in ("get", "head", "options"):
        path[method] = {
            "operationId": f"health_{name}_{method}",
            "tags": ["health"],
            "responses": answers,
        }
    return path


# /cluster, /history and /config answer from the agent's snapshot (never from etcd) on a small
# pool of threads; a full pool answers this at once.
_BUSY = "the REST API's document workers are all busy; retry shortly"


def _read(operation_id: str, summary: str, schema: dict[str, Any], *extra: str) -> dict[str, Any]:
    responses = {"200": _json(schema, summary)}
    if "503" in extra:
        responses["503"] = _error(extra[-1] if len(extra) > 1 else _BUSY)
    return {
        "get": {"operationId": operation_id, "tags": ["status"], "summary": summary, "responses": responses}
    }


def _write(operation_id: str, summary: str, body: str | None, codes: dict[str, str]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": ["operations"],
        "summary": summary,
        "security": [{"basicAuth": []}],
        "responses": {
            **{code: _json(_ref("Result"), text) for code, text in codes.items() if code.startswith("2")},
            "400": _error("the body is malformed; the sentence names the field"),
            "401": _error("api.auth is configured and the credentials are missing or wrong"),
            "403": _error(
                "the caller's address is outside api.allowlist, or api.tls.verify_client is optional "
                "and the caller presented no client certificate"
            ),
            "415": _error("the call has no Content-Type: application/json (required on every write)"),
            **{code: _error(text) for code, text in codes.items() if not code.startswith("2")},
        },
    }
    if body is not None:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


_ETAG = {
    "description": 'the etcd revision of the config key, quoted: "42"; send it back in If-Match',
    "schema": {"type": "string"},
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'write only if the config is still at this ETag (from GET /config), or "*"; '
    "412 when it moved",
    "schema": {"type": "string"},
}


def _config_write(operation_id: str, summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    operation = _write(
        operation_id,
        summary,
        None,
        {
            "409": "etcd changed meanwhile (retry), or PATCH on a stored config that is invalid (use PUT)",
            "412": "If-Match names another revision: the config changed since it was read",
        },
    )
    operation["parameters"] = [_IF_MATCH]
    operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    stored = _json(_ref("ConfigDocument"), "the config now stored")
    stored["headers"] = {
        PARAMETER_CHECK_HEADER: {
            "description": "what this node's PostgreSQL said of the changed parameters: "
            '"accepted by PostgreSQL on <member>: <names>" or "skipped on <member>: <why>"; '
            "absent when no parameter changed",
            "schema": {"type": "string"},
        }
    }
    operation["responses"]["200"] = stored
    operation["responses"]["400"] = _error(
        "the config is refused: the sentence names each key and its fix; refused holds PostgreSQL's "
        "message per key when PostgreSQL refused a value"
    )
    operation["responses"]["503"] = _error("etcd could not be written")
    return operation


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {f"/{e}": _health_path(e) for e in HEALTH_ENDPOINTS}
    for endpoint in STATUS_ENDPOINTS:
        paths[f"/{endpoint}"] = _read(f"status_{endpoint}", "this node's status", _ref("Status"))
    paths["/cluster"] = _read(
        "cluster", "every member, the leader and any switchover", _ref("Cluster"), "503"
    )
    paths["/history"] = _read(
        "history", "timeline history", {"type": "array", "items": _ref("HistoryEntry")}, "503"
    )
    config_read = _read(
        "get_config",
        "the dynamic config in force, as the agent last read it from etcd",
        _ref("ConfigDocument"),
        "503",
        f"the agent has not read a dynamic config yet, or {_BUSY}",
    )
    config_read["get"]["responses"]["200"]["headers"] = {"ETag": _ETAG}
    paths["/config"] = {
        **config_read,
        "patch": _config_write(
            "patch_config",
            "merge settings into the dynamic config (RFC 7386: null removes a key)",
            {"type": "object", "additionalProperties": True},
        ),
        "put": _config_write("put_config", "replace the whole dynamic config", _ref("DynamicConfig")),
    }
    paths["/metrics"] = {
        "get": {
            "operationId": "metrics",
            "tags": ["status"],
            "summary": "Prometheus text format (docs/rest-api.md#metrics)",
            "responses": {
                "200": {
                    "description": "metrics",
                    "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                }
            },
        }
    }
    paths["/openapi.json"] = _read("openapi", "this document", {"type": "object"})
    failed = "the operation could not be carried out; the sentence says how far it got"
    paths["/switchover"] = {
        "post": _write(
            "switchover",
            "planned, lossless handover to a standby; answers once the new primary runs",
            "SwitchoverRequest",
            {
                "200": "the candidate runs as primary",
                "202": "scheduled for scheduled_at",
                "409": "another switchover is pending",
                "412": "a precondition failed: leader mismatch, unknown or lagging candidate, "
                "no healthy standby",
                "503": failed,
            },
        ),
        "delete": _write(
            "cancel_switchover",
            "cancel a scheduled switchover",
            None,
            {"200": "cancelled", "404": "no switchover is pending", "503": failed},
        ),
    }
    paths["/failover"] = {
        "post": _write(
            "failover",
            "promote the candidate, with or without a healthy leader",
            "FailoverRequest",
            {
                "200": "the candidate runs as primary",
                "409": "another switchover or failover is pending",
                "412": "unknown or unfit candidate; with leader: it is not the leader",
                "503": failed,
            },
        )
    }
    paths["/restart"] = {
        "post": _write(
            "restart",
            "restart this node's PostgreSQL now, or schedule a restart",
            "RestartRequest",
            {
                "200": "PostgreSQL serves again",
                "202": "scheduled: the agent restarts PostgreSQL when the time comes",
                "409": "a restart is already scheduled on this node",
                "412": "refused by this node's agent",
                "503": "a condition does not hold ('restart conditions are not satisfied', why), or "
                + failed,
            },
        ),
        "delete": _write(
            "cancel_scheduled_restart",
            "cancel the restart scheduled on this node",
            None,
            {"200": "cancelled", "404": "no restart is scheduled", "503": failed},
        ),
    }
    paths["/reload"] = {
        "post": _write(
            "reload",
            "re-read the config and reload PostgreSQL",
            "EmptyRequest",
            {"200": "reloaded", "412": "refused by this node's agent", "503": failed},
        )
    }
    paths["/failsafe"] = {
        "get": {
            "operationId": "failsafe_topology",
            "tags": ["status"],
            "summary": "the failsafe topology this node last read (from its last view, not etcd)",
            "responses": {
                "200": _json(_ref("FailsafeTopology"), "member name -> REST API URL"),
                "503": _error("failsafe_mode is off"),
            },
        },
        "post": _write(
            "failsafe",
            "a leader writing without etcd asks this member to promise to promote no one and "
            "follow no one else for promise_seconds",
            "FailsafeRequest",
            {
                "200": "promised",
                "412": "this member may not promise: failsafe_mode off, it runs read-write, it sees "
                "another leader, it promised another leader, or it is racing for the key",
                "503": failed,
            },
        ),
    }
    paths["/reinitialize"] = {
        "post": _write(
            "reinitialize",
            "wipe and re-clone this standby (runs in the background)",
            "ReinitializeRequest",
            {"202": "started", "412": "refused, e.g. on the leader", "503": failed},
        )
    }
    paths.update(openapi_views.paths(_read, _ref))
    return paths


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pgwarden REST API",
            "version": __version__,
            "description": "One API per agent. Health endpoints keep Patroni's paths and codes; "
            'write calls need HTTP Basic auth when api.auth is configured. Errors are {"error": sentence}.',
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "parameters": _HEALTH_PARAMETERS,
            "responses": _HEALTH_RESPONSES,
            "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        },
    }


DOCUMENT: dict[str, Any] = _document()


def render() -> str:
    """docs/openapi.json, byte for byte."""
    return json.dumps(DOCUMENT, indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
