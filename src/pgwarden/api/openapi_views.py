"""The OpenAPI description of the reads that let people see the cluster: decisions, diagnostics, the web view.

Merged into ``api/openapi.py``'s document (``docs/openapi.json``); kept apart so that file stays
about the Patroni-compatible surface.
"""

from __future__ import annotations

from typing import Any

from pgwarden.api.inspection import DIAGNOSTICS_FORMAT

_REF = "#/components/schemas/{model}"
_NULLABLE_SUMMARY = {"anyOf": [{"$ref": _REF.format(model="RoundTrips")}, {"type": "null"}]}


def schemas() -> dict[str, Any]:
    return {
        "DecisionRun": {
            "type": "object",
            "description": "consecutive decisions of one agent with the same reason code",
            "required": ["time", "timestamp", "reason_code", "message", "decisions"],
            "properties": {
                "time": {"type": "string", "format": "date-time", "description": "the first one"},
                "timestamp": {"type": "number", "description": "the first one, epoch seconds"},
                "reason_code": {"type": "string", "description": "docs/rules.md"},
                "message": {"type": "string", "description": "the latest one's sentence"},
                "actions": {"type": "array", "items": {"type": "string"}, "description": "the first one's"},
                "decisions": {"type": "integer", "minimum": 1, "description": "how many in the run"},
                "last": {"type": "string", "format": "date-time"},
                "last_timestamp": {"type": "number"},
            },
        },
        "Events": {
            "type": "object",
            "required": ["member", "events"],
            "properties": {
                "member": {"type": ["string", "null"]},
                "events": {
                    "type": "array",
                    "items": {"$ref": _REF.format(model="DecisionRun")},
                    "description": "oldest first; at most 100 runs, kept in memory only",
                },
            },
        },
        "ClusterEvents": {
            "type": "object",
            "required": ["members", "unreachable"],
            "properties": {
                "members": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "array",
                        "items": {"$ref": _REF.format(model="DecisionRun")},
                    },
                },
                "unreachable": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "members whose /events did not answer, and why",
                },
            },
        },
        "RoundTrips": {
            "type": "object",
            "properties": {
                "count": {"type": "integer", "description": "the round trips kept (the latest 240)"},
                "p50_ms": {"type": "number"},
                "p99_ms": {"type": "number"},
                "max_ms": {"type": "number"},
                "total": {"type": "integer", "description": "every one since the agent started"},
            },
        },
        "Diagnostics": {
            "type": "object",
            "required": ["format", "member", "time", "api", "etcd", "postgres"],
            "properties": {
                "format": {"type": "integer", "const": DIAGNOSTICS_FORMAT},
                "member": {"type": "string"},
                "cluster": {"type": "string"},
                "time": {"type": "number", "description": "this node's wall clock, epoch seconds"},
                "api": {
                    "type": "object",
                    "description": "how this node's REST API is protected",
                    "properties": {
                        "listen": {"type": "string"},
                        "auth": {"type": "boolean"},
                        "tls": {"type": "boolean"},
                        "verify_client": {"type": "string"},
                        "allowlist": {"type": "boolean"},
                        "loopback": {"type": "boolean"},
                    },
                },
                "etcd": {
                    "type": "object",
                    "properties": {
                        "endpoints": {"type": "array", "items": {"type": "string"}},
                        "reads": {**_NULLABLE_SUMMARY, "description": "the loop's reads of the cluster"},
                        "renewals": {**_NULLABLE_SUMMARY, "description": "the leader's lease renewals"},
                    },
                },
                "watchdog": {"type": "object", "additionalProperties": True},
                "fence": {
                    "type": "object",
                    "properties": {
                        "pid": {"type": ["integer", "null"]},
                        "state": {"type": "string", "enum": ["running", "stopped", "absent"]},
                    },
                },
                "failsafe_active": {"type": "boolean"},
                "holds_leader_key": {"type": "boolean"},
                "postgres": {
                    "type": "object",
                    "description": "settings, WAL senders, slots and free disk, read when asked",
                    "additionalProperties": True,
                },
                "behind": {
                    "type": "object",
                    "description": "the leader only: per member, how old the oldest write it lacks is",
                    "additionalProperties": True,
                },
            },
        },
    }


def paths(read: Any, ref: Any) -> dict[str, Any]:
    """``read(operation_id, summary, schema, *extra)`` and ``ref(model)`` are openapi.py's."""
    found: dict[str, Any] = {
        "/events": read("events", "this agent's recent decisions", ref("Events"), "503"),
        "/cluster/events": read(
            "cluster_events",
            "every member's recent decisions (this agent's and its peers' /events, cached 2 s)",
            ref("ClusterEvents"),
            "503",
        ),
        "/diagnostics": read(
            "diagnostics",
            "the facts pgwarden doctor checks on this node (PostgreSQL read when asked)",
            ref("Diagnostics"),
            "503",
        ),
        "/ui/state": read(
            "web_view_state",
            "the web view's state: /cluster plus history, the serving agent's etcd and failsafe view",
            {"type": "object", "additionalProperties": True},
            "503",
        ),
    }
    for path, kind in (("/ui", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")):
        found[path] = {
            "get": {
                "operationId": "web_view" + path.removeprefix("/ui").replace("/", "_").replace(".", "_"),
                "tags": ["status"],
                "summary": "the live web view (read-only; served from the package)",
                "responses": {
                    "200": {"description": kind, "content": {kind: {"schema": {"type": "string"}}}}
                },
            }
        }
    return found
