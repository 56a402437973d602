"""Validates a document against a schema of docs/openapi.json (JSON Schema 2020-12, as OpenAPI 3.1 is).

``problems("Status", document)`` lists every place the document breaks the published schema, each
as ``path: message``; the contract tests require none, for real answers of a running cluster and
for documents rendered from built snapshots.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
_BASE = "urn:pgwarden-openapi"


@cache
def _registry() -> tuple[Registry, dict[str, Any]]:
    document = json.loads(OPENAPI.read_text())
    resource: Resource[Any] = DRAFT202012.create_resource(document)
    return Registry().with_resource(_BASE, resource), document


def problems(component: str, document: Any) -> list[str]:
    """Where ``document`` breaks ``#/components/schemas/<component>``; [] when it conforms."""
    registry, openapi = _registry()
    assert component in openapi["components"]["schemas"], f"no schema {component} in docs/openapi.json"
    validator = Draft202012Validator({"$ref": f"{_BASE}#/components/schemas/{component}"}, registry=registry)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '.'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    ]
