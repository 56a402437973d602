"""The OpenAPI schemas of the documents the API answers with, generated from ``documents/shapes.py``.

Nothing here is written by hand but the names: each schema is pydantic's JSON schema of the typed
shape the renderer (``documents/render.py``, ``documents/status.py``) is checked against by mypy,
so the published schema cannot drift from what the agent sends. The config document is
DynamicModel's schema (what a write accepts) in the shape GET /config shows it.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from pgwarden.config.dynamic import NESTED_KEYS, DynamicModel
from pgwarden.documents.shapes import ClusterDoc, HistoryEntry, HistoryObject, StatusDoc

REF = "#/components/schemas/{model}"

# Component name -> the shape it is generated from.
DOCUMENTS: dict[str, Any] = {
    "Status": StatusDoc,
    "Cluster": ClusterDoc,
    "HistoryEntry": HistoryEntry,
    "HistoryObject": HistoryObject,
}


def document_schemas() -> dict[str, Any]:
    """Every document's schema and the schemas they refer to, by component name."""
    schemas: dict[str, Any] = {}
    for name, shape in DOCUMENTS.items():
        schema = TypeAdapter(shape).json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    schemas["HistoryEntry"]["description"] = (
        "Patroni's [timeline, lsn (bytes), reason, timestamp, new_leader]: a promotion's timeline is "
        "the one that ended at lsn; then pgwarden's event (promotion, sync degraded, failsafe), whose "
        "timeline is the one it happened on"
    )
    return schemas


def config_schemas() -> dict[str, Any]:
    """``DynamicConfig`` (what PUT takes; Patroni's nested spellings accepted) and ``ConfigDocument``
    (what GET answers: the same settings with Patroni's ``postgresql:`` nesting)."""
    config = DynamicModel.model_json_schema(ref_template=REF)
    defs = config.pop("$defs", {})
    config.pop("additionalProperties", None)  # Patroni's nested `postgresql:` shape is accepted too
    config["description"] = "The dynamic cluster config kept in etcd (docs/rest-api.md#config)."
    properties = dict(config["properties"])
    nested = {key: properties.pop(key) for key in NESTED_KEYS}
    nested["use_slots"] = {"const": True, "description": "pgwarden always keeps a slot per member"}
    properties["synchronous_mode"] = {
        "anyOf": [{"type": "boolean"}, {"const": "quorum"}],
        "description": "Patroni's spelling: true (on), false (off) or quorum",
    }
    properties["synchronous_mode_strict"] = {
        "type": "boolean",
        "description": "Patroni's flag: synchronous mode on and synchronous_fallback block",
    }
    properties["postgresql"] = {"type": "object", "properties": nested, "additionalProperties": False}
    document = {
        "type": "object",
        "description": "GET /config: the dynamic config as the agent last read it, the Patroni way "
        "(docs/rest-api.md#config); PUT takes it back unchanged.",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }
    return {**defs, "DynamicConfig": config, "ConfigDocument": document}
